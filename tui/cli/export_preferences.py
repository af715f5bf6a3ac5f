"""``tunetop export-preferences REVIEW_SET``: a review's decided votes as preference pairs.

Writes TRL conversational rows (prompt, chosen, rejected) that ``objective: dpo`` or ``orpo``
trains on; with ``--config`` also the YAML of a run that trains the review's model B on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui.cli.subcommand import Subcommand


class ExportPreferences(Subcommand):
    """Turn a review set's judgements into preference pairs."""

    name = "export-preferences"
    help = "Write a review's Left/Right votes as preference pairs for DPO/ORPO."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The review set; ``--out``, ``--include-after-reveal``, ``--config``, ``--objective``."""
        parser.add_argument("review_set", help="Review set directory (RUN/review/NAME).")
        parser.add_argument("-o", "--out", metavar="FILE",
                            help="Where to write the pairs (default: REVIEW_SET/preferences.jsonl).")
        parser.add_argument("--include-after-reveal", action="store_true",
                            help="Also use judgements made after the sides were revealed (not blind).")
        parser.add_argument("--config", metavar="FILE",
                            help="Also write a run config that trains model B on the pairs.")
        parser.add_argument("--objective", choices=("dpo", "orpo"), default="dpo",
                            help="The objective of the --config run (default: dpo).")

    def run(self, args: argparse.Namespace) -> int:
        """Write the pairs (and the config); 1 when the set cannot be read or gives no pair."""
        from core.review import ReviewError, ReviewSet
        from core.review.preferences import preference_run_config, write_preferences

        try:
            review = ReviewSet.open(args.review_set)
            path, pairs = write_preferences(review, args.out, args.include_after_reveal)
        except (ReviewError, ValueError, OSError) as exc:
            print(f"tunetop export-preferences: {exc}", file=sys.stderr)
            return 1
        print(f"{path}: {pairs.summary()}")
        if args.config:
            config = preference_run_config(review, path.resolve(), args.objective)
            Path(args.config).write_text(config.to_yaml(), encoding="utf-8")
            print(f"{args.config}: {args.objective} of {config.model.adapter or config.model.name_or_path}"
                  f"; train it with `tunetop train {args.config}`")
        return 0
