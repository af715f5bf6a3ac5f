"""A yes/no question in a dialog, for actions that cannot be taken back.

Push it with a callback: ``app.push_screen(Confirm("Reveal…?", "Reveal", "Stay blind"), done)``;
``done`` gets ``True`` for yes (``y`` or the yes button) and ``False`` for no (``n``, Escape or
the no button).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label
from textual.widgets.button import ButtonVariant


class Confirm(ModalScreen[bool]):
    """Asks one question; the answer is the screen's result."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 64;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $panel;
    }
    Confirm Label { width: 100%; margin-bottom: 1; }
    Confirm Horizontal { height: auto; align-horizontal: right; }
    Confirm Button { margin-left: 1; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]
    """``y`` answers yes; ``n`` or Escape answers no."""

    def __init__(self, question: str, yes: str, no: str,
                 yes_variant: ButtonVariant = "warning") -> None:
        """``yes`` and ``no`` label the buttons (the keys are added); ``yes_variant`` colours
        the yes button (``error`` for something destructive)."""
        super().__init__()
        self.question = question
        self.yes = yes
        self.no = no
        self.yes_variant: ButtonVariant = yes_variant

    def compose(self) -> ComposeResult:
        """The question, then the no and yes buttons."""
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button(f"{self.no} (n)", id="confirm-no")
                yield Button(f"{self.yes} (y)", variant=self.yes_variant, id="confirm-yes")

    def action_answer(self, yes: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(yes)

    @on(Button.Pressed, "#confirm-yes")
    def answer_yes(self) -> None:
        """The yes button."""
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def answer_no(self) -> None:
        """The no button."""
        self.dismiss(False)
