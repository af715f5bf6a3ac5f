"""The base of every ``tunetop`` sub-command, and the registry that subclassing it fills.

A sub-command is one module of :mod:`tui.cli` defining one :class:`Subcommand` subclass
(torchtune's ``_cli/`` and TRL's ``cli/commands/`` are the model): defining the class
registers it, and :func:`tui.cli.build_parser` imports every public module of the package,
so adding a sub-command is adding a module. Modules whose name starts with ``_`` are helpers,
not sub-commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from core.config import RunConfig

SUBCOMMANDS: dict[str, type[Subcommand]] = {}
"""Every defined sub-command by name; the empty name is plain ``tunetop``."""


class Subcommand:
    """One ``tunetop NAME``: its arguments and what it does.

    ``run`` imports what it needs (the engine, torch, the app) itself: every sub-command
    module is imported to build the parser, which must stay light.
    """

    name: ClassVar[str] = ""
    """The word after ``tunetop``; empty for plain ``tunetop``, whose arguments go on the
    top-level parser."""
    help: ClassVar[str] = ""
    """One line for ``tunetop --help``."""
    description: ClassVar[str | None] = None
    """The text atop ``tunetop NAME --help`` (default: :attr:`help`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        taken = SUBCOMMANDS.get(cls.name)
        if taken is not None and taken.__module__ != cls.__module__:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} and {taken.__module__}."
                            f"{taken.__qualname__} both name the sub-command {cls.name!r}.")
        SUBCOMMANDS[cls.name] = cls

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare this sub-command's arguments on ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work for the parsed ``args``; the process's exit status."""
        raise NotImplementedError


def print_config_warnings(config: RunConfig, command: str) -> None:
    """Print the config's warnings (valid but unusual values) to stderr; the command goes on."""
    for problem in config.validate():
        if not problem.is_error:
            print(f"tunetop {command}: warning: {problem}", file=sys.stderr)
