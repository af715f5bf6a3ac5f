"""Reading a whole dataset: open it, settle its format, normalise every row, split.

:func:`open_rows` opens a dataset and settles its format; :meth:`RowReader.read` is the one
generator of ``(raw row, example or None, problems)`` that both :func:`load_examples` (training,
``tunetop inspect``, the estimate) and the dataset screen's reader process
(:func:`core.rows.read_batches`) consume, so they read and normalise every row alike.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from core.config import DATA_FORMATS
from core.data.files import DatasetFile, RawRow, open_dataset
from core.data.normalise import Example, normalise_row
from core.data.problems import DataError, Problem

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
    """Detected or configured format: messages, sharegpt, alpaca, prompt_completion or text."""
    reason: str
    """Why that format, e.g. ``messages: 100 of first 100 rows have a 'messages' list``."""

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
                yield ReadRow(raw, *normalise_row(raw.data, self.format, source, raw.line))
        if not rows:
            raise DataError(f"{source} has no rows.", "Give a file with at least one row.", source)


def open_rows(path_or_ref: str | Path, format: str = "auto") -> RowReader:
    """Open a dataset (see :func:`open_dataset`) and settle its format.

    ``format`` is ``auto`` (detected from the first rows) or one of the formats in
    ``core.config.DATA_FORMATS``. Raises :class:`DataError` for an unknown format, a file that
    cannot be opened, or one whose format cannot be told.
    """
    if format not in DATA_FORMATS:
        raise DataError(f"Unknown data format '{format}'.",
                        f"Use one of {', '.join(DATA_FORMATS)}.")
    dataset = open_dataset(path_or_ref)
    if format == "auto":
        return RowReader(dataset, *dataset.detect_format())
    return RowReader(dataset, format, f"{format}: set by data.format")


@dataclass
class LoadResult:
    """A loaded dataset: its examples and every problem met on the way."""

    path: Path
    format: str
    """Detected or configured format: messages, sharegpt, alpaca, prompt_completion or text."""
    format_reason: str
    """Why that format, e.g. ``messages: 100 of first 100 rows have a 'messages' list``."""
    examples: list[Example]
    problems: list[Problem]
    total_rows: int
    """Rows read, good and bad."""
    dropped: int
    """Rows left out because of an error; each has at least one entry in ``problems``."""

    def summary(self) -> str:
        """One line for logs and the status bar."""
        warnings = sum(p.severity == "warning" for p in self.problems)
        return (f"{self.path.name}: {len(self.examples)} of {self.total_rows} rows kept "
                f"({self.format}), {self.dropped} dropped, {warnings} warning(s)")


def load_examples(path_or_ref: str | Path, format: str = "auto",
                  on_bad_rows: str = "drop") -> LoadResult:
    """Read, check and normalise a whole dataset.

    ``format`` is ``auto`` (detected from the first rows) or one of the formats in
    ``core.config.DATA_FORMATS``. With ``on_bad_rows="drop"`` bad rows are left out, counted in
    ``dropped`` and listed in ``problems``; with ``"stop"`` the first bad row raises
    :class:`DataError` naming its file and line.
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
    return LoadResult(reader.dataset.path, reader.format, reader.reason, examples, problems,
                      total, dropped)


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

