"""Panes of the review screen: one model answer ("Left" or "Right") and the prompt.

Both are scrollable so long answers stay readable at 80x24; they render what the screen
gives them and know nothing of which model wrote what.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

MARKS = ("better", "worse", "tie", "bad", "skip", "")
"""Verdict marks a pane can carry: its border colour shows the current judgement."""


def render_conversation(messages: Sequence[dict[str, str]], show_system: bool = False) -> Text:
    """The prompt turns, one paragraph each, role names dimmed; the system prompt comes last.

    The user's turn is what a reviewer reads first, and a long system prompt would fill a
    small pane: it is one dim line unless ``show_system``.
    """
    text = Text()
    turns = [m for m in messages if m.get("role") != "system"]
    for i, message in enumerate(turns):
        if i:
            text.append("\n")
        text.append(f"{message.get('role', '')}: ", style="bold")
        text.append(message.get("content", ""))
    for message in (m for m in messages if m.get("role") == "system"):
        content = message.get("content", "")
        first = content.splitlines()[0] if content else ""
        if not show_system and (len(first) > SYSTEM_PREVIEW or first != content):
            content = f"{first[:SYSTEM_PREVIEW].rstrip()}… (y: whole system prompt)"
        text.append("\n" if turns else "")
        text.append("system: ", style="bold dim")
        text.append(content, style="dim")
    return text


SYSTEM_PREVIEW = 48
"""Characters of a collapsed system prompt."""


class ReviewTextPane(VerticalScroll):
    """A titled, scrollable block of text (the prompt, the reference, or an answer)."""

    DEFAULT_CSS = """
    ReviewTextPane {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    ReviewTextPane:focus { border: round $accent; }
    ReviewTextPane > Static { width: 100%; }
    ReviewTextPane.-better { border: round $success; border-title-color: $success; }
    ReviewTextPane.-worse { border: round $panel; }
    ReviewTextPane.-tie { border: round $warning; border-title-color: $warning; }
    ReviewTextPane.-bad { border: round $error; border-title-color: $error; }
    ReviewTextPane.-skip { border: dashed $panel-lighten-2; }
    """

    content: reactive[Text | str] = reactive("", layout=True)
    """What the pane shows."""
    mark: reactive[str] = reactive("")
    """One of ``MARKS``: the judgement this pane carries."""

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.border_title = title

    def compose(self) -> ComposeResult:
        """One Static holding the text."""
        yield Static("", markup=False)

    def watch_content(self, content: Text | str) -> None:
        """Show new text from the top."""
        self.query_one(Static).update(content)
        self.scroll_home(animate=False)

    def watch_mark(self, old: str, new: str) -> None:
        """Swap the border class for the verdict."""
        if old:
            self.remove_class(f"-{old}")
        if new:
            self.add_class(f"-{new}")
