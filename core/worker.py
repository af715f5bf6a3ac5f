"""The detached training process: ``python -m core.worker RUN_DIR [--resume] [--engine M:A]``.

Loads ``RUN_DIR/config.yaml`` and runs the engine in this process; the engine writes
``events.jsonl``, which ``tunetop attach`` and the runs screen follow. SIGTERM, SIGHUP and
SIGINT, or a ``RUN_DIR/STOP`` file, stop the run cooperatively after the current step (with a
checkpoint); a ``RUN_DIR/SAVE`` file asks for a checkpoint. If the engine cannot even be built,
the worker writes the ``RunFailed`` event itself so followers learn why. Under ``accelerate
launch`` every process runs this module; only the main one (``RANK`` 0) writes to the run
directory, and a stop reaches all of them (each watches the files; the engine agrees on it).
The worker refuses a run another process trains (its ``run.lock``), and a resume of a
finished run, before touching any file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from core.config import RunConfig
from core.events import (
    TERMINAL_EVENTS,
    Event,
    MessageLogged,
    PhaseChanged,
    RunFailed,
    describe_event,
)
from core.machine import ensure_pci_bus_order
from core.noise import hold_library_output
from core.rundir import DEBUG_LOG, RunLock, RunRefused
from core.runs import CONFIG_FILE, EVENTS_FILE, PID_FILE, SAVE_FILE, STOP_FILE, check_resumable

log = logging.getLogger(__name__)
"""What the worker does, for ``worker.log`` (its stdout; :func:`main` sets the handler)."""

LOG_LEVELS = {"warning": logging.WARNING, "error": logging.ERROR}
"""Logging levels of the engine's message levels (others are info)."""
LAUNCH_MESSAGE = "Loading torch and transformers"
"""The first event of a worker (a ``launch`` phase), before the engine and its libraries load."""
WATCH_INTERVAL = 0.5
"""Seconds between checks for the STOP and SAVE files."""
WORKER_NICE = 10
"""CPU niceness of a detached run: a terminal following it keeps its keys and repaints when
the training saturates every core; with nothing else to run, the run loses nothing."""


def yield_cpu_to_interactive_work(nice: int = WORKER_NICE) -> None:
    """Lower the CPU priority of this process and the threads it starts (Linux; best effort).

    The worker runs in its own session, so under Linux's autogroup scheduling it is its own
    group, weighed equally with the follower's group whatever the threads' nice values; the
    group's niceness (``/proc/self/autogroup``) is what counts. Without autogroup the process
    niceness does, set before torch starts its threads so that they inherit it.
    """
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass
    try:
        os.nice(max(0, nice - os.nice(0)))
    except (AttributeError, OSError):
        pass


def _load_factory(spec: str | None) -> Callable[..., Any]:
    if not spec:
        from core.engine import Engine  # loads torch and transformers: only in the worker

        return Engine
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr or "Engine")


def build_engine(factory: Callable[..., Any], config: RunConfig, sink: Callable[[Event], None],
                 run_dir: Path, resume: bool) -> Any:
    """Build the engine so that it writes into ``run_dir`` (which already holds config.yaml)."""
    workspace = str(run_dir.parent)
    if resume:
        return factory(config, sink, workspace=workspace, resume_dir=str(run_dir))
    return factory(config, sink, workspace=workspace, run_dir=str(run_dir))


def _append_event(run_dir: Path, event: Event) -> None:
    with open(run_dir / EVENTS_FILE, "a", encoding="utf-8") as f:
        f.write(event.to_json() + "\n")


def _watch_files(run_dir: Path, engine: Any, done: threading.Event) -> None:
    """Poll for STOP and SAVE files until the run ends (a small daemon thread)."""
    stop_sent = False
    while not done.wait(WATCH_INTERVAL):
        if not stop_sent and (run_dir / STOP_FILE).exists():
            stop_sent = True
            log.info("STOP file found: stopping after this step")
            engine.stop()
        save = run_dir / SAVE_FILE
        if save.exists():
            save.unlink(missing_ok=True)
            log.info("SAVE file found: checkpoint at the next step end")
            engine.save_now()


