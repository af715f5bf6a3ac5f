"""Reading and checking a dataset for display, in child processes: rows normalised, packed, in batches.

The dataset screen shows rows while the rest of a big file is read. Parsing JSON and
normalising rows is pure Python: in a thread of the UI process it held the GIL for most of
the read, and keys waited (key-to-paint p99 360 ms while reading a million rows on two
cores, bench/dataset_open.py). :func:`read_in_subprocess` runs :func:`read_batches` in a
child process (:func:`serve`) that sends pickled batches through a pipe; the UI
process only unpickles them, which is C code and a small share of the work. The content checks
(:func:`check_in_subprocess`) and what training does with the rows at the settings in force
(:func:`outcome_in_subprocess`: every row rendered, ~2 ms each) run in children the same way.

Rows travel packed (:data:`Packed`): tuples of strings, which the cycle collector stops
tracking, so a million of them cost no time in full collections.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from core import child_environment
from core.config import SourceConfig
from core.data import (
    DataError,
    DatasetStats,
    Example,
    Problem,
    RenderOptions,
    SourceReport,
    TrainingOutcome,
    dataset_stats,
    open_rows,
    parse_selection,
    plan_mix,
    training_outcome,
)

Turn = Union[tuple[str, str], tuple[str, str, str]]
"""A packed chat turn: ``(role, content)``, or ``(role, content, extras)`` where ``extras`` is
the JSON of the turn's other keys (tool calls, tool name, reasoning, ``train``)."""
Packed = Union[tuple[Union[str, Turn], ...], str, None]
"""A normalised row as immutable strings: its turns (led by the JSON of its tool
definitions when it has some), the text of a text row, or ``None`` for a dropped row."""
FIRST_PAGE = 100
"""Rows sent as soon as they are read, so the table fills at once."""
SEND_ROWS = 1000
"""Rows per batch after the first page: unpickling one holds the UI process's GIL ~1 ms."""
CHECK_SLICE = 5000
"""Rows per slice sent to the checks child: pickling one holds the GIL a few ms."""


def pack(example: Example | None) -> Packed:
    """Pack a normalised row (see :data:`Packed`)."""
    if example is None:
        return None
    if example.messages is None:
        return example.text or ""
    turns: list[str | Turn] = [json.dumps(example.tools)] if example.tools else []
    for m in example.messages:
        extras = {k: v for k, v in m.items() if k not in ("role", "content")}
        turns.append((m["role"], m["content"], json.dumps(extras)) if extras
                     else (m["role"], m["content"]))
    return tuple(turns)


def turns(packed: Packed) -> tuple[Turn, ...]:
    """The turns of a packed chat row (its tool definitions left out); none for text rows."""
    if not isinstance(packed, tuple):
        return ()
    return packed[1:] if packed and isinstance(packed[0], str) else packed  # type: ignore[return-value]


def turn_text(turn: Turn) -> str:
    """A packed turn's text for a table cell: its content, or else its tool calls."""
    if len(turn) < 3 or turn[1].strip():
        return turn[1]
    calls = json.loads(turn[2]).get("tool_calls") or ()
    return " ".join(f"→ {c['function']['name']}("
                    f"{json.dumps(c['function']['arguments'], ensure_ascii=False)})"
                    for c in calls)


def unpack(line: int, packed: Packed) -> Example | None:
    """The :class:`core.data.Example` a packed row came from."""
    if packed is None:
        return None
    if isinstance(packed, str):
        return Example(line, text=packed)
    tools = json.loads(packed[0]) if packed and isinstance(packed[0], str) else None
    messages = []
    for turn in turns(packed):
        message = {"role": turn[0], "content": turn[1]}
        if len(turn) > 2:
            message.update(json.loads(turn[2]))
        messages.append(message)
    return Example(line, messages=messages, tools=tools)


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
    sources: list[int] = field(default_factory=list)
    """In a mix: per row, the index of its source (empty for a single source)."""
    origins: list[int] = field(default_factory=list)
    """In a mix: per row, its line (or row number) in its source; ``lines`` then number the
    rows of the mix."""

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, other: RowBatch) -> None:
        """Append ``other``'s rows (positions of its problems and raw rows shift)."""
        start = len(self)
        self.rows.extend(other.rows)
        self.lines.extend(other.lines)
        self.sources.extend(other.sources)
        self.origins.extend(other.origins)
        self.problems.update((start + k, v) for k, v in other.problems.items())
        self.raw.update((start + k, v) for k, v in other.raw.items())


