"""A dialog listing the workspace's saved conversations, newest first, to reopen one.

Push it with a callback: ``app.push_screen(ChatList(chats), done)``; ``done`` gets the chosen
file (``Enter``) or ``None`` (``Escape``).
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui.widgets.confirm import Dialog


class ChatList(Dialog[Path | None]):
    """The saved conversations; the chosen one's file is the screen's result."""

    DEFAULT_CSS = """
    ChatList > Vertical { width: 72; max-height: 80%; padding: 0 1; }
    ChatList OptionList { height: auto; max-height: 14; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="chat-list.cancel")]
    """Enter opens the highlighted conversation; Escape closes the list."""

    def __init__(self, chats: list[tuple[Path, str]]) -> None:
        """``chats``: ``(file, first message)`` as :func:`core.chat.list_chats` gives them."""
        super().__init__()
        self.chats = chats

    def compose(self) -> ComposeResult:
        """A title over the list: the file's date and the first message."""
        with Vertical():
            yield Label("Reopen a conversation (Enter), Esc to cancel")
            yield OptionList(*(Option(f"{path.stem}  {first[:48]}", id=str(i))
                               for i, (path, first) in enumerate(self.chats)))

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        """Enter on a conversation."""
        self.dismiss(self.chats[int(event.option.id or 0)][0])

    def action_cancel(self) -> None:
        """Close without opening one."""
        self.dismiss(None)
