"""``tunetop attach RUN_DIR``: open the app on the training screen, following a run.

The run keeps its own process (a detached run) or belongs to another tunetop; attaching only
reads its ``events.jsonl``. Stopping (``x``) writes the run's ``STOP`` file, which the worker
picks up after the current step; quitting leaves the run training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import ConfigError, RunConfig
from core.runs import CONFIG_FILE, EVENTS_FILE
from tui.cli.app import run_app
from tui.cli.subcommand import Subcommand

if TYPE_CHECKING:
    from tui.cli._attach_app import AttachApp


class Attach(Subcommand):
    """Follow a run in the app."""

    name = "attach"
    help = "Follow a (detached) run in the app; it can be stopped there."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The run directory."""
        parser.add_argument("run_dir", help="Run directory holding events.jsonl.")

    def run(self, args: argparse.Namespace) -> int:
        """Open the app on the run."""
        return attach_main(args.run_dir)


def make_attach_app(run_dir: str | Path, **kwargs: Any) -> AttachApp:
    """The attach app for ``run_dir``, with the run's config and workspace (tests pass fakes)."""
    from tui.cli._attach_app import AttachApp

    path = Path(run_dir)
    if "config" not in kwargs:
        try:
            kwargs["config"] = RunConfig.load(path / CONFIG_FILE)
        except ConfigError:
            kwargs["config"] = RunConfig()
    kwargs.setdefault("workspace", str(path.parent))
    return AttachApp(path, **kwargs)


def attach_main(run_dir: str) -> int:
    """Entry point of ``tunetop attach RUN_DIR``; 2 when it is not a run directory."""
    from core.paths import link_fix, missing_reason

    path = Path(run_dir)
    if not path.is_dir() or not ((path / EVENTS_FILE).exists() or (path / CONFIG_FILE).exists()):
        reason = missing_reason(path)
        fix = f"{link_fix(path)}." if "symbolic link" in reason else _attach_hint(path)
        what = reason if reason != "exists" else (
            f"is not a run directory (no {EVENTS_FILE} or {CONFIG_FILE})")
        print(f"tunetop attach: {run_dir} {what}. Fix: {fix}", file=sys.stderr)
        return 2
    return run_app(make_attach_app(path))


def _attach_hint(path: Path) -> str:
    """Where the runs are: the newest run when ``path`` is a workspace, else the layout."""
    from core.runs import list_runs

    runs = list_runs(path) if path.is_dir() else []
    if runs:
        return (f"{path} is a workspace; follow its newest run with `tunetop attach {runs[0].path}` "
                f"({len(runs)} run{'s' if len(runs) != 1 else ''} there).")
    return "give a run directory: runs live under the workspace, e.g. runs/20250101-120000-lora."
