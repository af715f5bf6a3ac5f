"""One run as a screen or a command holds it: its state, and a handle to control it.

:class:`RunState` is what a run is doing as the user sees it; :func:`state_after` folds the
run's events into it, so every view of a run (in this process, detached, replayed from its
files) goes through the same states.

A :class:`RunHandle` starts a run, delivers its events to a sink and takes requests (stop,
save now). Two kinds exist:

- :class:`DetachedRun`: the run trains in its own process and session
  (:func:`core.detach.launch_detached`), so it outlives the terminal; its events are read
  from ``events.jsonl`` and requests are the ``STOP`` / ``SAVE`` files the worker watches.
  The same handle attaches to a run that is already going (or over).
- :class:`InProcessRun`: the engine trains in a thread of this process and hands its events
  to the sink directly; the run ends with the process. Tests use it with fake engines.

Both are driven the same way, from a thread: :meth:`RunHandle.start` (seconds: it launches
the worker or builds the engine), then :meth:`RunHandle.follow` until the run ends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from core.config import RunConfig
from core.events import (
    SAVE_PHASES,
    TERMINAL_EVENTS,
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    Event,
    EventSink,
    PhaseChanged,
    RunStarted,
    StepLogged,
)
from core.runs import STOP_FILE, read_pid


class RunState(str, Enum):
    """What a run is doing, as the user sees it."""

    IDLE = "idle"
    """No run yet."""
    STARTING = "starting"
    """Launching, loading data, tokenizer and model, building the trainer."""
    RUNNING = "running"
    """Taking optimizer steps."""
    EVALUATING = "evaluating"
    """Measuring the validation loss."""
    SAVING = "saving"
    """Writing a checkpoint or the final output."""
    STOPPING = "stopping"
    """Asked to stop: it ends after the current step, with a checkpoint."""
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """Whether the run may still send events."""
        return self in LIVE_STATES

    @property
    def ended(self) -> bool:
        """Whether the run sent its final event."""
        return self in ENDED_STATES


LIVE_STATES = frozenset({RunState.STARTING, RunState.RUNNING, RunState.EVALUATING,
                         RunState.SAVING, RunState.STOPPING})
"""States in which a run may still send events."""
ENDED_STATES = frozenset({RunState.FINISHED, RunState.STOPPED, RunState.FAILED})
"""States after a run's final event."""


def state_after(state: RunState, event: Event) -> RunState:
    """The state of a run in ``state`` once ``event`` arrived.

    A requested stop stays ``STOPPING`` until the final event; a resumed run that starts again
    in the same directory leaves its ended state with its first setup event.
    """
    if isinstance(event, TERMINAL_EVENTS):
        return RunState(event.status)
    if state is RunState.STOPPING:
        return state
    if isinstance(event, PhaseChanged):
        return RunState.SAVING if event.phase in SAVE_PHASES else RunState.STARTING
    if isinstance(event, EvalProgressed):
        return RunState.EVALUATING
    if isinstance(event, StepLogged) and state is RunState.EVALUATING:
        return state  # the step logged just before its evaluation's first batch
    if isinstance(event, (RunStarted, StepLogged, EvalLogged, CheckpointSaved)):
        return RunState.RUNNING
    return state


class RunHandle(Protocol):
    """A run that a screen or command holds: start it, follow it, stop it."""

    detached: bool
    """Whether the run trains in its own process (it outlives this one)."""

    @property
    def run_dir(self) -> Path | None:
        """The run's directory, once known."""

    @property
    def pid(self) -> int | None:
        """The process that trains (for its memory figures), once known."""

    def start(self) -> None:
        """Launch the worker or build the engine (blocking, seconds); raises if it cannot."""

    def follow(self, should_stop: Callable[[], bool]) -> None:
        """Deliver the run's events to the sink until its end or ``should_stop()`` (blocking)."""

    def stop(self) -> None:
        """Ask the run to stop after its current step, with a checkpoint (any time, any thread)."""

    def save_now(self) -> None:
        """Ask for a checkpoint at the end of the current step."""


