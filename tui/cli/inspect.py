"""``tunetop inspect DATA``: what a dataset looks like to the model, and every problem in it.

``DATA`` is anything ``data.path`` takes (a file, a directory, a Hub id, a LLaMA-Factory
registry directory: alone it lists its datasets, with ``--dataset NAME`` it loads one), or a
run config (``RUN.yaml``), whose data section (a mix of sources included), model and
template are inspected as training will read them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import BUNDLED_MODEL, DATA_FORMATS, MAX_INT, DataConfig, OptimConfig, RunConfig
from tui.cli.subcommand import Subcommand

if TYPE_CHECKING:
    from core.data import TrainingOutcome


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
        """The dataset (or a run config), and what to read it with."""
        parser.add_argument("dataset", help="Dataset file or directory, Hub id (org/name[:subset]), "
                            "LLaMA-Factory data directory, sample:support-tickets, or a RUN.yaml.")
        parser.add_argument("--dataset", dest="entry", default=None, metavar="NAME",
                            help="Dataset of a dataset_info.json registry directory.")
        parser.add_argument("--format", default=None, choices=DATA_FORMATS,
                            help="Row format (default: detected).")
        parser.add_argument("--split", default=None, help="Split of a Hub dataset (default train).")
        parser.add_argument("--revision", default=None, help="Branch, tag or commit of a Hub dataset.")
        parser.add_argument("--model", default=None, help="Model reference whose chat template to use.")
        parser.add_argument("--max-length", type=token_budget, default=None,
                            help=f"Token budget per row, at least {MIN_MAX_LENGTH} "
                                 f"(default: {DataConfig().max_length}).")
        parser.add_argument("--chat-template", default=None,
                            help="model, a template name (chatml, llama3...) or a .jinja file.")
        parser.add_argument("--system-prompt", default=None,
                            help="For rows without one: model (the template's), a text, or ''.")
        parser.add_argument("--text-chunking", action="store_true", default=None,
                            help="Split long text rows into max-length chunks.")

    def run(self, args: argparse.Namespace) -> int:
        """Print the report; 1 when the data cannot be trained on."""
        return inspect_main(args.dataset, args.model, args.max_length, entry=args.entry,
                            data_format=args.format, split=args.split, revision=args.revision,
                            chat_template=args.chat_template, system_prompt=args.system_prompt,
                            text_chunking=args.text_chunking)


def _settings(dataset: str, options: dict) -> tuple[DataConfig, str | None, int]:
    """The data section, model and seed to inspect: a run config's, or defaults with
    ``dataset``; the options given on the command line win."""
    if dataset.endswith((".yaml", ".yml")) and Path(dataset).is_file():
        config = RunConfig.load(dataset)  # a ConfigError is printed by the command
        data, model, seed = config.data, config.model.name_or_path, config.optim.seed
    else:
        data, model, seed = DataConfig(path=dataset), None, OptimConfig().seed
    names = {"entry": "dataset", "data_format": "format", "split": "split",
             "revision": "revision", "chat_template": "chat_template",
             "system_prompt": "default_system_prompt", "text_chunking": "text_chunking"}
    given = {names[k]: v for k, v in options.items() if v is not None}
    return dataclasses.replace(data, **given), model, seed


def inspect_main(dataset: str, model: str | None = None, max_length: int | None = None,
                 **options: object) -> int:
    """Print format, rows, sources, template, token lengths and problems; 1 when the data
    cannot be trained on. ``options`` are the command's other flags (``entry``,
    ``data_format``, ``split``, ``revision``, ``chat_template``, ``system_prompt``,
    ``text_chunking``)."""
    from core import data
    from core.models import ModelError, load_tokenizer

    settings, config_model, seed = _settings(dataset, options)
    model = model or config_model or BUNDLED_MODEL
    max_length = settings.max_length if max_length is None else max_length
    directory = Path(settings.path).expanduser()
    if not settings.sources and not settings.dataset and data.is_registry(directory):
        return _list_registry(directory)
    try:
        loaded = data.load_data(settings, seed)
        render_options = data.RenderOptions.from_config(settings)
        data.resolve_template(settings.chat_template)
    except data.DataError as exc:
        print(f"tunetop inspect: {exc}", file=sys.stderr)
        return 1
    mixed = len(loaded.sources) > 1
    print(f"{'data' if mixed else 'file':<9} {loaded.name}")
    print(f"format    {loaded.format} ({loaded.format_reason})")
    left = f"; {loaded.left_out} left out by the mix" if loaded.left_out else ""
    print(f"rows      {len(loaded.examples)} usable of {loaded.total_rows}; "
          f"{loaded.dropped} dropped{left}")
    if mixed or loaded.left_out:
        for i, report in enumerate(loaded.sources, 1):
            print(f"source {i}  {report.label} ({report.format}): "
                  f"{report.describe(len(loaded.examples))}")
    try:
        tokenizer = load_tokenizer(model)
    except ModelError as exc:
        print(f"tunetop inspect: {exc}", file=sys.stderr)
        return 1
    for label, text in data.template_info(tokenizer, render_options).lines():
        print(f"{label:<9} {text}")
    outcome = data.training_outcome(tokenizer, loaded.examples, max_length,
                                    settings.assistant_only_loss, loaded.name,
                                    options=render_options)
    # the split and checks of the dataset screen (and of training, with these settings)
    report = data.dataset_report(loaded.examples, settings.validation_fraction, seed,
                                 loaded.name)
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
    if outcome.chunked:
        print(f"chunked   {len(outcome.chunked)} text rows over max_length become "
              f"{outcome.chunk_rows} training rows (data.text_chunking)")
    print(training_line(outcome))
    partial = (f" (first {report.checked} of {report.kept} kept rows)"
               if report.checked < report.kept else "")
    print(
        f"checks    {stats.exact_duplicates} exact duplicates, {stats.near_duplicates} near "
        f"duplicates, {stats.refusals} refusals, {stats.short_answers} empty/one-word answers, "
        f"{stats.placeholders} unfilled placeholders{partial}"
    )
    if mixed:
        for i, source in enumerate(loaded.sources, 1):
            kinds = _finding_counts(data, stats.findings, source.label)
            print(f"source {i}  checks: {kinds or 'no findings'}")
    print(f"split     {report.train_rows} train, {report.val_rows} validation "
          f"({report.validation_fraction:.0%} held out, seed {report.seed}); "
          f"validation rows repeating training rows: {stats.leaked}")
    if settings.replay > 0:
        print(f"replay    +{data.replay_rows(report.train_rows, settings.replay)} training rows "
              f"(data.replay {settings.replay:g}): the base model's own answers to general "
              "prompts, made when training starts (cached per model)")
    problems = loaded.problems + stats.findings
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
    if outcome.problems:
        print(f"\n{len(outcome.problems)} rendering problem(s) with {model} at "
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


def training_line(outcome: TrainingOutcome) -> str:
    """``training  420 of 640 rows kept at max_length 128; 220 teach nothing …; EOS …``: what
    training does with the rows (:func:`core.data.training_outcome`)."""
    dropped = (f"; {outcome.dropped} teach nothing and will be dropped" if outcome.dropped
               else "; none dropped")
    return (f"training  {outcome.kept} of {outcome.rows} rows kept at max_length "
            f"{outcome.max_length}{dropped}; {outcome.eos_summary()}")


def _finding_counts(data: object, findings: list, label: str) -> str:
    """``2 duplicate, 1 short``: the findings of one source of a mix, by kind."""
    from collections import Counter

    counts = Counter(data.finding_kind(p) for p in findings  # type: ignore[attr-defined]
                     if p.source == label)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def _list_registry(directory: Path) -> int:
    """Print the datasets of a registry directory; 1 when it cannot be read."""
    from core import data

    try:
        entries = data.read_registry(directory)
    except data.DataError as exc:
        print(f"tunetop inspect: {exc}", file=sys.stderr)
        return 1
    print(f"registry  {directory / data.REGISTRY_FILE}: {len(entries)} dataset(s)")
    for entry in entries.values():
        print(f"  {entry.describe()}")
    first = next(iter(entries))
    print(f"\nInspect one with: tunetop inspect {directory} --dataset {first}")
    return 0
