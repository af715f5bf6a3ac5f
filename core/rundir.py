"""The layout of a run directory, shared by the engine, the runs list and export.

```
runs/<name>/
  config.yaml          resolved RunConfig
  events.jsonl         one JSON event per line (follow it with core.events.read_events)
  checkpoints/checkpoint-N/   written in .saving-checkpoint-N/, synced, then renamed into place
  final/               the adapter (PEFT) or the full model, with the tokenizer
  error.log            traceback of a failed run, for bug reports
  debug.log            the libraries' warnings and log records (core.noise), kept off the screen
  run.lock             flock-ed by the one process that trains the run (see RunLock)
```
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

from core.config import ConfigError, ConfigProblem

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
LOCK_FILE = "run.lock"
"""Locked (``flock``) by the process training the run; holds that process's pid."""
LOCK_FD_ENV = "TUNETOP_RUN_LOCK_FD"
"""Names a held run lock's file descriptor handed to the next :meth:`RunLock.acquire` (in
this process, or in a child that inherited the descriptor)."""
ADAPTER_CONFIG = "adapter_config.json"
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json",
                        COMPLETE_MARKER)
"""Files of a checkpoint that only resuming needs; the rest is the model a ``final/`` holds."""


class RunRefused(ValueError):
    """A run cannot start or resume as asked: ``reason`` says why, ``fix`` what to do instead."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason} Fix: {fix}")
        self.reason = reason
        self.fix = fix


class RunLocked(RunRefused):
    """Another live process trains this run (it holds ``run.lock``)."""

    def __init__(self, run_dir: str | Path, pid: int | None) -> None:
        run_dir = Path(run_dir)
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{run_dir.name} is being trained right now by {who}; a second trainer in the same "
            "directory would corrupt its checkpoints.",
            f"follow it with `tunetop attach {run_dir}` (or open it on the Runs screen), or stop "
            f"it first (x on its training screen, or `touch {run_dir / 'STOP'}`) and resume once "
            "it has stopped.",
        )
        self.pid = pid


def _read_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """The right to train in one run directory: an exclusive ``flock`` on its ``run.lock``.

    Whoever trains holds it (the engine, a detached worker, or the launcher of several
    processes) until it ends; the kernel drops it when that process exits, even on SIGKILL,
    so a crash never leaves a stale lock. The file holds the holder's pid for messages.
    """

    RETRY_SECONDS = 0.25
    """How long :meth:`acquire` retries: a :func:`lock_holder` probe holds it for an instant."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: str | Path) -> "RunLock":
        """Lock ``run_dir`` for this process, or adopt the lock handed to it; raises
        :class:`RunLocked` naming the holder when another process trains it."""
        path = Path(run_dir) / LOCK_FILE
        fd = _adopt_handed_lock(path)
        if fd is None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + cls.RETRY_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _read_holder(fd)
                        os.close(fd)
                        raise RunLocked(run_dir, holder) from None
                    time.sleep(0.05)
        lock = cls(path, fd)
        lock.set_holder(os.getpid())
        return lock

    def set_holder(self, pid: int) -> None:
        """Record ``pid`` as the holder (a launcher names the process it started)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def pass_to_child(self, env: dict[str, str]) -> int:
        """Put the descriptor in ``env`` for a child started with ``pass_fds=(fd,)``; returns it.

        The child's :meth:`acquire` adopts it; this process then names the child with
        :meth:`set_holder` and calls :meth:`release`, and the lock stays held by the child.
        """
        if self.fd is None:
            raise ValueError(f"{self.path} is not held.")
        env[LOCK_FD_ENV] = str(self.fd)
        return self.fd

    def hand_over(self) -> None:
        """Give the lock to the next :meth:`acquire` of this run in this process (a detached
        worker to its engine); this object no longer owns it."""
        if self.fd is None:
            raise ValueError(f"{self.path} is not held.")
        os.environ[LOCK_FD_ENV] = str(self.fd)
        self.fd = None

    def release(self) -> None:
        """Close this process's descriptor: the lock ends unless a child it was passed to
        still has it open. (Never ``LOCK_UN``: that would unlock the child's copy too.)"""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _adopt_handed_lock(path: Path) -> int | None:
    """The descriptor of ``path`` handed over through ``LOCK_FD_ENV``, if it is that file."""
    value = os.environ.get(LOCK_FD_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        held, wanted = os.fstat(fd), os.stat(path)
    except OSError:
        return None  # not open here (a process a launcher started in turn): not ours
    if (held.st_dev, held.st_ino) != (wanted.st_dev, wanted.st_ino):
        return None
    del os.environ[LOCK_FD_ENV]  # adopted once; children of this process do not inherit it
    os.set_inheritable(fd, False)
    return fd


def lock_holder(run_dir: str | Path) -> int | None:
    """The pid training ``run_dir`` (0 when unknown), or None when nobody holds its lock."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd) or 0
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


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


def resolve_adapter(ref: str | Path) -> Path:
    """The LoRA adapter directory ``ref`` names: an adapter directory, or a run directory
    whose ``final/`` holds one. Raises :class:`ConfigError` on ``model.adapter`` otherwise."""
    path = Path(ref).expanduser()
    for candidate in (path / FINAL_DIR, path):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    if (path / CONFIG_FILE).is_file():
        problem = ConfigProblem(
            "model.adapter", f"run {path} has no adapter in {FINAL_DIR}/: it has not finished, "
            "or it was a full fine-tune.",
            f"resume it first (tunetop train --resume {path}), or for a full fine-tune set "
            f"model.name_or_path: {path / FINAL_DIR} and leave model.adapter empty.")
    else:
        problem = ConfigProblem(
            "model.adapter", f"{path} is neither a LoRA adapter directory (with "
            f"{ADAPTER_CONFIG}) nor a run directory.",
            "give a finished run's directory, or a directory written by PEFT's save_pretrained.")
    raise ConfigError([problem])


def adapter_settings(adapter_dir: str | Path) -> dict:
    """The adapter's ``adapter_config.json`` (rank, alpha, target modules, base model)."""
    return json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def final_from_checkpoint(run_dir: str | Path, checkpoint: Path, keep_best: bool) -> Path:
    """Write ``final/`` from a checkpoint of a run that trained every step but ended before
    writing it (killed, or stopped on its last step); returns ``final/``.

    The model files are copied from the best checkpoint when ``keep_best`` and it is still on
    disk, else from ``checkpoint``; the copy is written aside and renamed into place.
    """
    run_dir = Path(run_dir)
    source = checkpoint
    if keep_best:
        try:
            state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        best = state.get("best_global_step")
        if best and (checkpoint.parent / checkpoint_name(best) / COMPLETE_MARKER).is_file():
            source = checkpoint.parent / checkpoint_name(best)
    final = run_dir / FINAL_DIR
    staging = run_dir / f"{STAGING_PREFIX}{FINAL_DIR}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=lambda folder, names: [
        n for n in names if n in TRAINING_STATE_FILES or n.startswith("rng_state")])
    if final.exists():
        shutil.rmtree(final)  # half-written by the crash that ended the run
    os.rename(staging, final)
    return final