class DetachedRun:
    """A run in its own process, controlled through its files; see :mod:`core.detach`.

    Build it with :meth:`launch` (a new run, or a resumed one) or :meth:`attach` (a run that
    already exists).
    """

    detached = True

    def __init__(self, sink: EventSink, run_dir: str | Path | None = None,
                 launch: dict[str, Any] | None = None, poll_interval: float = 0.25) -> None:
        self.sink = sink
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._launch = launch
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._stop_requested = False

    @classmethod
    def launch(cls, config: RunConfig, workspace: str | Path, sink: EventSink,
               resume_dir: str | Path | None = None, **options: Any) -> DetachedRun:
        """A handle that starts ``config`` in a detached worker when started (``options`` go
        to :func:`core.detach.launch_detached`)."""
        return cls(sink, launch={"config": config, "workspace": workspace, "resume_dir": resume_dir,
                                 **options})

    @classmethod
    def attach(cls, run_dir: str | Path, sink: EventSink) -> DetachedRun:
        """A handle on the run in ``run_dir`` (running or over); starting it does nothing."""
        return cls(sink, run_dir=run_dir)

    @property
    def run_dir(self) -> Path | None:
        """The run's directory (known once launched)."""
        return self._run_dir

    @property
    def pid(self) -> int | None:
        """The worker's pid from ``worker.pid``."""
        return read_pid(self._run_dir) if self._run_dir is not None else None

    def start(self) -> None:
        """Write the run directory and spawn the worker (nothing for an attached run)."""
        if self._launch is None:
            return
        from core.detach import launch_detached

        options = dict(self._launch)
        run_dir = launch_detached(options.pop("config"), options.pop("workspace"), **options)
        with self._lock:
            self._run_dir = run_dir
            stop = self._stop_requested
        if stop:
            self._request_stop(run_dir)

    def follow(self, should_stop: Callable[[], bool]) -> None:
        """Tail ``events.jsonl`` into the sink until the run's final event."""
        from core.detach import follow_run

        run_dir = self._run_dir
        if run_dir is None:
            return
        for event in follow_run(run_dir, poll_interval=self.poll_interval, should_stop=should_stop):
            if self._stop_requested and not (run_dir / STOP_FILE).exists():
                # A worker clears a STOP file left from before it started: ask again.
                self._request_stop(run_dir)
            self.sink(event)

    def stop(self) -> None:
        """Write the ``STOP`` file (at once, or as soon as the worker is launched)."""
        with self._lock:
            self._stop_requested = True
            run_dir = self._run_dir
        if run_dir is not None:
            self._request_stop(run_dir)

    def save_now(self) -> None:
        """Write the ``SAVE`` file."""
        from core.detach import request_checkpoint

        if self._run_dir is not None:
            request_checkpoint(self._run_dir)

    @staticmethod
    def _request_stop(run_dir: Path) -> None:
        from core.detach import request_stop

        request_stop(run_dir)


class InProcessRun:
    """A run in a thread of this process: an engine built by ``factory`` (default
    :class:`core.engine.Engine`, imported only when the run starts)."""

    detached = False

    def __init__(self, config: RunConfig, sink: EventSink, workspace: str | Path,
                 factory: Callable[..., Any] | None = None,
                 resume_dir: str | Path | None = None) -> None:
        self.config = config
        self.sink = sink
        self.workspace = str(workspace)
        self.factory = factory
        self.resume_dir = str(resume_dir) if resume_dir else None
        self.engine: Any = None
        """The engine, once built."""
        self._lock = threading.Lock()
        self._stop_requested = False

    @property
    def run_dir(self) -> Path | None:
        """The engine's run directory (known once its setup made it)."""
        run_dir = getattr(self.engine, "run_dir", None)
        return Path(run_dir) if run_dir else None

    @property
    def pid(self) -> int | None:
        """This process."""
        return os.getpid()

    @property
    def running(self) -> bool:
        """Whether the engine's thread is alive."""
        return self.engine is not None and bool(getattr(self.engine, "running", False))

    def start(self) -> None:
        """Build the engine (importing torch takes seconds) and start its thread."""
        from core.machine import ensure_pci_bus_order
        from core.noise import hold_library_output

        ensure_pci_bus_order()
        noise = hold_library_output()  # import-time warnings of torch and transformers too
        try:
            factory = self.factory
            if factory is None:
                from core.engine import Engine as factory
            kwargs: dict[str, Any] = {"workspace": self.workspace}
            if self.resume_dir:
                kwargs["resume_dir"] = self.resume_dir
            engine = factory(self.config, self.sink, **kwargs)
        finally:
            noise.release()
        with self._lock:
            self.engine = engine
            stop = self._stop_requested
        if stop:
            engine.stop()
        engine.start()

    def follow(self, should_stop: Callable[[], bool]) -> None:
        """Wait for the engine's thread to end (its events reach the sink by themselves)."""
        engine = self.engine
        while engine is not None and not engine.join(timeout=0.2):
            if should_stop():
                return

    def stop(self) -> None:
        """Ask the engine to stop (at once, or as soon as it is built)."""
        with self._lock:
            self._stop_requested = True
            engine = self.engine
        if engine is not None:
            engine.stop()

    def save_now(self) -> None:
        """Ask the engine for a checkpoint."""
        if self.engine is not None:
            self.engine.save_now()
