"""``tunetop inspect DATA``: what a dataset looks like to the model, and every problem in it."""

from __future__ import annotations

import argparse
import sys

from core.config import BUNDLED_MODEL, MAX_INT, DataConfig, OptimConfig
from tui.cli.subcommand import Subcommand


MIN_MAX_LENGTH = 16
"""The shortest token budget ``data.max_length`` accepts (a chat template alone takes ~10)."""


def token_budget(text: str) -> int:
    """Parse ``--max-length``: a whole number of at least :data:`MIN_MAX_LENGTH`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number; give tokens per row, e.g. --max-length 512") from None
    if value < MIN_MAX_LENGTH:
        raise argparse.ArgumentTypeError(
            f"{value} tokens per row is too few; give at least {MIN_MAX_LENGTH}, e.g. "
            f"--max-length 512")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(
            f"{text[:20]}{'...' if len(text) > 20 else ''} tokens per row is far too many; "
            f"give at most {MAX_INT}, e.g. --max-length 4096")
    return value


class Inspect(Subcommand):
    """Check a dataset without training on it."""

    name = "inspect"
    help = "Check a dataset: format, rows, token lengths, problems."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The dataset, and optionally the model whose template to use and the token budget."""
        parser.add_argument("dataset", help="Dataset file, save_to_disk directory or sample:support-tickets.")
        parser.add_argument("--model", default=None, help="Model reference whose chat template to use.")
        parser.add_argument("--max-length", type=token_budget, default=None,
                            help=f"Token budget per row, at least {MIN_MAX_LENGTH} "
                                 f"(default: {DataConfig().max_length}).")

    def run(self, args: argparse.Namespace) -> int:
        """Print the report; 1 when the data cannot be trained on."""
        return inspect_main(args.dataset, args.model, args.max_length)


def inspect_main(dataset: str, model: str | None = None, max_length: int | None = None) -> int:
    """Print format, rows, token lengths and problems; 1 when the data cannot be trained on."""
    from core import data
    from core.models import ModelError, load_tokenizer

    max_length = DataConfig().max_length if max_length is None else max_length
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
    rendered = data.render_examples(tokenizer, loaded.examples, max_length)
    # the split and checks of the dataset screen (and of training, with default settings)
    report = data.dataset_report(loaded.examples, DataConfig().validation_fraction,
                                 OptimConfig().seed, str(loaded.path))
    stats = report.stats
    tokens = data.token_stats(rendered)
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
    rendering = data.rendering_problems(rendered, str(loaded.path))
    if rendering:
        print(f"\n{len(rendering)} rendering warning(s) with {model or BUNDLED_MODEL}:")
        for problem in rendering:
            print(f"  {problem}")
    if not loaded.examples:
        print(f"\nNo usable row: all {loaded.total_rows} rows were dropped. Fix the problems "
              "listed above.", file=sys.stderr)
        return 1
    trainable = sum(1 for r in rendered if r.num_trained)
    if not trainable:
        print("\nNo row has a trained token: this data cannot be trained on.", file=sys.stderr)
        return 1
    return 0
