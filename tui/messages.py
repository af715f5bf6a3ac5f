"""Textual messages that carry engine events (and run requests) to the screens.

The bridge (``tui/bridge.py``) wraps each ``core.events`` event in one of these and posts it
from the engine's thread; handlers run on the UI thread.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from core.config import RunConfig
from core.events import Event, StepLogged


class EventReceived(Message):
    """One engine event other than a training step (steps come batched in
    :class:`StepsLogged`): the run opened, a phase or evaluation progressed, a validation loss,
    a checkpoint, a log line, or the event that ended the run."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class StepsLogged(Message):
    """Training steps logged since the last post, oldest first (at most ~10 posts a second)."""

    def __init__(self, events: tuple[StepLogged, ...]) -> None:
        super().__init__()
        self.events = events

    @property
    def latest(self) -> StepLogged:
        """The newest step of the batch."""
        return self.events[-1]


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


class ChatRun(Message, bubble=False):
    """Ask the chat screen to talk to the run in ``run_dir`` (its final output beside its base)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
