"""The one confirmation dialog: keys and buttons give the answer to the caller."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Button, Label

from tui.widgets.confirm import Confirm


class AskingApp(App):
    """Pushes one Confirm at start and keeps every answer it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[bool | None] = []

    def on_mount(self) -> None:
        self.push_screen(Confirm("Reveal which model wrote each side?", "Reveal", "Stay blind",
                                 yes_variant="error"), self.answers.append)


@pytest.mark.parametrize(("keys", "answer"), [(["y"], True), (["n"], False), (["escape"], False),
                                              (["x", "y"], True)])
async def test_keys_answer(keys, answer):
    app = AskingApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert app.answers == [answer]
        assert not isinstance(app.screen, Confirm)


@pytest.mark.parametrize(("button", "answer"), [("#confirm-yes", True), ("#confirm-no", False)])
async def test_buttons_answer_and_show_the_labels_and_keys(button, answer):
    app = AskingApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, Confirm)
        assert str(dialog.query_one(Label).content) == "Reveal which model wrote each side?"
        yes, no = dialog.query_one("#confirm-yes", Button), dialog.query_one("#confirm-no", Button)
        assert (str(yes.label), str(no.label), yes.variant) == ("Reveal (y)", "Stay blind (n)", "error")
        await pilot.click(button)
        await pilot.pause()
        assert app.answers == [answer]
