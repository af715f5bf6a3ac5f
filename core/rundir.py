"""The layout of a run directory, shared by the engine, the runs list and export.

```
runs/<name>/
  config.yaml          resolved RunConfig
  events.jsonl         one JSON event per line (follow it with core.events.read_events)
  checkpoints/checkpoint-N/   complete ones hold a COMPLETE marker
  final/               the adapter (PEFT) or the full model, with the tokenizer
  error.log            traceback of a failed run, for bug reports
```
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
COMPLETE_MARKER = "COMPLETE"
"""File written last into a checkpoint: a checkpoint without it is half-written."""


def make_run_dir(workspace: str | Path, run_name: str | None, method: str) -> Path:
    """A new, unique run directory under ``workspace``."""
    root = Path(workspace)
    name = run_name or f"{datetime.now():%Y%m%d-%H%M%S}-{method}"
    path = root / name
    n = 2
    while path.exists():
        path = root / f"{name}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-N`` directory, or None for anything else."""
    prefix, _, number = path.name.rpartition("-")
    return int(number) if prefix == "checkpoint" and number.isdigit() else None


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first; half-written ones (no marker) are ignored."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = [p for p in root.glob("checkpoint-*")
             if checkpoint_step(p) is not None and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None
