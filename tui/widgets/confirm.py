"""Dialogs over a screen: a question answered with buttons or keys, and the frame they share.

Push a :class:`Confirm` with a callback: ``app.push_screen(Confirm("Reveal…?", "Reveal", "Stay
blind"), done)``; ``done`` gets ``True`` for yes (``y`` or the yes button) and ``False`` for no
(``n``, Escape or the no button). A :class:`Question` offers any set of answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, ScreenResultType
from textual.widgets import Button, Label
from textual.widgets.button import ButtonVariant


class Dialog(ModalScreen[ScreenResultType]):
    """A framed box in the middle of the screen; subclasses compose what goes in it."""

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical {
        width: 64;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $primary;
        background: $panel;
    }
    Dialog Label { width: 100%; margin-bottom: 1; }
    """


class Answer(NamedTuple):
    """One button of a :class:`Question`: its label, the dialog's result and the button's id."""

    label: str
    value: Any
    id: str
    variant: ButtonVariant = "default"


class Question(Dialog[ScreenResultType]):
    """A question with a button per answer; the answer chosen is the screen's result.

    Subclasses bind each answer's key to ``answer(value)``.
    """

    DEFAULT_CSS = """
    Question Horizontal { height: auto; align-horizontal: right; }
    Question Button { margin-left: 1; }
    """

    def __init__(self, question: str, answers: Sequence[Answer]) -> None:
        super().__init__()
        self.question = question
        self.answers = tuple(answers)

    def compose(self) -> ComposeResult:
        """The question, then the buttons in the order given."""
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                for answer in self.answers:
                    yield Button(answer.label, variant=answer.variant, id=answer.id)

    def action_answer(self, value: Any) -> None:
        """Close the dialog with ``value``."""
        self.dismiss(value)

    @on(Button.Pressed)
    def button_pressed(self, event: Button.Pressed) -> None:
        """A button: close with its answer."""
        self.dismiss(next(a.value for a in self.answers if a.id == event.button.id))


class Confirm(Question[bool]):
    """Asks a yes/no question, for actions that cannot be taken back."""

    DEFAULT_CSS = """
    Confirm > Vertical { border: thick $warning; }
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
        super().__init__(question, (Answer(f"{no} (n)", False, "confirm-no"),
                                    Answer(f"{yes} (y)", True, "confirm-yes", yes_variant)))