def run_worker(run_dir: str | Path, resume: bool = False, engine_spec: str | None = None) -> int:
    """Run one training in this process; 0 when finished or stopped, 1 on failure."""
    run_dir = Path(run_dir)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    main_process = rank == 0
    if world > 1:
        log.info("process %d of %d started (pid %d)", rank, world, os.getpid())
    elif main_process:
        # One trainer per run, and never a finished run: refuse before touching the run (its
        # pid file, its STOP file) or loading torch. A launcher passes its lock; run by hand,
        # the worker takes it here. The engine adopts it; under accelerate launch, the
        # launching process holds it for every rank.
        try:
            RunLock.acquire(run_dir).hand_over()
            if resume:
                check_resumable(run_dir)
        except RunRefused as exc:
            log.error("not started: %s", exc)
            return 1
    if main_process:
        (run_dir / PID_FILE).write_text(f"{os.getpid()}\n")
        (run_dir / STOP_FILE).unlink(missing_ok=True)
    ensure_pci_bus_order()
    yield_cpu_to_interactive_work()
    # Before torch and transformers load: their warnings go to debug.log, not worker.log.
    noise = hold_library_output()
    if main_process:
        noise.write_to(run_dir / DEBUG_LOG)
    try:
        return _train(run_dir, resume, engine_spec, main_process)
    finally:
        noise.release()


def _train(run_dir: Path, resume: bool, engine_spec: str | None, main_process: bool) -> int:
    """Build the engine, run it to its end with the signal handlers and file watcher on."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    final: list[Event] = []

    def sink(event: Event) -> None:
        if isinstance(event, TERMINAL_EVENTS):
            final.append(event)
            # A refusal (a finished or locked run) never reaches events.jsonl: say it here.
            log.log(logging.ERROR if isinstance(event, RunFailed) else logging.INFO, describe_event(event))
        if isinstance(event, MessageLogged):
            log.log(LOG_LEVELS.get(event.level, logging.INFO), describe_event(event))

    if main_process:
        # Importing torch and transformers takes seconds (minutes on a busy machine): say so.
        _append_event(run_dir, PhaseChanged(phase="launch", message=LAUNCH_MESSAGE))
    try:
        config = RunConfig.load(run_dir / CONFIG_FILE)
        engine = build_engine(_load_factory(engine_spec), config, sink, run_dir, resume)
    except Exception as exc:  # the UI only sees events.jsonl, so a failure must land there
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        log.error("worker could not build the engine: %s", reason)
        if main_process:
            _append_event(run_dir, RunFailed(step=0, phase="setup", reason=reason,
                                             suggestion=f"See {run_dir / 'worker.log'}."))
        return 1

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        log.info("signal %d: stopping after this step", signum)
        engine.stop()

    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    done = threading.Event()
    watcher = threading.Thread(target=_watch_files, args=(run_dir, engine, done),
                               name="tunetop-stop-watch", daemon=True)
    engine.start()
    watcher.start()
    # join with a timeout so the main thread returns to Python often enough to run signal handlers
    while not engine.join(timeout=0.5):
        pass
    done.set()
    watcher.join()
    if not final and getattr(engine, "final_event", None) is not None:
        final.append(engine.final_event)  # other ranks have no sink; the engine still knows
    if not final:
        if main_process:
            _append_event(run_dir, RunFailed(step=0, phase="worker",
                                             reason="The engine ended without a final event.",
                                             suggestion=f"See {run_dir / 'worker.log'}."))
        return 1
    return 1 if isinstance(final[-1], RunFailed) else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m core.worker RUN_DIR [--resume] [--engine module:attr]``."""
    parser = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="Run directory holding config.yaml.")
    parser.add_argument("--resume", action="store_true", help="Continue from the latest checkpoint.")
    parser.add_argument("--engine", default=None, help="Engine factory as module:attr (tests).")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)  # the launcher sends it to worker.log
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return run_worker(args.run_dir, resume=args.resume, engine_spec=args.engine)


if __name__ == "__main__":
    sys.exit(main())
