"""``tunetop inspect DATA``: what a dataset looks like to the model, and every problem in it."""

from __future__ import annotations

import argparse
import sys

from core.config import BUNDLED_MODEL, DataConfig, OptimConfig
from tui.cli.subcommand import Subcommand


class Inspect(Subcommand):
    """Check a dataset without training on it."""

    name = "inspect"
    help = "Check a dataset: format, rows, token lengths, problems."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The dataset, and optionally the model whose template to use and the token budget."""
        parser.add_argument("dataset", help="Dataset file, save_to_disk directory or sample:support-tickets.")
        parser.add_argument("--model", default=None, help="Model reference whose chat template to use.")
        parser.add_argument("--max-length", type=int, default=None, help="Token budget per row.")

    def run(self, args: argparse.Namespace) -> int:
        """Print the report; 1 when the data cannot be trained on."""
        return inspect_main(args.dataset, args.model, args.max_length)


def inspect_main(dataset: str, model: str | None = None, max_length: int | None = None) -> int:
    """Print format, rows, token lengths and problems; 1 when the data cannot be trained on."""
    from core import data
    from core.models import ModelError, load_tokenizer

    max_length = max_length or DataConfig().max_length
    try:
        loaded = data.load_examples(dataset)
    except data.DataError as exc:
        print(f"tunetop inspect: {exc}", file=sys.stderr)
        return 1
    print(f"file      {loaded.path}")
    print(f"format    {loaded.format} ({loaded.format_reason})")
    print(f"rows      {len(loaded.examples)} usable of {loaded.total_rows}; {loaded.dropped} dropped")
    try:
        tokenizer = load_tokenizer(model or BUNDLED_MODEL)
    except ModelError as exc:
        print(f"tunetop inspect: {exc}", file=sys.stderr)
        return 1
    outcome = data.training_outcome(tokenizer, loaded.examples, max_length, source=str(loaded.path))
    # the split and checks of the dataset screen (and of training, with default settings)
    report = data.dataset_report(loaded.examples, DataConfig().validation_fraction,
                                 OptimConfig().seed, str(loaded.path))
    stats = report.stats
    tokens = outcome.tokens()
    if tokens.rows:
        print(
            f"tokens    min {tokens.min}  p50 {tokens.p50}  mean {tokens.mean:.0f}  p95 {tokens.p95}  "
            f"max {tokens.max}  (max_length {max_length})"
        )
        print(
            f"truncated {tokens.truncated} rows ({tokens.truncated_share:.1%}), "
            f"{tokens.tokens_lost} tokens lost; {tokens.trained_tokens} of {tokens.total_tokens} "
            f"tokens trained"
        )
    print(training_line(outcome))
    partial = (f" (first {report.checked} of {report.kept} kept rows)"
               if report.checked < report.kept else "")
    print(
        f"checks    {stats.exact_duplicates} exact duplicates, {stats.near_duplicates} near "
        f"duplicates, {stats.refusals} refusals, {stats.short_answers} empty/one-word answers"
        f"{partial}"
    )
    print(f"split     {report.train_rows} train, {report.val_rows} validation "
          f"({report.validation_fraction:.0%} held out, seed {report.seed}); "
          f"validation rows repeating training rows: {stats.leaked}")
    problems = loaded.problems + stats.findings
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
    if outcome.problems:
        print(f"\n{len(outcome.problems)} rendering problem(s) with {model or BUNDLED_MODEL} at "
              f"max_length {max_length}:")
        for problem in outcome.problems:
            print(f"  {problem}")
    if not loaded.examples:
        print(f"\nNo usable row: all {loaded.total_rows} rows were dropped. Fix the problems "
              "listed above.", file=sys.stderr)
        return 1
    if not outcome.kept:
        print("\nNo row has a trained token: this data cannot be trained on.", file=sys.stderr)
        return 1
    return 0


def training_line(outcome) -> str:
    """``training  420 of 640 rows kept at max_length 128; 220 teach nothing …; EOS …``: what
    training does with the rows (:func:`core.data.training_outcome`)."""
    dropped = (f"; {outcome.dropped} teach nothing and will be dropped" if outcome.dropped
               else "; none dropped")
    return (f"training  {outcome.kept} of {outcome.rows} rows kept at max_length "
            f"{outcome.max_length}{dropped}; {outcome.eos_summary()}")
