"""``tunetop completion bash|zsh|tcsh``: a shell completion script, made by ``shtab`` from the
same parser the command uses (so it lists every sub-command and option)."""

from __future__ import annotations

import argparse

from tui.cli.subcommand import Subcommand

SHELLS = ("bash", "zsh", "tcsh")


class Completion(Subcommand):
    """Print the completion script for a shell."""

    name = "completion"
    help = "Print a shell completion script (bash, zsh or tcsh)."
    description = (
        "Print a completion script for SHELL. Install it with, e.g.: "
        "tunetop completion bash > ~/.local/share/bash-completion/completions/tunetop "
        "(bash) or tunetop completion zsh > ~/.zfunc/_tunetop with fpath+=~/.zfunc in "
        "~/.zshrc (zsh)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The shell."""
        parser.add_argument("shell", choices=SHELLS, help="The shell to complete in.")

    def run(self, args: argparse.Namespace) -> int:
        """Print the script."""
        import shtab

        from tui.cli import build_parser

        print(shtab.complete(build_parser(), shell=args.shell), end="")
        return 0
