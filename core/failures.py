"""What went wrong with a run, in words: a failure's reason and the fix, and out-of-memory.

:func:`describe_failure` turns any exception a run raises (a config or data problem, a run
another process trains, non-finite values, memory, disk, a model file) into the reason and
suggestion of :class:`~core.events.RunFailed`; the engine, ``tunetop train`` and the tests use
it.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
from pathlib import Path
from typing import Any

from core import exception_chain
from core.callbacks import NonFiniteError
from core.config import ConfigError, RunConfig
from core.rundir import RunRefused, checkpoint_step


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA or host out-of-memory error."""
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in str(exc).lower()
    )


def nonfinite_settings(config: RunConfig) -> list[str]:
    """Dotted names of the config's numbers that are NaN or infinite (``optim.weight_decay``)."""

    def walk(obj: Any, prefix: str) -> list[str]:
        found: list[str] = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                found += walk(value, f"{prefix}{f.name}.")
            elif isinstance(value, float) and not math.isfinite(value):
                found.append(f"{prefix}{f.name}")
        return found

    return walk(config, "")


def _field(config: RunConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def describe_failure(exc: BaseException, phase: str, config: RunConfig | None = None,
                     checkpoint: Path | None = None) -> tuple[str, str]:
    """A readable reason and a concrete suggestion for an exception raised in ``phase``.

    ``config`` and ``checkpoint`` (the run's newest complete one) let a non-finite failure
    name its cause and say truthfully what is left on disk.
    """
    name = type(exc).__name__
    if isinstance(exc, ConfigError):
        return "; ".join(str(p) for p in exc.problems), "Fix the fields named above and start again."
    if isinstance(exc, RunRefused):
        return exc.reason, exc.fix[:1].upper() + exc.fix[1:]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if isinstance(exc, NonFiniteError):
        # Every checkpoint is written after its step's weights (and validation loss) were
        # checked, so the newest one never holds what went bad.
        kept = (f" Nothing from that step was saved; the last checkpoint, {checkpoint.name}, was "
                "checked before it was written and is intact." if checkpoint is not None
                else " Nothing from that step was saved, and no checkpoint was written before it.")
        bad = nonfinite_settings(config) if config is not None else []
        if bad:
            defaults = RunConfig()
            usual = ", ".join(f"{name} {_field(defaults, name):g}" for name in bad)
            return text + kept, (f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a "
                                 f"finite number: set a real value (the default is {usual}) and "
                                 "start again.")
        return text + kept, ("Lower the learning rate (e.g. halve it) and start again; keep "
                             "max_grad_norm at 1.0, or use fp32.")
    if is_out_of_memory(exc):
        return (
            f"Out of memory during {phase}.",
            "Halve per_device_train_batch_size and double gradient_accumulation_steps (or set "
            "optim.retry_on_oom: true to do it automatically), turn on gradient_checkpointing, "
            "use qlora, or shorten data.max_length.",
        )
    chain = exception_chain(exc)
    oserror = next((e for e in chain if isinstance(e, OSError)), None)
    where = f" ({oserror.filename})" if oserror is not None and oserror.filename else ""
    # Libraries re-raise a full disk as a plain Exception (tokenizers' save does): the errno
    # is lost, the words remain.
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain) or any(
            "no space left on device" in str(e).lower() for e in chain):
        return (f"The disk is full while writing during {phase}{where}; the last complete "
                "checkpoint is intact.", "Free disk space or lower eval.save_total_limit, then resume.")
    unpickled = _unsafe_pickle(chain)
    if unpickled is not None:
        return unpickled
    writable = ("Set output_dir (or pass --workspace) to a directory on a disk you can "
                "write to.")
    if oserror is not None and oserror.errno == errno.EROFS:
        return f"The workspace is on a read-only file system{where}.", writable
    if isinstance(oserror, PermissionError):
        return f"Permission denied{where or ': ' + text}.", writable
    if isinstance(oserror, (NotADirectoryError, FileExistsError, IsADirectoryError)) and phase == "setup":
        blocker = _file_in_the_way(oserror.filename)
        if blocker is not None:
            return (f"Cannot create the run directory{where}: {blocker} is a file, not a "
                    "directory.", "Set output_dir (or pass --workspace) to a directory, or to a "
                    "path that does not exist yet.")
        return (f"Cannot create the run directory{where}: {oserror.strerror or text}.",
                "Set output_dir to a directory (or a path that does not exist yet) you can write to.")
    return f"{name}: {text}", ""


def _file_in_the_way(path: str | None) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (a workspace that is one)."""
    if not path:
        return None
    for parent in Path(path).parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def _unsafe_pickle(chain: list[BaseException]) -> tuple[str, str] | None:
    """Reason and fix when ``torch.load`` refused a checkpoint file holding pickled objects
    beyond tensors (it may run code). torch's own text suggests ``weights_only=False``, which
    is exactly what must not be done with a file of unknown origin; it is not repeated."""
    import pickle

    refused = next((e for e in chain if isinstance(e, pickle.UnpicklingError)
                    and "weights only load failed" in str(e).lower()), None)
    if refused is None:
        return None
    path = _loaded_file(refused)
    checkpoint = next((p for p in Path(path).parents if checkpoint_step(p) is not None), None) if path else None
    fix = (f"If you wrote this checkpoint with a trusted tool, save it again; otherwise delete "
           f"{checkpoint or 'that checkpoint'} and resume from an earlier one.")
    return (f"{path or 'A checkpoint file'} holds pickled objects other than tensors, so tunetop "
            "did not load it: loading such a file can run any code.", fix)


def _loaded_file(exc: BaseException) -> str:
    """The path ``torch.load`` was reading when it raised ``exc`` (from its frame), or ""."""
    tb = exc.__traceback__
    found = ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "torch.serialization":
            value = frame.f_locals.get("f")
            if isinstance(value, (str, os.PathLike)):
                found = os.fspath(value)
        tb = tb.tb_next
    return found

