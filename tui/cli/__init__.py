"""The ``tunetop`` command: opens the app, or runs a headless sub-command.

Each sub-command is a module of this package that registers itself (see
:mod:`tui.cli.subcommand`); :func:`build_parser` imports them all, so they import the engine
lazily, which keeps opening the app fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from typing import NoReturn

from core.config import ConfigError
from core.envinfo import tunetop_version
from tui.cli.subcommand import SUBCOMMANDS, Subcommand


def load_subcommands() -> dict[str, type[Subcommand]]:
    """Import every sub-command module of this package; the registry they filled."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return SUBCOMMANDS


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``tunetop`` and of every registered sub-command."""
    commands = load_subcommands()
    parser = argparse.ArgumentParser(
        prog="tunetop",
        description="Fine-tune LLMs with LoRA, QLoRA or full SFT from the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"tunetop {tunetop_version()}")
    if "" in commands:
        commands[""]().add_arguments(parser)
    sub = parser.add_subparsers(dest="command")
    for name in sorted(n for n in commands if n):
        command = commands[name]
        command().add_arguments(sub.add_parser(name, help=command.help,
                                               description=command.description or command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tunetop`` console script; the exit status."""
    # The tokenizer's own threads would compete with the UI and warn over it after a fork.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return SUBCOMMANDS[args.command or ""]().run(args)
    except ConfigError as exc:
        print(f"tunetop: {exc}", file=sys.stderr)
        return 2


def run() -> None:
    """The console script: :func:`main`, then exit (at once after the TUI, see
    :func:`tui.cli.app.run_app`)."""
    from tui.cli import app

    try:
        code = main()
        sys.stdout.flush()  # a reader gone shows here, not as an error at interpreter exit
    except BrokenPipeError:
        _reader_gone()
    if app.app_ran:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _reader_gone() -> NoReturn:
    """Standard output's reader went away (``tunetop inspect FILE | head -1``): exit quietly,
    with the status of a command killed by SIGPIPE, as Unix tools do. What is still buffered
    goes to /dev/null, or Python would report a second broken pipe as it flushes at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    if os.path.sameopenfile(sys.stdout.fileno(), sys.stderr.fileno()):
        os.dup2(devnull, sys.stderr.fileno())  # 2>&1 into the same closed pipe
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)
