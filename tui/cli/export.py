"""``tunetop export RUN_DIR``: a finished run's adapter, or a standalone merged model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui.cli.subcommand import Subcommand


class Export(Subcommand):
    """Export a run with :mod:`core.export`."""

    name = "export"
    help = "Export a finished run's adapter, or merge it into the base."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The run, ``--merge`` and ``--out``."""
        parser.add_argument("run_dir", help="Run directory.")
        parser.add_argument("--merge", action="store_true", help="Save a standalone merged model.")
        parser.add_argument("--out", default=None, help="Output directory (default: inside the run).")

    def run(self, args: argparse.Namespace) -> int:
        """Export; 1 with the reason when the run cannot be exported."""
        return export_main(args.run_dir, args.out, args.merge)


def export_main(run_dir: str, out: str | None, merge: bool) -> int:
    """``tunetop export``: 0 on success, 1 with a clear message otherwise."""
    from core.export import ExportError, export_adapter, export_merged

    run = Path(run_dir)
    target = Path(out) if out else run / ("export-merged" if merge else "export-adapter")
    try:
        if merge:
            path, note = export_merged(run, target)
            if note:
                print(note)
        else:
            path = export_adapter(run, target)
    except (ExportError, FileNotFoundError) as exc:
        print(f"tunetop export: {exc}", file=sys.stderr)
        return 1
    print(f"exported {'merged model' if merge else 'adapter'} to {path}")
    return 0
