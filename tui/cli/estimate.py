"""``tunetop estimate CONFIG.yaml``: will this run fit in memory, and if not, what would.

Prints the trainable parameters and the memory breakdown of :mod:`core.estimate` for a YAML
config. Exit status: 0 fits (or tight), 1 will not fit, 2 the config or model cannot be used.
Problems go to stderr, the estimate to stdout.
"""

from __future__ import annotations

import argparse
import sys

from core.config import ConfigError
from tui.cli.subcommand import Subcommand, print_config_warnings

EXIT_FITS = 0
EXIT_WONT_FIT = 1
EXIT_BAD_CONFIG = 2


class Estimate(Subcommand):
    """The memory estimate of a config on this machine."""

    name = "estimate"
    help = "Memory estimate for a config; exit 1 if it will not fit."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The config, and optionally the longest row."""
        parser.add_argument("config", help="YAML run config.")
        parser.add_argument("--longest-tokens", type=int, default=None,
                            help="Longest row in tokens (default: measured on the dataset).")

    def run(self, args: argparse.Namespace) -> int:
        """Print the estimate; the exit status says whether it fits."""
        return estimate_main(args.config, args.longest_tokens)


def estimate_main(config_path: str, longest_tokens: int | None = None) -> int:
    """Print the estimate for the config at ``config_path``; return the exit status.

    ``longest_tokens`` overrides the measured longest row.
    """
    from core.estimate import estimate_config
    from core.memory import format_estimate
    from core.models import ModelError

    try:
        result = estimate_config(config_path, longest_tokens)
    except ConfigError as exc:
        print(f"tunetop estimate: {config_path} is not a usable config.\n{exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except ModelError as exc:
        print(f"tunetop estimate: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print_config_warnings(result.config, "estimate")
    print(f"Config {config_path}: {result.config.model.name_or_path}")
    print(f"Rows: {result.tokens} tokens, {result.tokens_source}")
    print(format_estimate(result.estimate))
    return EXIT_WONT_FIT if result.estimate.verdict == "will not fit" else EXIT_FITS
