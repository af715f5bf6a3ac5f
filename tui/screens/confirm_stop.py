"""The dialog that asks before a run is stopped (the training screen's ``x``)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmStop(ModalScreen[bool]):
    """Asks before stopping a run: it stops after the current step and saves a checkpoint."""

    DEFAULT_CSS = """
    ConfirmStop {
        align: center middle;
    }
    ConfirmStop > Vertical {
        width: 60;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $panel;
    }
    ConfirmStop Label { width: 100%; margin-bottom: 1; }
    ConfirmStop Horizontal { height: auto; align-horizontal: right; }
    ConfirmStop Button { margin-left: 1; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Stop", id="confirm-stop.yes"),
        Binding("n,escape", "answer(False)", "Keep training", id="confirm-stop.no"),
    ]
    """``y`` stops, ``n`` or Escape keeps training."""

    def __init__(self, detached: bool = False) -> None:
        super().__init__()
        self.detached = detached

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        where = "The detached run" if self.detached else "The run"
        with Vertical():
            yield Label(
                f"Stop training? {where} stops after the current step and saves a "
                "checkpoint you can resume from (runs screen, key r)."
            )
            with Horizontal():
                yield Button("Keep training (n)", id="keep")
                yield Button("Stop (y)", variant="error", id="stop")

    def action_answer(self, stop: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(stop)

    @on(Button.Pressed, "#stop")
    def confirm(self) -> None:
        """The user chose to stop."""
        self.dismiss(True)

    @on(Button.Pressed, "#keep")
    def cancel(self) -> None:
        """The user chose to keep training."""
        self.dismiss(False)
