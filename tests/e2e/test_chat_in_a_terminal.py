"""The chat screen in a real terminal at 80x24: the bundled model loads with its phase on
screen, a reply streams into the pane with its speed, Esc stops a long one and keeps its
text, ctrl+l clears, and screen keys work again once Esc left the message field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from terminal import Terminal

pytestmark = pytest.mark.e2e


def pane_lines(shown: str) -> list[str]:
    """The text inside the conversation pane (between its borders)."""
    return [line.strip("│ ") for line in shown.splitlines()[4:20] if line.startswith("│")]


def test_chat_with_the_bundled_model(tmp_path: Path):
    with Terminal.start(tmp_path) as term:
        term.wait_for("tunetop · Data", timeout=60)
        term.send("6")
        term.wait_for(lambda shown: "tunetop · Chat" in term.line(0) and "base bundled" in shown)
        # One burst: each key goes to the field focused when it arrives (selected: typing
        # replaces the value).
        term.send("t", "tab", "tab", "tab", "12")
        term.wait_for("Max 12")
        term.send("escape")  # alone: Escape then a key in one packet reads as alt+key
        term.send("enter", "Hello, who are you?", "enter")
        term.wait_for("Loading", timeout=60)  # the phase, while the model loads
        shown = term.wait_for(lambda shown: re.search(r"\d+ tokens · \d+ tok/s", shown),
                              timeout=240)
        lines = pane_lines(shown)
        assert lines[0] == "› Hello, who are you?"
        assert "Loading weights" not in shown  # library progress bars stay off the screen

        # A long answer: Esc stops it, the text so far stays.
        term.send("escape")
        term.send("t", "tab", "tab", "tab", "300")
        term.wait_for("Max 300")
        term.send("escape")
        term.send("enter", "Write a long story about a lighthouse.", "enter")
        term.wait_for(lambda shown: "tokens…" in term.line(21), timeout=60)
        term.send("escape")
        shown = term.wait_for("Stopped; the text so far is kept.", timeout=60)
        assert "stopped" in shown

        term.send("ctrl+l")
        term.wait_for(lambda shown: not pane_lines(shown) or not any(pane_lines(shown)))
        term.send("escape")
        term.send("1")  # Esc left the field: 1 is a screen key again
        term.wait_for(lambda shown: "tunetop · Data" in term.line(0))
