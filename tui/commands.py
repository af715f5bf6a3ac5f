"""The app's command-palette provider: what makes sense now, by name.

Always: go to another screen. On the dataset screen: filters that are not already on, show
all rows while filtered, search, open another file, switch model or max length, next pane.
Screens may add their own providers (the training screen does for runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.screens.dataset import DatasetScreen

SCREENS = (
    ("dataset", "Go to: Dataset screen", "Open, browse and check the training data (key 1)."),
    ("hyperparams", "Go to: Hyperparameters screen", "Edit the run config, see its cost (key 2)."),
    ("training", "Go to: Training screen", "Start and watch a run (key 3)."),
    ("review", "Go to: Review screen", "Compare the fine-tuned and base models (key 4)."),
    ("runs", "Go to: Runs screen", "Past and running runs (key 5)."),
)
"""Modes of the app: (mode, title, help)."""

DATASET_COMMANDS = (
    ("Dataset: show only rows with problems", "filter('problems')",
     "Dropped rows and rows with warnings (key p)."),
    ("Dataset: show only rows over max length", "filter('long')",
     "Rows the max length truncates (key l)."),
    ("Dataset: show only duplicates", "filter('duplicates')",
     "Exact and near duplicates, and validation rows leaked from training (key d)."),
    ("Dataset: show all rows", "show_all", "Drop the filter and the search (key a)."),
    ("Dataset: search rows…", "search", "Show rows containing a text (key /)."),
    ("Dataset: open another file…", "edit('#dataset-path')",
     "Type a path, or sample:support-tickets (key o)."),
    ("Dataset: change the model…", "edit('#dataset-model')",
     "Render and count with another tokenizer and chat template (key m)."),
    ("Dataset: change max length…", "edit('#dataset-max-length')",
     "Token budget per row (key t)."),
    ("Dataset: next pane", "next_pane", "Row, statistics, problems (key v)."),
)
"""Dataset-screen commands: (title, screen action, help)."""


def dataset_command_available(screen: DatasetScreen, action: str) -> bool:
    """Whether a dataset command fits the screen's state (a filter not already on...)."""
    if action.startswith("filter("):
        mode = action[len("filter('"):-2]
        return screen.store is not None and screen.filter_mode != mode
    if action == "show_all":
        return screen.filter_mode != "all" or bool(screen.search)
    return screen.check_action(action.split("(")[0], ()) is True


class TunetopCommands(Provider):
    """Offers screen switches and the current screen's dataset commands."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        commands: list[tuple[str, Callable[[], Any], str]] = []
        screen = self.screen
        if isinstance(screen, DatasetScreen):
            for title, action, help_text in DATASET_COMMANDS:
                if dataset_command_available(screen, action):
                    commands.append((title, self._screen_action(screen, action), help_text))
        current = app.current_mode
        for mode, title, help_text in SCREENS:
            if mode != current and mode in app.MODES:
                commands.append((title, self._switch(mode), help_text))
        return commands

    async def discover(self) -> Hits:
        """Every command that fits now, for the empty palette."""
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Commands that fit now and match ``query``."""
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)

    @staticmethod
    def _screen_action(screen: DatasetScreen, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await screen.run_action(action)

        return run

    def _switch(self, mode: str) -> Callable[[], Any]:
        app = self.app

        async def run() -> None:
            await app.run_action(f"switch_mode({mode!r})")

        return run
