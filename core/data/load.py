"""Reading a whole dataset: open it, settle its format, normalise every row, mix, split.

:func:`open_rows` opens one source (a file, a directory, a Hub id, a registry entry) and
settles its format; :meth:`RowReader.read` is the one generator of ``(raw row, example or
None, problems)`` that both :func:`load_examples` (training, ``tunetop inspect``, the
estimate) and the dataset screen's reader process (:func:`core.rows.read_batches`) consume,
so they read and normalise every row alike. :func:`load_data` reads what a ``DataConfig``
names, one source or a mix of several (:mod:`core.data.mix`); training uses it, so what
``tunetop inspect`` and the dataset screen show is what trains. :func:`load_preferences`
reads preference rows for preference training.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from core.config import DATA_FORMATS, SourceConfig
from core.data.files import DatasetFile, RawRow, open_dataset
from core.data.mix import SourceReport, plan_mix
from core.data.normalise import Example, Preference, RowShape, normalise_preference, normalise_row
from core.data.problems import DataError, Problem
from core.data.sources import Resolved, resolve_source, source_specs

T = TypeVar("T")


class ReadRow(NamedTuple):
    """One row read and normalised, in file order."""

    raw: RawRow
    """The row as read from disk (its ``line``, parsed ``data`` and byte ``offset``)."""
    example: Example | None
    """The normalised row; ``None`` when it has an error and is dropped."""
    problems: list[Problem]
    """Everything wrong with the row: the reading problem, or normalisation errors and warnings."""


@dataclass
class RowReader:
    """A dataset opened with its format settled (see :func:`open_rows`), read on demand."""

    dataset: DatasetFile
    format: str
    """Detected or configured format: messages, sharegpt, alpaca, prompt_completion, text,
    preference or chosen."""
    reason: str
    """Why that format, e.g. ``messages: 100 of first 100 rows have a 'messages' list``."""
    shape: RowShape = field(default_factory=RowShape)
    """Column renames and role names of the source (a registry entry's)."""
    max_rows: int | None = None
    """A cap on the rows used, from the config or the source (``num_samples``)."""

    def read(self) -> Iterator[ReadRow]:
        """Every row from the start, read and normalised lazily.

        Raises :class:`DataError` once the file is read through if it has no row at all.
        """
        source = self.dataset.source
        rows = 0
        for raw in self.dataset.iter_rows():
            rows += 1
            if raw.problem is not None:
                yield ReadRow(raw, None, [raw.problem])
            else:
                yield ReadRow(raw, *normalise_row(raw.data, self.format, source, raw.line,
                                                  self.shape))
        if not rows:
            raise DataError(f"{source} has no rows.", "Give a file with at least one row.", source)


def preference_refusal(source: str, reason: str) -> DataError:
    """The error for supervised fine-tuning on a preference dataset, saying what to do."""
    return DataError(
        f"{source} is a preference dataset ({reason}): each row pairs a chosen and a rejected "
        "answer to one prompt. Supervised fine-tuning (objective: sft) cannot use the pairs as "
        "they are.",
        "To learn from the pairs, set objective: dpo (or orpo). To fine-tune on each prompt "
        "with its chosen answer instead, set data.format: chosen (tunetop inspect DATA "
        "--format chosen shows the result); if the rows also hold a whole conversation, set "
        "data.format to its format (e.g. messages).",
        source)


def open_rows(source: str | Path | SourceConfig, format: str = "auto", *,
              preferences: bool = False) -> RowReader:
    """Open one source (see :mod:`core.data.sources`) and settle its format.

    ``source`` is a reference or a :class:`SourceConfig` (whose ``format`` wins over
    ``format``): ``auto`` detects the format from the first rows. A preference dataset raises
    the :func:`preference_refusal` unless ``preferences`` (preference training reads it).
    Raises :class:`DataError` for an unknown format, a source that cannot be opened, or one
    whose format cannot be told.
    """
    spec = source if isinstance(source, SourceConfig) else SourceConfig(str(source), format=format)
    if spec.format not in DATA_FORMATS:
        raise DataError(f"Unknown data format '{spec.format}'.",
                        f"Use one of {', '.join(DATA_FORMATS)}.")
    resolved = resolve_source(spec)
    dataset = _open(resolved)
    if resolved.format == "auto":
        fmt, reason = dataset.detect_format()
    else:
        fmt, reason = resolved.format, resolved.reason or f"{resolved.format}: set by data.format"
    if fmt == "preference" and not preferences:
        raise preference_refusal(dataset.source, reason)
    return RowReader(dataset, fmt, reason, resolved.shape, resolved.max_rows)


def _open(resolved: Resolved) -> DatasetFile:
    if resolved.kind == "file":
        return open_dataset(resolved.location)
    from core.data.hub import open_loaded

    return open_loaded(resolved)


@dataclass
class LoadResult:
    """A loaded dataset: its examples and every problem met on the way."""

    path: Path
    """The file or directory read (the first source's, for a mix)."""
    format: str
    """Detected or configured format: messages, sharegpt, alpaca, prompt_completion, text,
    chosen; ``mixed`` for a mix of sources in different formats."""
    format_reason: str
    """Why that format, e.g. ``messages: 100 of first 100 rows have a 'messages' list``."""
    examples: list[Example]
    problems: list[Problem]
    total_rows: int
    """Rows read, good and bad."""
    dropped: int
    """Rows left out because of an error; each has at least one entry in ``problems``."""
    label: str = ""
    """How to name the data: the path, Hub id, registry entry, or ``mix of N sources``."""
    sources: list[SourceReport] = field(default_factory=list)
    """Each source's rows read, kept, dropped and used (one for a single source)."""

    @property
    def name(self) -> str:
        """The label, or the path when there is none."""
        return self.label or str(self.path)

    @property
    def left_out(self) -> int:
        """Kept rows not used (``max_rows`` or the mix's shares)."""
        return sum(s.left_out for s in self.sources)

    def summary(self) -> str:
        """One line for logs and the status bar."""
        warnings = sum(p.severity == "warning" for p in self.problems)
        left = f", {self.left_out} left out by the mix" if self.left_out else ""
        name = self.label if len(self.sources) > 1 else self.path.name
        return (f"{name}: {len(self.examples)} of {self.total_rows} rows kept "
                f"({self.format}), {self.dropped} dropped{left}, {warnings} warning(s)")


def load_examples(path_or_ref: str | Path | SourceConfig, format: str = "auto",
                  on_bad_rows: str = "drop") -> LoadResult:
    """Read, check and normalise one source, every row of it.

    ``format`` is ``auto`` (detected from the first rows) or one of the formats in
    ``core.config.DATA_FORMATS`` (a :class:`SourceConfig` carries its own). With
    ``on_bad_rows="drop"`` bad rows are left out, counted in ``dropped`` and listed in
    ``problems``; with ``"stop"`` the first bad row raises :class:`DataError` naming its file
    and line. The source's ``max_rows`` is applied by :func:`load_data`, not here.
    """
    if on_bad_rows not in ("drop", "stop"):
        raise DataError(f"Unknown on_bad_rows '{on_bad_rows}'.", "Use drop or stop.")
    reader = open_rows(path_or_ref, format)
    examples: list[Example] = []
    problems: list[Problem] = []
    total = dropped = 0
    for _, example, found in reader.read():
        total += 1
        if on_bad_rows == "stop":
            first_error = next((p for p in found if p.severity == "error"), None)
            if first_error is not None:
                raise DataError.from_problem(first_error)
        problems.extend(found)
        if example is None:
            dropped += 1
        else:
            examples.append(example)
    spec = path_or_ref if isinstance(path_or_ref, SourceConfig) else None
    label = reader.dataset.source
    report = SourceReport(label, reader.format, reader.reason, total, len(examples), dropped,
                          len(examples), spec.weight if spec else None,
                          reader.max_rows if spec is None or spec.max_rows is None
                          else spec.max_rows)
    return LoadResult(reader.dataset.path, reader.format, reader.reason, examples, problems,
                      total, dropped, label, [report])


def load_data(data: Any, seed: int) -> LoadResult:
    """Read what a ``DataConfig`` names: ``data.path`` (with ``dataset``, ``split``,
    ``revision``, ``format``) or the mix of ``data.sources``, with ``seed`` choosing the rows
    ``max_rows`` and ``weight`` leave (see :mod:`core.data.mix`).

    Examples of a mix name their source (:attr:`Example.source`); each source's counts are in
    :attr:`LoadResult.sources`. Raises :class:`DataError` as :func:`load_examples` does.
    """
    specs = source_specs(data)
    results = [load_examples(spec, on_bad_rows=data.on_bad_rows) for spec in specs]
    reports = [r.sources[0] for r in results]
    if len(results) == 1 and reports[0].max_rows is None:
        return results[0]
    chosen = plan_mix([len(r.examples) for r in results], [s.weight for s in reports],
                      [s.max_rows for s in reports], seed, [s.label for s in reports])
    mixed = len(results) > 1
    examples: list[Example] = []
    for result, report, picks in zip(results, reports, chosen):
        report.used = len(picks)
        examples.extend(replace(result.examples[i], source=report.label) if mixed
                        else result.examples[i] for i in picks)
    formats = {r.format for r in results}
    fmt = formats.pop() if len(formats) == 1 else "mixed"
    first = results[0]
    if not mixed:
        return replace(first, examples=examples)
    reason = "; ".join(f"{r.name}: {r.format_reason}" for r in results)
    return LoadResult(first.path, fmt, reason, examples,
                      [p for r in results for p in r.problems],
                      sum(r.total_rows for r in results), sum(r.dropped for r in results),
                      f"mix of {len(results)} sources", reports)


@dataclass
class PreferenceResult:
    """A loaded preference dataset: its rows and every problem met on the way."""

    label: str
    format_reason: str
    preferences: list[Preference]
    problems: list[Problem]
    total_rows: int
    dropped: int


def open_preferences(source: str | Path | SourceConfig) -> RowReader:
    """Open a preference dataset (its first rows only); :class:`DataError` when the source is
    not one, saying what a preference run needs."""
    reader = open_rows(source, preferences=True)
    if reader.format != "preference":
        raise DataError(f"{reader.dataset.source} is not a preference dataset ({reader.reason}).",
                        "Give rows with a prompt and a chosen and a rejected answer (export them "
                        "from a review with tunetop export-preferences), or set objective: sft "
                        "to learn the answers of this data.", reader.dataset.source)
    return reader


def load_preferences(source: str | Path | SourceConfig, on_bad_rows: str = "drop",
                     ) -> PreferenceResult:
    """Read a preference dataset (prompt/chosen/rejected, TRL or LLaMA-Factory shapes) as
    :class:`Preference` rows, for preference training. Raises :class:`DataError` when the
    source is not one, or (with ``on_bad_rows="stop"``) at the first bad row."""
    reader = open_preferences(source)
    out: list[Preference] = []
    problems: list[Problem] = []
    total = dropped = 0
    for raw in reader.dataset.iter_rows():
        total += 1
        found = [raw.problem] if raw.problem else []
        preference = None
        if raw.problem is None:
            preference, found = normalise_preference(raw.data, reader.dataset.source, raw.line,
                                                     reader.shape)
        if on_bad_rows == "stop" and any(p.severity == "error" for p in found):
            raise DataError.from_problem(next(p for p in found if p.severity == "error"))
        problems.extend(found)
        if preference is None:
            dropped += 1
        else:
            out.append(preference)
    return PreferenceResult(reader.dataset.source, reader.reason, out, problems, total, dropped)


def split_examples(examples: Sequence[T], validation_fraction: float,
                   seed: int) -> tuple[list[T], list[T]]:
    """Split into ``(train, validation)``, the same for the same seed; order is kept in each.

    Only positions decide, so any rows split alike (examples, or their indices). At least one
    row goes to each side when the fraction is above 0 and there are two rows.
    """
    n = len(examples)
    n_val = round(n * validation_fraction) if validation_fraction > 0 else 0
    if validation_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    val_index = set(random.Random(seed).sample(range(n), n_val))
    train = [e for i, e in enumerate(examples) if i not in val_index]
    val = [e for i, e in enumerate(examples) if i in val_index]
    return train, val
