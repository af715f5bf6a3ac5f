"""The run's log pane: stamped lines that keep the newest one in view.

``RichLog`` scrolls to the end as it writes, but a pane that shrinks later (a short terminal,
an alert taking a line, the screen shown again) keeps its old offset and hides the newest
lines: the "Finished… Press r to review" line was off screen at 80x24. This pane follows the
end unless the user scrolled up to read, and goes back to following at the end.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog


class RunLog(RichLog):
    """A RichLog that follows its newest line through resizes, unless scrolled up."""

    def __init__(self, *, max_lines: int = 2000, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, wrap=True, markup=False, auto_scroll=True,
                         id=id, classes=classes)
        self.following = True
        """Whether the pane keeps the newest line in view (until the user scrolls up)."""
        self._texts: deque[str] = deque(maxlen=max_lines)

    @property
    def texts(self) -> list[str]:
        """The lines written, as plain text, before wrapping."""
        return list(self._texts)

    def write_line(self, line: Text) -> None:
        """Append ``line``; the pane scrolls to it unless the user is reading further up."""
        self._texts.append(line.plain)
        self.write(line, scroll_end=self.following)

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Scrolling up stops following; reaching the end again resumes it."""
        super().watch_scroll_y(old, new)
        if new < old and not self.is_vertical_scroll_end:
            self.following = False
        elif self.is_vertical_scroll_end:
            self.following = True

    def on_resize(self, event: Resize) -> None:
        """Keep the end in view when the pane changes size."""
        super().on_resize(event)
        self.show_newest()

    def show_newest(self) -> None:
        """Scroll to the newest line if following (after a resize or when shown again)."""
        if self.following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
