"""The layout of a run directory, shared by the engine, the runs list and export.

```
runs/<name>/
  config.yaml          resolved RunConfig
  events.jsonl         one JSON event per line (follow it with core.events.read_events)
  checkpoints/checkpoint-N/   written in .saving-checkpoint-N/, synced, then renamed into place
  final/               the adapter (PEFT) or the full model, with the tokenizer
  error.log            traceback of a failed run, for bug reports
  debug.log            the libraries' warnings and log records (core.noise), kept off the screen
```
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
ERROR_LOG = "error.log"
"""Traceback of a failed run, for bug reports."""
DEBUG_LOG = "debug.log"
"""Warnings and log records of the libraries during the run (see :mod:`core.noise`)."""
CHECKPOINT_PREFIX = "checkpoint-"
"""A checkpoint folder is ``checkpoint-N``: the name transformers' Trainer gives it
(``transformers.trainer_utils.PREFIX_CHECKPOINT_DIR``)."""
COMPLETE_MARKER = "COMPLETE"
"""File written last into a checkpoint: a checkpoint without it is half-written."""
STAGING_PREFIX = ".saving-"
"""A checkpoint is written under ``.saving-checkpoint-N/`` and renamed into place when whole."""


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


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint of ``step``: ``checkpoint-N``."""
    return f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-N`` directory, or None for anything else."""
    number = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(number) if path.name.startswith(CHECKPOINT_PREFIX) and number.isdigit() else None


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first; half-written ones (no marker) are ignored."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*")
             if checkpoint_step(p) is not None and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    complete = complete_checkpoints(run_dir)
    return complete[-1] if complete else None


def staging_dir(checkpoints_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is written before it is published."""
    return Path(checkpoints_dir) / f"{STAGING_PREFIX}{checkpoint_name(step)}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_checkpoint(staging: Path, step: int) -> Path:
    """Move the checkpoint written under ``staging`` into place; returns its final path.

    Every file is synced, the COMPLETE marker is added, and one rename makes it visible: a
    crash at any moment leaves either no ``checkpoint-N`` or a whole one. A ``checkpoint-N``
    already there is a half-written leftover of a crash at this step (resume starts earlier)
    and is replaced.
    """
    written = staging / checkpoint_name(step)
    for folder, _, files in os.walk(written):
        for name in files:
            _fsync(Path(folder, name))
    (written / COMPLETE_MARKER).write_text(str(step))
    _fsync(written / COMPLETE_MARKER)
    _fsync(written)
    final = staging.parent / written.name
    if final.exists():
        shutil.rmtree(final)
    os.rename(written, final)
    _fsync(staging.parent)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def remove_staging(checkpoints_dir: str | Path) -> list[Path]:
    """Delete checkpoints a crash left half-written (before resuming); returns what went."""
    root = Path(checkpoints_dir)
    leftovers = [p for p in root.glob(f"{STAGING_PREFIX}{CHECKPOINT_PREFIX}*") if p.is_dir()]
    leftovers += [p for p in root.glob(f"{CHECKPOINT_PREFIX}*")
                  if checkpoint_step(p) is not None and not (p / COMPLETE_MARKER).is_file()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers
