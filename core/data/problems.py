"""Problems in the data and the error for unusable input, each naming where and the fix.

Where a problem is: ``file, line N`` for JSON Lines (the text line), ``file, row N`` for every
other format (the row's position in a JSON array, a CSV table, a Parquet file); ``file``
alone for the whole file. :func:`position_unit` is the one place that decides the word.
"""

from __future__ import annotations

from dataclasses import dataclass

JSONL_SUFFIXES = (".jsonl", ".ndjson")
"""Extensions read as JSON Lines; problems in them are located by line, elsewhere by row."""


def position_unit(source: str) -> str:
    """``line`` for a JSON Lines file (one row a text line), ``row`` for any other source."""
    return "line" if source.lower().endswith(JSONL_SUFFIXES) else "row"


@dataclass
class Problem:
    """One problem in the data: where it is, what is wrong and how to fix it.

    ``line`` is the 1-based JSONL line, or the 1-based row for other formats; ``None`` for a
    problem of the whole file. ``severity`` is ``error`` (the row is dropped, or the load stops)
    or ``warning`` (the row is kept).
    """

    source: str
    line: int | None
    field: str
    message: str
    fix: str
    severity: str = "error"

    @property
    def where(self) -> str:
        """``file, line 12`` for JSONL, ``file, row 12`` for other formats."""
        if self.line is None:
            return self.source
        return f"{self.source}, {position_unit(self.source)} {self.line}"

    @property
    def headline(self) -> str:
        """Where, the field and what is wrong, without the fix."""
        name = "" if not self.field else (
            f" {self.field}" if self.field.startswith("(") else f" ({self.field})")
        return f"{self.where}{name}: {self.message}"

    def __str__(self) -> str:
        return f"{self.headline} Fix: {self.fix}"


class DataError(ValueError):
    """Input the loader cannot use; the message names the file (and line) and the fix."""

    def __init__(self, message: str, fix: str, source: str = "", line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.fix = fix
        super().__init__(f"{message} Fix: {fix}")

    def __reduce__(self) -> tuple:
        # Whole, across the dataset reader's process boundary (core.rows).
        return _rebuild_data_error, (self.args[0], self.fix, self.source, self.line)

    @classmethod
    def from_problem(cls, problem: Problem) -> "DataError":
        """The error raised for the first bad row when ``on_bad_rows`` is ``stop``."""
        return cls(
            f"Stopped at the first bad row: {problem.headline}",
            f"{problem.fix} Or set data.on_bad_rows to drop to skip bad rows.",
            problem.source,
            problem.line,
        )


def _rebuild_data_error(text: str, fix: str, source: str, line: int | None) -> DataError:
    error = DataError.__new__(DataError)
    ValueError.__init__(error, text)
    error.fix, error.source, error.line = fix, source, line
    return error

