"""Detached runs: a training process that outlives the terminal, and following its events.

:func:`launch_detached` writes the run directory and starts ``python -m core.worker RUN_DIR``
in a new session (so closing the SSH connection does not stop it), with its output in
``worker.log`` and its pid in ``worker.pid``. A config with ``num_processes`` above 1 starts the
same worker through ``accelerate launch`` (one process per GPU, or gloo on CPU); only its main
process writes the run directory, so it is followed exactly like a single-process run. :func:`follow_run` yields the run's events by
polling ``events.jsonl``; :func:`request_stop` and :func:`request_checkpoint` drop the
``STOP`` / ``SAVE`` files the worker watches.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core import child_environment
from core.config import RunConfig
from core.events import (
    TERMINAL_EVENTS,
    Event,
    RunFailed,
    RunStarted,
    damaged_lines_message,
    read_event_chunk,
)
from core.machine import visible_gpu_count
from core.rundir import RunLock, make_run_dir, resolve_adapter
from core.runs import (
    CONFIG_FILE,
    EVENTS_FILE,
    LOG_FILE,
    PID_FILE,
    SAVE_FILE,
    STOP_FILE,
    check_not_live,
    check_resumable,
    pid_alive,
    read_pid,
)

_children: dict[int, subprocess.Popen] = {}
"""Workers started by this process, kept so that their exit status can be collected."""


def _free_port() -> int:
    """A TCP port free right now, for the launch's rendezvous (two runs must not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_processes(config: RunConfig, gpus: int | None = None) -> int:
    """The visible GPU count, or ValueError when the config asks for more processes than GPUs.

    One process needs no count (0 is returned without asking NVML).
    """
    if config.num_processes <= 1:
        return 0
    gpus = visible_gpu_count() if gpus is None else gpus
    if 0 < gpus < config.num_processes:
        raise ValueError(
            f"num_processes is {config.num_processes} but only {gpus} GPU(s) are visible; set "
            f"num_processes to {gpus} or fewer, or change CUDA_VISIBLE_DEVICES."
        )
    return gpus


def check_inputs(config: RunConfig) -> None:
    """Cheap checks of the data file and the model reference, before a run directory exists.

    Opens the data and settles its format (the first rows only), and checks a local model
    directory and ``model.adapter``; the worker reads everything again. Raises
    :class:`core.data.DataError`, :class:`core.models.ModelError` or ``ConfigError``.
    """
    from core.data import open_preferences, open_rows, source_specs
    from core.models import resolve_model_path

    for spec in source_specs(config.data):
        if config.is_preference:
            open_preferences(spec)
        else:
            open_rows(spec)
    if not config.model.name_or_path.startswith("bundled:"):  # bundled: converted by the worker
        resolve_model_path(config.model.name_or_path)
    if config.model.adapter:
        resolve_adapter(config.model.adapter)


def worker_command(
    run_dir: Path,
    config: RunConfig,
    *,
    resume: bool = False,
    engine: str | None = None,
    python: str = sys.executable,
    gpus: int | None = None,
) -> list[str]:
    """The command that trains ``run_dir``: the worker, or ``accelerate launch`` of it.

    ``gpus`` is how many GPUs are visible (default: asked of NVML). Several processes with no
    GPU train on CPU with gloo, which is how the suite tests the multi-process path.
    """
    worker = ["-m", "core.worker", str(run_dir.resolve())]
    if resume:
        worker.append("--resume")
    if engine:
        worker += ["--engine", engine]
    processes = config.num_processes
    if processes <= 1:
        return [python, *worker]
    gpus = check_processes(config, gpus)
    return [
        python, "-m", "accelerate.commands.launch",
        "--multi_gpu",  # torchrun; without GPUs the processes use gloo on CPU
        "--num_processes", str(processes),
        "--num_machines", "1",
        # Precision and FSDP come from the run config through the Trainer, not from here.
        "--mixed_precision", "no",
        "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        *worker,
    ]


