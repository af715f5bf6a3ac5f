"""``tunetop env``: what a bug report needs (versions, CUDA, GPUs and driver)."""

from __future__ import annotations

import argparse

from tui.cli.subcommand import Subcommand


class Env(Subcommand):
    """Print :func:`core.envinfo.environment_report`."""

    name = "env"
    help = "Print versions, CUDA, GPUs and driver for a bug report."

    def run(self, args: argparse.Namespace) -> int:
        """One ``name  value`` line each; paste them into the issue."""
        from core.envinfo import environment_report

        lines = environment_report()
        width = max(len(name) for name, _ in lines)
        for name, value in lines:
            print(f"{name:<{width}}  {value}")
        return 0
