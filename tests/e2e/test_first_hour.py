"""The first hour at 80x24 over SSH (issue 14), in a real terminal: the installed ``tunetop``
in a pty, keys sent as bytes in bursts, the screen rendered by pyte.

Two app sessions keep the suite short: one walks every screen (screen keys, ``?``, footers,
the Config form's editor), one edits in bursts, then quits with unsaved edits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from terminal import Terminal

from core.config import RunConfig
from tui.screen_names import SCREENS

pytestmark = pytest.mark.e2e


def header(term: Terminal) -> str:
    """The top line: ``tunetop · <screen>``."""
    return term.line(0)


def key_panel_shown(shown: str) -> bool:
    """Whether the key panel is open: its left edge (``▏``) runs down the screen's side."""
    return sum("▏" in line for line in shown.splitlines()[1:-1]) >= 15


def config_value(shown: str, path: str) -> str:
    """The value shown under a field's name on the Config screen."""
    lines = shown.splitlines()
    for index, line in enumerate(lines):
        name = line.lstrip("│ █●")
        if name.startswith(path + " ") or name.rstrip(" │") == path:
            return lines[index + 1].strip("│ █").split("  ")[0].strip()
    raise AssertionError(f"{path} not on screen:\n{shown}")


def find_field(term: Terminal, path: str) -> None:
    """Jump to a Config field with ``/`` and its name, as a user would."""
    term.send("/")
    term.wait_for("Jump to a field")
    term.send(path)
    # The palette lists the match on a line of its own (the form's lines have borders).
    term.wait_for(lambda shown: any(line.strip().startswith(path) and "│" not in line
                                    for line in shown.splitlines()))
    term.send("enter")
    term.wait_for(lambda shown: "Jump to a field" not in shown
                  and (f"█  {path}" in shown or f"█● {path}" in shown))


def test_every_screen_with_its_keys_footer_and_help(tmp_path: Path):
    """1-5 and ? work on every screen, also right after the Config form's editor was open;
    every footer shows ``? Keys``; the field editor opens where it is seen, typed keys land
    in it, Esc gives the keys back to the screen."""
    with Terminal.start(tmp_path) as term:
        term.wait_for("tunetop · Data", timeout=60)
        term.wait_for(lambda shown: "? Keys" in term.footer())
        for screen in (*SCREENS[1:], SCREENS[0], SCREENS[1]):
            term.send(screen.key)
            term.wait_for(lambda shown, name=screen.name: f"tunetop · {name}" in header(term))
            term.wait_for(lambda shown: "? Keys" in term.footer() and "^p" in term.footer())
            term.send("?")
            term.wait_for(key_panel_shown)
            term.send("?")
            term.wait_for(lambda shown: not key_panel_shown(shown))

        # Config: the list has the keyboard; Enter edits the highlighted field in place.
        shown = term.wait_for("█  model.name_or_path")
        model = config_value(shown, "model.name_or_path")
        term.send("down", "down", "enter")  # past model.adapter: model.revision, edited
        term.wait_for(lambda shown: "⏎ Done" in term.footer())
        term.send("main")  # typed where it is seen
        term.wait_for(lambda shown: config_value(shown, "model.revision") == "main")
        term.send("escape")
        term.wait_for(lambda shown: "⏎ Edit" in term.footer())
        for screen in (*SCREENS[2:], SCREENS[0], SCREENS[1]):
            term.send(screen.key)
            term.wait_for(lambda shown, name=screen.name: f"tunetop · {name}" in header(term))
        shown = term.wait_for("model.revision")
        assert config_value(shown, "model.name_or_path") == model
        assert config_value(shown, "model.revision") == "main"


def test_burst_after_tab_then_quit_with_unsaved_edits(tmp_path: Path):
    """``Tab 0 . 1`` in one packet edits the next field; quitting asks while the edits are
    unsaved; Save writes them into the workspace; then quitting asks nothing."""
    with Terminal.start(tmp_path) as term:
        term.wait_for("tunetop · Data", timeout=60)
        term.send("2")
        term.wait_for(lambda shown: "tunetop · Config" in header(term) and "⏎ Edit" in shown)
        find_field(term, "lora.lora_alpha")
        term.send("enter", "64", "tab", "0.1", "enter")  # one write: one packet
        shown = term.wait_for(lambda shown: config_value(shown, "lora.lora_dropout") == "0.1")
        assert config_value(shown, "lora.lora_alpha") == "64"

        term.send("ctrl+q")
        term.wait_for("Quit (y)")
        assert "unsaved changes" in term.text() and "lora.lora_dropout" in term.text()
        term.send("n")
        term.wait_for(lambda shown: "Quit (y)" not in shown)
        assert term.process.poll() is None

        term.send("ctrl+s")
        term.wait_for("Save to")
        saved = tmp_path / "runs" / "tunetop.yaml"
        assert str(saved) in term.text() or "runs/tunetop.yaml" in term.text()
        term.send("enter")
        term.wait_for("Saved")
        config = RunConfig.load(saved)
        assert config.lora.lora_alpha == 64 and config.lora.lora_dropout == pytest.approx(0.1)

        term.send("ctrl+q")
        assert term.wait_exit(timeout=15) == 0
