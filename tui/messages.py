"""Textual messages that carry engine events (and run requests) to the screens.

The bridge (``tui/bridge.py``) wraps each ``core.events`` event in one of these and posts it
from the engine's thread; handlers run on the UI thread.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from core.config import RunConfig
from core.events import (
    TERMINAL_EVENTS,
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    Event,
    MessageLogged,
    PhaseChanged,
    RunStarted,
    StepLogged,
    TerminalEvent,
)


class EngineMessage(Message):
    """Base of messages that wrap one engine event."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunOpened(EngineMessage):
    """The engine finished setup and training begins (wraps ``RunStarted``)."""

    event: RunStarted


class StepsLogged(Message):
    """Training steps logged since the last post, oldest first (at most ~10 posts a second)."""

    def __init__(self, events: tuple[StepLogged, ...]) -> None:
        super().__init__()
        self.events = events

    @property
    def latest(self) -> StepLogged:
        """The newest step of the batch."""
        return self.events[-1]


class EvalReceived(EngineMessage):
    """A validation loss was measured (wraps ``EvalLogged``)."""

    event: EvalLogged


class ProgressReceived(EngineMessage):
    """The run entered or advanced in a phase, or an evaluation progressed (wraps
    ``PhaseChanged`` or ``EvalProgressed``)."""

    event: PhaseChanged | EvalProgressed


class CheckpointReceived(EngineMessage):
    """A checkpoint was written (wraps ``CheckpointSaved``)."""

    event: CheckpointSaved


class LogReceived(EngineMessage):
    """A line for the log pane (wraps ``MessageLogged``)."""

    event: MessageLogged


class RunEnded(EngineMessage):
    """The run finished, stopped or failed (wraps the terminal event)."""

    event: TerminalEvent


class StartRun(Message, bubble=False):
    """Ask the training screen to start a run with ``config``.

    Like :class:`FollowRun` and :class:`ReviewRun`, a screen posts it to the app, which
    switches to the training screen and forwards it there; it does not bubble back up.
    """

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config


class FollowRun(Message, bubble=False):
    """Ask the training screen to follow (attach to) the run in ``run_dir``."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)


class CloneConfig(Message, bubble=False):
    """Ask the config screen to edit ``config`` (a run's config, cloned for a new run)."""

    def __init__(self, config: RunConfig, source: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        self.source = Path(source) if source else None
        """The run it came from."""


class ReviewRun(Message, bubble=False):
    """Ask the review screen to preselect the run in ``run_dir`` (the one that just ended)."""

    def __init__(self, run_dir: str | Path | None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir else None


def message_for(event: Event) -> Message | None:
    """The message that carries ``event`` (steps are batched by the bridge, not here)."""
    if isinstance(event, StepLogged):
        return StepsLogged((event,))
    if isinstance(event, RunStarted):
        return RunOpened(event)
    if isinstance(event, EvalLogged):
        return EvalReceived(event)
    if isinstance(event, CheckpointSaved):
        return CheckpointReceived(event)
    if isinstance(event, (PhaseChanged, EvalProgressed)):
        return ProgressReceived(event)
    if isinstance(event, MessageLogged):
        return LogReceived(event)
    if isinstance(event, TERMINAL_EVENTS):
        return RunEnded(event)
    return None


class ChatRun(Message, bubble=False):
    """Ask the chat screen to talk to the run in ``run_dir`` (its final output beside its base)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
