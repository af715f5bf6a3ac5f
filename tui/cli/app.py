"""Plain ``tunetop``: open the app (``--config``, ``--dataset``, ``--workspace``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.config import RunConfig
from tui.cli.subcommand import Subcommand

app_ran = False
"""Set once the TUI ran in this process: :func:`tui.cli.run` then exits without joining threads."""


def run_app(app: Any) -> int:
    """Run a Textual app on a loop of its own; its return code (0 unless it set one).

    ``asyncio.run`` would wait on quit for every thread worker still going, and one still
    importing torch to load a tokenizer holds the quit for seconds. Those workers only read;
    a run training in this process was stopped and joined by the quit action before the app
    exits, so :func:`tui.cli.run` leaves without them.
    """
    global app_ran
    import asyncio

    app_ran = True
    loop = asyncio.new_event_loop()
    app.run(loop=loop)
    farewell = getattr(app, "farewell", None)
    if farewell:
        print(farewell, file=sys.stderr)
    return app.return_code or 0


def app_main(config_path: str | None, dataset: str | None, workspace: str | None) -> int:
    """Open the TUI; the runs go under ``workspace``, or the config's ``output_dir``."""
    from tui.app import make_app

    config = RunConfig.load(config_path) if config_path else RunConfig()
    return run_app(make_app(config=config, dataset=dataset, workspace=workspace or config.output_dir))


class OpenApp(Subcommand):
    """Plain ``tunetop``: the app, on the dataset screen."""

    name = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of plain ``tunetop`` (``--workspace`` is also ``tunetop train``'s)."""
        parser.add_argument("--config", help="YAML run config to open the app with.")
        parser.add_argument("--dataset", help="Dataset file to open (overrides the config's data.path).")
        parser.add_argument("--workspace", default=None,
                            help="Directory holding the runs (default: the config's output_dir, runs).")

    def run(self, args: argparse.Namespace) -> int:
        """Open the app."""
        return app_main(args.config, args.dataset, args.workspace)
