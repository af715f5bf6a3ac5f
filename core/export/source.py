"""Which weights an export reads: a run's final model, or one of its checkpoints.

A user names a run directory, a run with ``--checkpoint N``, or a checkpoint folder itself;
every way that cannot work gets one message that names the path and a fix that works.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from core.config import ConfigError, RunConfig
from core.export.common import ExportError
from core.rundir import (
    CHECKPOINTS_DIR,
    COMPLETE_MARKER,
    CONFIG_FILE,
    FINAL_DIR,
    checkpoint_name,
    checkpoint_step,
    complete_checkpoints,
)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
"""Weight files in Python's pickle format, which can run code when loaded."""


@dataclass(frozen=True)
class ExportSource:
    """The run and the folder of weights one export reads."""

    run_dir: Path
    weights: Path
    """``final/``, or ``checkpoints/checkpoint-N/``."""
    config: RunConfig
    step: int | None
    """The checkpoint's step; ``None`` for the final model."""

    @property
    def label(self) -> str:
        """``final`` or ``checkpoint-N``: the part of default output names that says which."""
        return FINAL_DIR if self.step is None else checkpoint_name(self.step)

    @property
    def is_adapter(self) -> bool:
        """Whether the weights are a LoRA adapter (lora, qlora) rather than a whole model."""
        return self.config.method != "full"


def _command(*parts: object) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


def resolve_source(path: str | Path, checkpoint: int | str | None = None) -> ExportSource:
    """The weights to export from ``path`` (a run, its ``final/`` or a checkpoint folder).

    ``checkpoint`` picks ``checkpoints/checkpoint-N`` of the run instead of ``final/``. Raises
    :class:`ExportError` with the fix when there is nothing loadable there.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path} does not exist. Fix: give a run directory{_runs_near(path)}.")
    if not path.is_dir():
        raise ExportError(f"{path} is a file, not a run directory. Fix: give the run's folder "
                          f"(the one holding {CONFIG_FILE}){_runs_near(path)}.")
    step = checkpoint_step(path)
    if step is not None and path.parent.name == CHECKPOINTS_DIR:
        if checkpoint is not None and int(checkpoint) != step:
            raise ExportError(f"{path} is checkpoint {step}, but --checkpoint {checkpoint} was also "
                              f"given. Fix: give the run directory with --checkpoint, or the "
                              f"checkpoint folder alone.")
        run_dir, checkpoint = path.parent.parent, step
    elif path.name == FINAL_DIR and (path.parent / CONFIG_FILE).is_file():
        run_dir = path.parent
    else:
        run_dir = path
    config = _load_config(run_dir)
    if checkpoint is None:
        weights = run_dir / FINAL_DIR
        if not weights.is_dir():
            raise ExportError(_no_final_model(run_dir))
    else:
        weights = _checkpoint_dir(run_dir, checkpoint)
    source = ExportSource(run_dir=run_dir, weights=weights, config=config,
                          step=None if checkpoint is None else int(checkpoint))
    check_weights(source)
    return source


def _load_config(run_dir: Path) -> RunConfig:
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ExportError(f"{run_dir} is not a run directory: it has no {CONFIG_FILE}. Fix: give "
                          f"the folder tunetop made for the run{_runs_near(run_dir / 'x')}.")
    try:
        return RunConfig.load(config_path)
    except ConfigError as exc:
        raise ExportError(f"{config_path} cannot be read: {exc}") from None


def _runs_near(path: Path) -> str:
    """``, e.g. runs/a or runs/b`` when run directories sit beside ``path``; else nothing."""
    parent = path.parent
    if not parent.is_dir():
        return ""
    runs = sorted(p for p in parent.iterdir() if (p / CONFIG_FILE).is_file())[:3]
    return f", e.g. {' or '.join(str(r) for r in runs)}" if runs else ""


def _no_final_model(run_dir: Path) -> str:
    from core.runs import run_progress

    progress = run_progress(run_dir)
    status = {
        "stopped": f"the run was stopped at step {progress.step}",
        "failed": f"the run failed at step {progress.step}",
    }.get(progress.status, "the run has not finished (it is still training, or was interrupted)")
    latest = complete_checkpoints(run_dir)
    if latest:
        step = checkpoint_step(latest[-1])
        fix = (f"export its latest checkpoint: {_command('tunetop', 'export', run_dir, '--checkpoint', step)}"
               + (f", or resume it: {_command('tunetop', 'train', '--resume', run_dir)}"
                  if progress.status != "running" else ""))
    else:
        fix = (f"it has no complete checkpoint either; resume or restart it: "
               f"{_command('tunetop', 'train', '--resume', run_dir)}")
    return f"{run_dir} has no final model: {status}. Fix: {fix}."


def _checkpoint_dir(run_dir: Path, checkpoint: int | str) -> Path:
    complete = complete_checkpoints(run_dir)
    steps = [checkpoint_step(p) for p in complete]
    choices = (f"use one of: {', '.join(f'--checkpoint {s}' for s in steps)}" if steps
               else "this run has no complete checkpoint; export its final model without --checkpoint")
    try:
        step = int(checkpoint)
    except ValueError:
        raise ExportError(f"--checkpoint {checkpoint!r} is not a step number. Fix: {choices}.") from None
    folder = run_dir / CHECKPOINTS_DIR / checkpoint_name(step)
    if not folder.is_dir():
        raise ExportError(f"{run_dir} has no checkpoint {step} ({folder} does not exist). Fix: {choices}.")
    if not (folder / COMPLETE_MARKER).is_file():
        raise ExportError(f"{folder} is half-written (a crash or a stop while saving). Fix: {choices}.")
    return folder


def check_weights(source: ExportSource) -> None:
    """Refuse weights that are missing or only in pickle format, naming the file."""
    folder = source.weights
    names = {p.name for p in folder.iterdir()}
    if source.is_adapter:
        safe, config = ADAPTER_WEIGHTS, ADAPTER_CONFIG
        if config not in names:
            raise ExportError(f"{folder} holds no LoRA adapter ({config} is missing), though the "
                              f"run's method is {source.config.method}. Fix: export a checkpoint "
                              f"that has one, or retrain.")
        if safe not in names:
            pickles = [folder / n for n in sorted(names) if n.startswith("adapter_model")
                       and n.endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise ExportError(_pickle_message(pickles[0], folder / safe))
            raise ExportError(f"{folder} has {config} but no {safe}. Fix: export a checkpoint "
                              f"that has both, or retrain.")
        return
    if not any(n.endswith(".safetensors") for n in names):
        pickles = [folder / n for n in sorted(names)
                   if n.startswith(("pytorch_model", "model")) and n.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise ExportError(_pickle_message(pickles[0], folder / "model.safetensors"))
        raise ExportError(f"{folder} holds no model weights (no .safetensors file). Fix: export a "
                          f"checkpoint that has them, or retrain.")


def _pickle_message(pickle_file: Path, safetensors_file: Path) -> str:
    convert = (
        "import torch, safetensors.torch as st; "
        f"st.save_file(torch.load({str(pickle_file)!r}, weights_only=True), {str(safetensors_file)!r})"
    )
    return (
        f"{pickle_file} is a pickle file, which can run code when loaded, so tunetop does not "
        f"read it (nothing was loaded). Fix: if you trust where it came from, convert it to "
        f"safetensors and export again: python -c {shlex.quote(convert)}"
    )
