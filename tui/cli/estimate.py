"""``tunetop estimate CONFIG.yaml``: will this run fit in memory, how long will it take.

Prints the trainable parameters and the memory breakdown of :mod:`core.estimate` for a YAML
config, the rows training will drop (they teach nothing at ``data.max_length``), then the
expected wall time (:mod:`core.timing`): from a short probe of real steps (cached per model,
device and config shape), or with ``--no-probe`` (and where the run would not fit) from the
FLOPs model. Exit status: 0 fits (or tight), 1 will not fit, 2 the config or model cannot be
used. Problems and the probe's progress go to stderr, the estimate to stdout.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.config import ConfigError
from tui.cli.subcommand import Subcommand, print_config_warnings

EXIT_FITS = 0
EXIT_WONT_FIT = 1
EXIT_BAD_CONFIG = 2


class Estimate(Subcommand):
    """The memory estimate of a config on this machine."""

    name = "estimate"
    help = "Memory and time estimate for a config; exit 1 if it will not fit."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The config, and optionally the longest row."""
        parser.add_argument("config", help="YAML run config.")
        parser.add_argument("--longest-tokens", type=int, default=None,
                            help="Longest row in tokens (default: measured on the dataset).")
        parser.add_argument("--no-probe", action="store_true",
                            help="Estimate the time from the FLOPs model (or a cached probe) "
                                 "instead of measuring a few real steps.")

    def run(self, args: argparse.Namespace) -> int:
        """Print the estimate; the exit status says whether it fits."""
        return estimate_main(args.config, args.longest_tokens, probe=not args.no_probe)


def estimate_main(config_path: str, longest_tokens: int | None = None, probe: bool = True) -> int:
    """Print the estimate for the config at ``config_path``; return the exit status.

    ``longest_tokens`` overrides the measured longest row; ``probe`` measures the time with a
    few real steps (else the FLOPs model or a cached probe).
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
    outcome = result.outcome
    if outcome is not None:
        drops = (f"{outcome.drop_summary()} and will be dropped; the first: "
                 f"{outcome.first_error().headline}" if outcome.dropped else
                 f"all {outcome.rows} rows have trained tokens at max_length {outcome.max_length}")
        print(f"Dropped: {drops}")
    print(format_estimate(result.estimate))
    fits = result.estimate.verdict != "will not fit"
    print_time_estimate(result.config, probe=probe and fits)
    return EXIT_FITS if fits else EXIT_WONT_FIT


def print_time_estimate(config: Any, probe: bool) -> None:
    """Print the time estimate (its warnings to stderr); a failure is one line, not a stop."""
    from core.timing import estimate_run_time

    def progress(text: str) -> None:
        print(f"  time: {text}…", file=sys.stderr, flush=True)

    try:
        estimate = estimate_run_time(config, probe=probe, on_progress=progress)
    except Exception as exc:  # noqa: BLE001 - the memory estimate above stands on its own
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"tunetop estimate: no time estimate: {first}", file=sys.stderr)
        return
    width = max(len(label) for label, _ in estimate.lines())
    for label, figure in estimate.lines():
        print(f"{label:<{width}}  {figure}")
    if estimate.throughput.detail:
        print(f"{'':<{width}}  ({estimate.throughput.detail})")
    for warning in estimate.warnings:
        print(f"tunetop estimate: warning: {warning}", file=sys.stderr)