@dataclass
class Opened:
    """The dataset was opened and its format detected."""

    source: str
    kind: str
    format: str
    reason: str
    sources: list[SourceReport] = field(default_factory=list)
    """Each source of a mix, with its rows read, kept, dropped and used; empty for one."""


@dataclass
class Progress:
    """A batch of rows, and how far the read is: ``done`` of ``total`` (bytes as percent for
    JSONL, rows otherwise; ``total`` is ``None`` when unknown)."""

    batch: RowBatch
    done: float
    total: float | None


def read_batches(ref: str, data_format: str = "auto") -> Iterator[Opened | Progress]:
    """Open ``ref``, detect its format (unless given), then read every row in batches.

    ``ref`` is a path or reference, or the JSON of several sources and a seed
    (:func:`core.data.selection_ref`), which is read as :func:`core.data.load_data` mixes it.
    Rows are read and normalised by :func:`core.data.open_rows`, as
    :func:`core.data.load_examples` reads them. Yields one :class:`Opened`, then
    :class:`Progress` items: the first page of rows at once, then :data:`SEND_ROWS` at a time,
    then the rest. Raises :class:`DataError` for a source that cannot be read, or one with no
    rows.
    """
    selection = parse_selection(ref)
    specs, seed = selection if selection else ([SourceConfig(ref, format=data_format)], 0)
    readers = [open_rows(spec) for spec in specs]
    if len(readers) > 1 or (specs[0].max_rows or readers[0].max_rows) is not None:
        yield from _read_mix(specs, readers, seed)
        return
    reader = readers[0]
    dataset = reader.dataset
    size = dataset.path.stat().st_size if dataset.kind == "jsonl" else 0
    total = None if dataset.kind in ("jsonl", "csv", "tsv") else dataset.count_rows()
    yield Opened(dataset.source, dataset.kind, reader.format, reader.reason)

    def progress(batch: RowBatch, rows: int, offset: int) -> Progress:
        return Progress(batch, *((offset / size * 100, 100.0) if size else (rows, total)))

    batch = RowBatch()
    rows = offset = 0
    for raw, example, problems in reader.read():
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
    yield Progress(batch, rows, rows)


def _read_mix(specs: list[SourceConfig], readers: list[Any], seed: int
              ) -> Iterator[Opened | Progress]:
    """Several sources (or one with ``max_rows``): every row is read (and packed) first, then
    the rows the mix uses and the dropped ones are sent, each numbered in the mix, source
    after source."""
    read: list[list[tuple[int, Packed, list[Problem], Any]]] = []
    for reader in readers:
        read.append([(raw.line, pack(example), problems, raw.data if example is None else None)
                     for raw, example, problems in reader.read()])
    kept = [[i for i, row in enumerate(rows) if row[1] is not None] for rows in read]
    reports = [SourceReport(reader.dataset.source, reader.format, reader.reason, len(rows),
                            len(k), len(rows) - len(k), 0, spec.weight,
                            spec.max_rows or reader.max_rows)
               for spec, reader, rows, k in zip(specs, readers, read, kept)]
    chosen = plan_mix([len(k) for k in kept], [r.weight for r in reports],
                      [r.max_rows for r in reports], seed, [r.label for r in reports])
    formats = {r.format for r in readers}
    fmt = formats.pop() if len(formats) == 1 else "mixed"
    label = reports[0].label if len(readers) == 1 else f"mix of {len(readers)} sources"
    reason = "; ".join(f"{r.label}: {r.format_reason}" for r in reports)
    for report, picks in zip(reports, chosen):
        report.used = len(picks)
    yield Opened(label, "mix", fmt, reason, reports)
    batch, total = RowBatch(), sum(len(picks) + r.dropped for r, picks in zip(reports, chosen))
    position = 0
    for source, (rows, picks) in enumerate(zip(read, chosen)):
        used = {kept[source][i] for i in picks}
        for index, (line, packed, problems, raw) in enumerate(rows):
            if packed is not None and index not in used:
                continue  # left out by the mix: counted in the source's report
            position += 1
            at = len(batch)
            batch.rows.append(packed)
            batch.lines.append(position)
            batch.sources.append(source)
            batch.origins.append(line)
            if problems:
                batch.problems[at] = problems
            if packed is None:
                batch.raw[at] = raw
            if position == FIRST_PAGE or len(batch) == SEND_ROWS:
                yield Progress(batch, position, total)
                batch = RowBatch()
        rows.clear()  # sent: free it before packing the next source's batches
    yield Progress(batch, position, position)


