"""The app's screens: the mode, the key and the one name each goes by.

Headers, the command palette, the key panel and the README use these names and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple


class ScreenName(NamedTuple):
    """One screen of the app."""

    mode: str
    """The app mode (``TunetopApp.MODES`` key)."""
    key: str
    """The key that switches to it, on every screen."""
    name: str
    """Its one name: header, palette, key panel and README."""
    purpose: str
    """What it is for, in a few words (the palette's help line)."""


SCREENS: tuple[ScreenName, ...] = (
    ScreenName("dataset", "1", "Data", "Open, browse and check the training data."),
    ScreenName("hyperparams", "2", "Config", "Edit the run config and see what it costs."),
    ScreenName("training", "3", "Train", "Start and watch a run."),
    ScreenName("review", "4", "Review", "Compare the fine-tuned and the base model, blind."),
    ScreenName("runs", "5", "Runs", "Past and running runs of the workspace."),
    ScreenName("chat", "6", "Chat", "Talk to the base model and the fine-tune, side by side."),
)
"""Every screen, in key order."""

BY_MODE: dict[str, ScreenName] = {screen.mode: screen for screen in SCREENS}
"""The screens by mode."""
