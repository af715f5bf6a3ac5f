"""The review screen (being built; see its issue)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class ReviewScreen(Screen):
    """Placeholder until the review screen lands."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("review")
        yield Footer()