def read_in_subprocess(ref: str, data_format: str = "auto") -> Iterator[Opened | Progress]:
    """:func:`read_batches` run in a child process; the same items, read from its pipe.

    Closing the iterator (or dropping it) kills the child. A child that dies without saying
    why (killed, out of memory) raises a :class:`DataError` naming its exit code.
    """
    child = _spawn("serve", ref, data_format)
    try:
        while True:
            try:
                kind, item = pickle.load(child.stdout)
            except EOFError:
                raise DataError(
                    f"Reading {ref} stopped: the reader process ended with {_how_it_ended(child)}.",
                    "Check free memory (a huge file needs several times its size) and open "
                    "the file again.", ref) from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        _end(child)


def check_in_subprocess(train: Sequence[tuple[int, Packed]], val: Sequence[tuple[int, Packed]],
                        source: str, is_cancelled: Callable[[], bool]) -> DatasetStats | None:
    """:func:`core.data.dataset_stats` of ``(line, packed)`` rows, run in a child process.

    The checks are pure Python and take ~20 s for 100,000 rows: in the UI process they held
    the GIL long enough for keys to wait. Rows go to the child in pickled slices; ``None``
    when ``is_cancelled()`` turns true (the child is killed).
    """
    child = _spawn("serve_checks", source, stdin=subprocess.PIPE)
    try:
        for part, rows in (("train", train), ("val", val)):
            for start in range(0, len(rows), CHECK_SLICE):
                if is_cancelled():
                    return None
                _send(child, (part, list(rows[start:start + CHECK_SLICE])))
        child.stdin.close()
        answer = _receive(child, is_cancelled, "checks")
        return None if answer is None else answer[1]
    finally:
        _end(child)


def outcome_in_subprocess(tokenizer: Any, rows: Sequence[tuple[int, Packed]], max_length: int,
                          assistant_only_loss: bool, source: str,
                          progress: Callable[[int], None], is_cancelled: Callable[[], bool],
                          options: RenderOptions | None = None) -> TrainingOutcome | None:
    """:func:`core.data.training_outcome` of the kept ``(line, packed)`` rows, in a child,
    rendered with ``options`` (template, system prompt, text chunking).

    Rendering is pure Python for the most part (the chat template, the loss mask), ~2 ms a
    row: 100,000 rows hold a core for minutes. The tokenizer travels pickled, so the child
    renders with exactly the one loaded. ``progress(rows rendered)`` is called as the child
    reports; ``None`` when ``is_cancelled()`` turns true (the child is killed).
    """
    child = _spawn("serve_outcome", source, str(max_length), str(int(assistant_only_loss)),
                   stdin=subprocess.PIPE)
    try:
        _send(child, ("tokenizer", tokenizer))
        _send(child, ("options", options or RenderOptions()))
        for start in range(0, len(rows), CHECK_SLICE):
            if is_cancelled():
                return None
            _send(child, ("rows", list(rows[start:start + CHECK_SLICE])))
        child.stdin.close()
        while (answer := _receive(child, is_cancelled, "rendering")) is not None:
            kind, item = answer
            if kind != "progress":
                return item
            progress(item)
        return None
    finally:
        _end(child)


