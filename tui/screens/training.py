"""The training screen (being built; see its issue)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class TrainingScreen(Screen):
    """Placeholder until the training screen lands."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("training")
        yield Footer()
