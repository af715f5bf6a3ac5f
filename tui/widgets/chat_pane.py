"""One side of the chat: the conversation with one model, scrolled to the newest text.

The screen owns the conversation; the pane renders the turns it is given and updates the
reply being streamed in place (one ``Static`` per turn, so a new word redraws one widget).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


@dataclass
class Turn:
    """One turn as shown: who spoke, what, and a dim note (speed, stopped)."""

    role: str
    """``user``, ``assistant`` or ``note`` (a line about the chat, e.g. a model change)."""
    text: str
    note: str = ""


class ChatPane(VerticalScroll, can_focus=True):
    """The turns of one side; the border title names the model (or Left/Right when blind)."""

    DEFAULT_CSS = """
    ChatPane {
        border: round $panel-lighten-2;
        border-title-color: $text-accent;
        padding: 0 1;
        height: 1fr;
    }
    ChatPane:focus {
        border: round $primary;
    }
    ChatPane > .chat-user {
        color: $text-accent;
        margin-top: 1;
    }
    ChatPane > .chat-user:first-child {
        margin-top: 0;
    }
    ChatPane > .chat-note {
        color: $text-muted;
    }
    """

    def show(self, turns: list[Turn]) -> None:
        """Render every turn again (after a clear, a swap of sides, a reveal)."""
        self.remove_children()
        self.mount_all([self._widget(turn) for turn in turns])
        self.scroll_end(animate=False)

    def add(self, turn: Turn) -> None:
        """Append one turn."""
        self.mount(self._widget(turn))
        self.scroll_end(animate=False)

    def update_last(self, turn: Turn) -> None:
        """Redraw the newest turn (the reply being streamed)."""
        children = self.query_children(Static)
        if not children:
            self.add(turn)
            return
        last = children.last()
        last.update(self._text(turn))
        self.scroll_end(animate=False)

    @staticmethod
    def _text(turn: Turn) -> Text:
        if turn.role == "user":
            return Text(f"› {turn.text}")
        if turn.role == "note":
            return Text(turn.text)
        text = Text(turn.text or "…")
        if turn.note:
            text.append(f"\n{turn.note}", style="dim")
        return text

    def _widget(self, turn: Turn) -> Static:
        return Static(self._text(turn), classes=f"chat-{turn.role}", markup=False)
