"""Reading a dataset for display: rows normalised and packed in batches, in another process.

The dataset screen shows rows while the rest of a big file is read. Parsing JSON and
normalising rows is pure Python: in a thread of the UI process it held the GIL for most of
the read, and keys waited (key-to-paint p99 360 ms while reading a million rows on two
cores, bench/dataset_open.py). :func:`read_in_subprocess` runs :func:`read_batches` in a
child process (:func:`serve`) that sends pickled batches through a pipe; the UI
process only unpickles them, which is C code and a small share of the work.

Rows travel packed (:data:`Packed`): tuples of strings, which the cycle collector stops
tracking, so a million of them cost no time in full collections.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from core.data import DataError, Example, Problem, normalise_row, open_dataset

Packed = Union[tuple[tuple[str, str], ...], str, None]
"""A normalised row as immutable strings: ``(role, content)`` turns, the text of a text row,
or ``None`` for a dropped row."""

FIRST_PAGE = 100
"""Rows sent as soon as they are read, so the table fills at once."""
SEND_ROWS = 1000
"""Rows per batch after the first page: unpickling one holds the UI process's GIL ~1 ms."""


def pack(example: Example | None) -> Packed:
    """Pack a normalised row (see :data:`Packed`)."""
    if example is None:
        return None
    if example.messages is None:
        return example.text or ""
    return tuple((m["role"], m["content"]) for m in example.messages)


def unpack(line: int, packed: Packed) -> Example | None:
    """The :class:`core.data.Example` a packed row came from."""
    if packed is None:
        return None
    if isinstance(packed, str):
        return Example(line, text=packed)
    return Example(line, messages=[{"role": role, "content": content}
                                   for role, content in packed])


@dataclass
class RowBatch:
    """Rows read and normalised, in file order."""

    rows: list[Packed] = field(default_factory=list)
    """The normalised rows, packed; ``None`` where a row was dropped."""
    lines: list[int] = field(default_factory=list)
    problems: dict[int, list[Problem]] = field(default_factory=dict)
    """Problems met reading or normalising, by position in this batch."""
    raw: dict[int, Any] = field(default_factory=dict)
    """The raw data of dropped rows, by position in this batch, to show what was wrong."""

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, other: RowBatch) -> None:
        """Append ``other``'s rows (positions of its problems and raw rows shift)."""
        start = len(self)
        self.rows.extend(other.rows)
        self.lines.extend(other.lines)
        self.problems.update((start + k, v) for k, v in other.problems.items())
        self.raw.update((start + k, v) for k, v in other.raw.items())


@dataclass
class Opened:
    """The dataset was opened and its format detected."""

    source: str
    kind: str
    format: str
    reason: str


@dataclass
class Progress:
    """A batch of rows, and how far the read is: ``done`` of ``total`` (bytes as percent for
    JSONL, rows otherwise; ``total`` is ``None`` when unknown)."""

    batch: RowBatch
    done: float
    total: float | None


def read_batches(ref: str, data_format: str = "auto") -> Iterator[Opened | Progress]:
    """Open ``ref``, detect its format (unless given), then read every row in batches.

    Yields one :class:`Opened`, then :class:`Progress` items: the first page of rows at
    once, then :data:`SEND_ROWS` at a time, then the rest. Raises :class:`DataError` for a
    file that cannot be read, or one with no rows.
    """
    dataset = open_dataset(ref)
    if data_format == "auto":
        data_format, reason = dataset.detect_format()
    else:
        reason = f"{data_format}: set by data.format"
    size = dataset.path.stat().st_size if dataset.kind == "jsonl" else 0
    total = None if dataset.kind in ("jsonl", "csv", "tsv") else dataset.count_rows()
    yield Opened(dataset.source, dataset.kind, data_format, reason)

    def progress(batch: RowBatch, rows: int, offset: int) -> Progress:
        return Progress(batch, *((offset / size * 100, 100.0) if size else (rows, total)))

    batch = RowBatch()
    rows = offset = 0
    for raw in dataset.iter_rows():
        if raw.problem is not None:
            example, problems = None, [raw.problem]
        else:
            example, problems = normalise_row(raw.data, data_format, dataset.source, raw.line)
        position = len(batch)
        batch.rows.append(pack(example))
        batch.lines.append(raw.line)
        if problems:
            batch.problems[position] = problems
        if example is None:
            batch.raw[position] = raw.data
        rows += 1
        offset = raw.offset or offset
        if rows == FIRST_PAGE or len(batch) == SEND_ROWS:
            yield progress(batch, rows, offset)
            batch = RowBatch()
    if not rows:
        raise DataError(f"{dataset.source} has no rows.", "Give a file with at least one row.",
                        dataset.source)
    yield Progress(batch, rows, rows)


def read_in_subprocess(ref: str, data_format: str = "auto") -> Iterator[Opened | Progress]:
    """:func:`read_batches` run in a child process; the same items, read from its pipe.

    Closing the iterator (or dropping it) kills the child. A child that dies without saying
    why (killed, out of memory) raises a :class:`DataError` naming its exit code.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen(
        # -c, not -m: pickles must name core.rows' classes, not __main__'s
        [sys.executable, "-c", "import sys; from core.rows import serve; sys.exit(serve(*sys.argv[1:]))",
         ref, data_format],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        while True:
            try:
                kind, item = pickle.load(child.stdout)
            except EOFError:
                code = child.wait()
                detail = child.stderr.read().decode(errors="replace").strip().splitlines()
                raise DataError(
                    f"Reading {ref} stopped: the reader process ended with code {code}"
                    + (f" ({detail[-1]})." if detail else "."),
                    "Check free memory (a huge file needs several times its size) and open "
                    "the file again.", ref) from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()


def serve(ref: str, data_format: str) -> int:
    """The child's side: send every item of :func:`read_batches` to stdout, pickled."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a stray print must not corrupt the stream
    try:
        for item in read_batches(ref, data_format):
            pickle.dump(("item", item), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
    except DataError as exc:
        pickle.dump(("error", exc), out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001  (the UI shows it as a reading failure)
        error = DataError(f"Reading {ref} failed: {type(exc).__name__}: {exc}.",
                          "Check the file, or report this with the file's first lines.", ref)
        pickle.dump(("error", error), out, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(("end", None), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.close()
    return 0
