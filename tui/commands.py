"""The app's command-palette provider: every action of the screen in front, and the others.

The actions come from the screen's own key bindings, so a key added to a screen is in the
palette too, under the screen's one name, titled with the binding's description and tooltip
(which the key panel shows the same way: "Save" + "the config to a YAML file" reads
"Config: Save the config to a YAML file"), and offered only while the screen's
``check_action`` allows it (a dataset filter not already on, "Reveal" before the reveal...).
Keys that only move or go back are not commands. A screen with a provider of its own (the
training screen's run commands) offers its actions through it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from tui.screen_names import BY_MODE, SCREENS

NOT_COMMANDS = frozenset({"back", "close_path"})
"""Actions of screen keys that only go back or close a bar: not offered in the palette."""


def screen_commands(screen: Screen, name: str) -> list[tuple[str, str, str]]:
    """The actions the palette offers for ``screen`` (called ``name``) now: (title, action,
    help)."""
    if set(type(screen).COMMANDS) - set(Screen.COMMANDS):
        return []  # the screen's own provider lists them
    commands: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for item in type(screen).BINDINGS:
        if not isinstance(item, Binding) or item.action in seen or not item.description:
            continue
        seen.add(item.action)
        action_name, parameters = parse(item.action)[1:]
        if action_name in NOT_COMMANDS or not _available(screen, action_name, parameters):
            continue
        keys = ", ".join(screen.app.get_key_display(Binding(key, item.action))
                         for key in item.key.split(","))
        commands.append((f"{name}: {item.description} {item.tooltip}".rstrip(), item.action,
                         f"Key {keys}."))
    return commands


def _available(screen: Screen, action: str, parameters: tuple[object, ...]) -> bool:
    """Whether the screen allows the action now; a filter already on is not offered again."""
    if screen.check_action(action, parameters) is not True:
        return False
    if action == "filter":
        return getattr(screen, "filter_mode", None) not in parameters
    if action == "show_all":
        return getattr(screen, "filter_mode", "all") != "all" or bool(getattr(screen, "search", ""))
    return True


class TunetopCommands(Provider):
    """Offers the actions of the screen in front and a switch to every other screen."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        screen = self.screen
        front = BY_MODE.get(app.current_mode)
        name = front.name if front is not None else type(screen).__name__
        commands = [(title, self._screen_action(screen, action), help_text)
                    for title, action, help_text in screen_commands(screen, name)]
        for target in SCREENS:
            if target.mode != app.current_mode and target.mode in app.MODES:
                commands.append((f"Go to {target.name}", self._switch(target.mode),
                                 f"{target.purpose} Key {target.key}."))
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
    def _screen_action(screen: Screen, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await screen.run_action(action)

        return run

    def _switch(self, mode: str) -> Callable[[], Any]:
        app = self.app

        async def run() -> None:
            await app.run_action(f"switch_mode({mode!r})")

        return run