def _spawn(entry: str, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``core.rows.<entry>(*args)`` in a child Python that finds this package."""
    return subprocess.Popen(
        # -c, not -m: pickles must name core.rows' classes, not __main__'s
        [sys.executable, "-c", f"import sys; from core.rows import {entry}; sys.exit({entry}(*sys.argv[1:]))",
         *args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_environment(),
    )


def _send(child: subprocess.Popen, message: tuple[str, Any]) -> None:
    """Pickle one ``(kind, item)`` message to the child."""
    pickle.dump(message, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)


def _receive(child: subprocess.Popen, is_cancelled: Callable[[], bool], what: str
             ) -> tuple[str, Any] | None:
    """The child's next ``(kind, item)`` message; ``None`` once ``is_cancelled()`` turns true
    while waiting for it. An ``error`` item is raised, and so is a child that ends without
    answering (``what`` names it in the message)."""
    while not select.select([child.stdout], [], [], 0.1)[0]:
        if is_cancelled():
            return None
    try:
        kind, item = pickle.load(child.stdout)
    except EOFError:
        raise RuntimeError(f"the {what} process ended with {_how_it_ended(child)}") from None
    if kind == "error":
        raise item
    return kind, item


def _how_it_ended(child: subprocess.Popen) -> str:
    """``code 1 (its last line on stderr)``, for a child that closed its pipe."""
    code = child.wait()
    detail = child.stderr.read().decode(errors="replace").strip().splitlines()
    return f"code {code}" + (f" ({detail[-1]})" if detail else "")


def _end(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            try:
                stream.close()
            except BrokenPipeError:
                pass


def _pickle_out() -> Callable[[str, Any], None]:
    """In a child: a writer of ``(kind, item)`` pickles to the real stdout (prints go to stderr)."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a stray print must not corrupt the stream

    def send(kind: str, item: Any) -> None:
        pickle.dump((kind, item), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    return send


def serve(ref: str, data_format: str) -> int:
    """The reader child: send every item of :func:`read_batches` to stdout, pickled."""
    send = _pickle_out()
    try:
        for item in read_batches(ref, data_format):
            send("item", item)
    except DataError as exc:
        send("error", exc)
    except Exception as exc:  # noqa: BLE001  (the UI shows it as a reading failure)
        send("error", DataError(f"Reading {ref} failed: {type(exc).__name__}: {exc}.",
                                "Check the file, or report this with the file's first lines.", ref))
    else:
        send("end", None)
    return 0


def serve_checks(source: str) -> int:
    """The checks child: read row slices from stdin, send :func:`dataset_stats`' result."""
    send = _pickle_out()
    rows: dict[str, list[tuple[int, Packed]]] = {"train": [], "val": []}
    while True:
        try:
            part, chunk = pickle.load(sys.stdin.buffer)
        except EOFError:
            break
        rows[part].extend(chunk)
    train, val = ([unpack(line, packed) for line, packed in rows[part]] for part in ("train", "val"))
    try:
        send("result", dataset_stats(train, val, train_source=source, val_source=source))
    except Exception as exc:  # noqa: BLE001  (any exception may not pickle: send its text)
        send("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    return 0


def serve_outcome(source: str, max_length: str, assistant_only_loss: str) -> int:
    """The rendering child: read the tokenizer, the rendering options and row slices from
    stdin, send progress and :func:`core.data.training_outcome`'s result."""
    send = _pickle_out()
    tokenizer, options, rows = None, None, []
    while True:
        try:
            kind, item = pickle.load(sys.stdin.buffer)
        except EOFError:
            break
        if kind == "tokenizer":
            tokenizer = item
        elif kind == "options":
            options = item
        else:
            rows.extend(item)
    examples = (unpack(line, packed) for line, packed in rows)
    try:
        send("result", training_outcome(tokenizer, examples, int(max_length),
                                        assistant_only_loss == "1", source, options=options,
                                        progress=lambda done: send("progress", done)))
    except Exception as exc:  # noqa: BLE001  (any exception may not pickle: send its text)
        send("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
    return 0
