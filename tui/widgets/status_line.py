"""The dataset screen's status line: the task running now, with a progress bar after a second.

The screen keeps one :class:`Phase` per running task and calls :meth:`StatusLine.show` on
its tick; with no task running, the line shows a hint instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

PROGRESS_AFTER = 1.0
"""Seconds a task runs before its progress bar appears."""


@dataclass
class Phase:
    """A task shown in the status line while it runs."""

    label: str
    started: float = field(default_factory=time.monotonic)
    done: float = 0
    total: float | None = None
    """``None`` when the size is unknown (the bar pulses)."""
    detail: str = ""
    """Shown after the label, e.g. ``350,000 rows``."""


class StatusLine(Horizontal):
    """What is running (or a hint when nothing is), and its progress."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._shown = ""

    def compose(self) -> ComposeResult:
        """The text, then the bar."""
        yield Label(id="status-text")
        yield ProgressBar(id="progress", show_eta=False)

    @property
    def text(self) -> str:
        """The text shown now."""
        return self._shown

    def show(self, phase: Phase | None, others: int = 0, idle: str = "") -> None:
        """Show ``phase`` (and how many ``others`` run too), or ``idle`` when it is ``None``."""
        bar = self.query_one("#progress", ProgressBar)
        if phase is None:
            self._set_text(idle)
            bar.display = False
            return
        detail = f" {phase.detail}" if phase.detail else ""
        self._set_text(f"{phase.label}…{detail}" + (f" (+{others} more)" if others else ""))
        bar.display = time.monotonic() - phase.started >= PROGRESS_AFTER
        if bar.display:
            bar.update(total=phase.total, progress=phase.done)

    def _set_text(self, text: str) -> None:
        """Show ``text`` if it changed (no relayout: the line's size is fixed)."""
        if text != self._shown:
            self._shown = text
            self.query_one("#status-text", Label).update(text, layout=False)