def launch_detached(
    config: str | Path | RunConfig,
    workspace: str | Path = "runs",
    *,
    resume_dir: str | Path | None = None,
    engine: str | None = None,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> Path:
    """Start a run in its own process and session; returns its run directory at once.

    ``config`` is a RunConfig or a YAML path (validated here, and its data and model
    reference checked, so mistakes show before a run directory exists). ``resume_dir``
    continues that run in place; a run another process trains (:class:`core.rundir.RunLocked`),
    a finished one, or one without a complete checkpoint is refused
    (:class:`core.rundir.RunRefused`) before anything in it changes. The run's lock is taken
    here and passed to the worker (or to ``accelerate launch``, which holds it for all its
    processes), so two launches can never both start. ``engine`` is an optional
    ``module:attr`` engine factory for the worker (tests use a fake); ``env`` adds variables.
    """
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} has no {CONFIG_FILE}; it is not a run directory.")
        check_not_live(run_dir)  # also a worker of an older version, which holds no lock
        lock = RunLock.acquire(run_dir)
        try:
            check_resumable(run_dir)
            cfg = RunConfig.load(run_dir / CONFIG_FILE)
            gpus = check_processes(cfg)
        except BaseException:
            lock.release()
            raise
    else:
        cfg = config if isinstance(config, RunConfig) else RunConfig.load(config)
        cfg.check()
        gpus = check_processes(cfg)  # before the run directory exists
        check_inputs(cfg)
        run_dir = make_run_dir(workspace, cfg.run_name, cfg.method)
        lock = RunLock.acquire(run_dir)
    try:
        if resume_dir is None:
            cfg.run_name = run_dir.name
            cfg.output_dir = str(workspace)
            cfg.save(run_dir / CONFIG_FILE)
        for name in (STOP_FILE, SAVE_FILE):
            (run_dir / name).unlink(missing_ok=True)
        command = worker_command(run_dir, cfg, resume=resume_dir is not None, engine=engine,
                                 python=python, gpus=gpus)
        child_env = child_environment({**os.environ, **(env or {})})
        child_env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        child_env.setdefault("TOKENIZERS_PARALLELISM", "false")
        child_env["PYTHONUNBUFFERED"] = "1"
        lock_fd = lock.pass_to_child(child_env)
        with open(run_dir / LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: no SIGHUP when the terminal goes away
                env=child_env,
                cwd=str(run_dir.parent.resolve()),
                pass_fds=(lock_fd,),
            )
        lock.set_holder(process.pid)
    finally:
        lock.release()  # the worker holds it now (or nobody, if it could not start)
    _children[process.pid] = process
    (run_dir / PID_FILE).write_text(f"{process.pid}\n")
    return run_dir


def request_stop(run_dir: str | Path) -> None:
    """Ask a detached run to stop after its current step (it saves a checkpoint first)."""
    Path(run_dir, STOP_FILE).write_text(f"{time.time()}\n")


def request_checkpoint(run_dir: str | Path) -> None:
    """Ask a detached run for a checkpoint at its next step end."""
    Path(run_dir, SAVE_FILE).write_text(f"{time.time()}\n")


def _log_tail(run_dir: Path, lines: int = 1) -> str:
    try:
        text = (run_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def follow_run(
    run_dir: str | Path,
    poll_interval: float = 0.25,
    should_stop: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Event]:
    """Yield the run's events, old ones first, until its final event or ``should_stop()``.

    A final event ends following, unless ``worker.pid`` names another live process than the
    one that ran (a resumed run starting in the same directory). If the run's process
    (``worker.pid``, or the pid in ``RunStarted``) dies without a final event, a ``RunFailed``
    naming the last line of ``worker.log`` is yielded and following ends. Damaged lines are
    skipped, and a warning ``MessageLogged`` says how many.
    """
    run_dir = Path(run_dir)
    path = run_dir / EVENTS_FILE
    offset = 0
    started_pid: int | None = None
    last_step = 0
    ended = False
    while not (should_stop and should_stop()):
        events: list[Event] = []
        if path.exists():
            events, offset, damaged = read_event_chunk(str(path), offset)
            if damaged:
                events.insert(0, damaged_lines_message(damaged, str(path)))
        for event in events:
            if isinstance(event, RunStarted):
                started_pid, ended = event.pid or None, False  # a resumed run starts again
            elif isinstance(event, TERMINAL_EVENTS):
                ended = True
            last_step = getattr(event, "step", last_step)
            yield event
        if ended:
            worker = read_pid(run_dir)
            if not worker or worker == started_pid or not pid_alive(worker):
                return
            sleep(poll_interval)  # a new worker is resuming the run in this directory
            continue
        if not events:
            pid = read_pid(run_dir) or started_pid
            if pid and not pid_alive(pid):
                # A last write may have landed between the read and the check.
                late = read_event_chunk(str(path), offset).events if path.exists() else []
                for event in late:
                    yield event
                if any(isinstance(e, TERMINAL_EVENTS) for e in late):
                    return
                tail = _log_tail(run_dir)
                yield RunFailed(
                    step=last_step,
                    phase="worker",
                    reason=f"The training process (pid {pid}) ended without a final event"
                    + (f"; its last output: {tail}" if tail else "."),
                    suggestion=f"See {run_dir / LOG_FILE}; resume from the last checkpoint if there is one.",
                )
                return
            sleep(poll_interval)
