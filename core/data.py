"""Training data: loading, format detection, normalisation, rendering and checks.

The flow is ``open_dataset`` (whole-file checks, incremental reading) -> ``detect_format`` (first
rows only) -> ``normalise_row`` (one row to chat ``messages`` or plain ``text``, with problems)
-> ``render_example`` (the exact tokens the model sees, with the loss mask) ->
``tokenize_for_training`` (plain ``input_ids``/``labels`` lists for TRL's ``SFTTrainer``).
``load_examples`` runs the first three over a whole file; ``dataset_stats`` summarises lengths,
duplicates, refusals and train/validation leakage.

Bad input never raises a raw traceback: whole-file problems raise :class:`DataError` naming the
file and the fix; row problems become :class:`Problem` records with their line (JSONL) or row
number, and bad rows are dropped and counted, or stop the load, as the user chose.

Nothing here imports Textual, and the heavy libraries (``datasets``, ``pyarrow``, ``numpy``) are
imported only by the functions that need them, so the UI can import this module at start-up.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import itertools
import json
import math
import random
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from core.config import DATA_FORMATS

SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLES = {
    "support-tickets": "support_tickets_train.jsonl",
    "support-tickets-heldout": "support_tickets_heldout.jsonl",
}
"""``sample:<name>`` references and the file in ``core/samples`` each resolves to."""

DETECT_ROWS = 100
"""Rows read to detect the format; detection never reads further, so huge files open fast."""

JSONL_SUFFIXES = (".jsonl", ".ndjson")
"""Extensions read as JSON Lines; problems in them are located by line, elsewhere by row."""
TEXT_SUFFIXES = (*JSONL_SUFFIXES, ".json", ".csv", ".tsv")
"""Extensions of text formats, which must be UTF-8 (a BOM is accepted)."""
SUPPORTED = "JSONL, JSON, CSV, TSV, Parquet, or a directory saved with datasets' save_to_disk"
"""The accepted inputs, as named in error messages."""
MAX_LINE_BYTES = 64 * 2**20
"""Longest JSONL or CSV line read; a longer one is skipped in chunks, never held in memory."""
MAX_JSON_BYTES = 2**30
"""Largest JSON document (read whole, at several times its size in memory); use JSONL beyond."""

ROLE_ALIASES = {
    **dict.fromkeys(("system", "developer"), "system"),
    **dict.fromkeys(("user", "human", "prompter"), "user"),
    **dict.fromkeys(
        ("assistant", "gpt", "chatgpt", "gpt-4", "gpt4", "bing", "bard", "model", "bot", "ai",
         "claude", "gemini"),
        "assistant",
    ),
}
"""Role names found in OpenAI, ShareGPT and OASST-style data, lower-cased, to the chat role."""

TOOL_ROLES = ("tool", "function", "function_call", "function_response", "observation", "ipython")
"""Tool-call roles: recognised so the problem can say they are unsupported, not unknown."""

REFUSAL_PATTERNS = re.compile(
    r"\bas an ai(?: language)? model|\bas a (?:large )?language model|\bas an ai assistant"
    r"|\bi(?: cannot| can['’]t| can not|['’]m not able to| am not able to|['’]m unable to"
    r"| am unable to) (?:assist|help|comply|fulfill|provide|do that)"
    r"|\bi['’]m sorry, but i (?:cannot|can['’]t)|\bi apologi[sz]e, but i (?:cannot|can['’]t)",
    re.IGNORECASE,
)
"""Boilerplate that marks a refusal or a model disclaimer copied into the training data."""

END_OF_TURN_TOKENS = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>", "<|return|>", "<｜end▁of▁sentence｜>",
)
"""End-of-turn tokens used by common chat templates; those the tokenizer knows end a turn."""

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + END + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, used when a tokenizer has no chat template; ``END`` becomes the end-of-turn token."""


# --- errors and problems -----------------------------------------------------------------


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
        unit = "line" if self.source.endswith(JSONL_SUFFIXES) else "row"
        return f"{self.source}, {unit} {self.line}"

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


# --- rows and examples -------------------------------------------------------------------


class RawRow(NamedTuple):
    """One row as read from disk: parsed ``data``, or ``problem`` when it could not be parsed.

    ``offset`` is the byte offset where a JSONL line starts (``None`` for other formats); give it
    back to :func:`iter_jsonl_rows` to resume reading there without scanning.
    """

    line: int
    data: Any
    problem: Problem | None = None
    offset: int | None = None


@dataclass
class Example:
    """One normalised row: chat ``messages`` or plain ``text``, and the ``line`` it came from."""

    line: int
    messages: list[dict[str, str]] | None = None
    """``[{"role": "system"|"user"|"assistant", "content": str}, ...]``."""
    text: str | None = None
    """Plain text, trained on every token."""

    def answers(self) -> list[str]:
        """The assistant turns, or the text for a text row."""
        if self.messages is None:
            return [self.text or ""]
        return [m["content"] for m in self.messages if m["role"] == "assistant"]

    def dedupe_text(self) -> str:
        """The row's words without system turns, which many rows share, for duplicate checks."""
        if self.messages is None:
            return self.text or ""
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages
                         if m["role"] != "system")


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


# --- opening files -----------------------------------------------------------------------


def resolve_data_path(ref: str | Path) -> Path:
    """Turn ``sample:<name>`` or a user path (``~`` expanded) into a filesystem path."""
    text = str(ref).strip()
    if text.startswith("sample:"):
        name = text.removeprefix("sample:")
        if name not in SAMPLES:
            raise DataError(f"Unknown sample dataset '{name}'.",
                            f"Use one of: {', '.join('sample:' + s for s in SAMPLES)}.", text)
        return SAMPLES_DIR / SAMPLES[name]
    return Path(text).expanduser()


def open_dataset(path_or_ref: str | Path) -> "DatasetFile":
    """Check a dataset file or directory and open it for incremental reading.

    Only the first few KB are read here; rows are read on demand. Raises :class:`DataError`
    for a missing path, a directory without a saved dataset, an unreadable, empty, binary or
    UTF-16 file, or an unknown extension.
    """
    path = resolve_data_path(path_or_ref)
    source = str(path)
    if not path.exists():
        hint = ("The sample is missing from the installation; reinstall tunetop."
                if str(path_or_ref).startswith("sample:")
                else "Check the path, or use sample:support-tickets to try the bundled data.")
        raise DataError(f"{source} does not exist.", hint, source)
    if path.is_dir():
        return DatasetFile(path, _saved_dataset_kind(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        kind = "parquet"
    elif suffix in TEXT_SUFFIXES:
        kind = {".json": "json", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "jsonl")
    else:
        raise DataError(
            f"{source} has an unknown extension '{path.suffix or '(none)'}'.",
            f"Use {SUPPORTED}. For plain text, write one JSON object per line with a 'text' "
            "field into a .jsonl file.",
            source,
        )
    try:
        with path.open("rb") as f:
            head = f.read(8192)
    except OSError as exc:
        raise DataError(f"{source} cannot be read: {exc.strerror or exc}.",
                        f"Check its permissions (e.g. chmod u+r {path}), or copy it somewhere "
                        "you can read.", source) from None
    if not head:
        raise DataError(f"{source} is empty.", "Give a file with at least one row.", source)
    if kind != "parquet":
        _check_text_head(source, head)
    return DatasetFile(path, kind)


def _saved_dataset_kind(path: Path) -> str:
    if (path / "dataset_dict.json").is_file():
        return "dataset_dict"
    if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
        return "dataset"
    data_files = sorted(p.name for p in path.iterdir()
                        if p.suffix.lower() in (*TEXT_SUFFIXES, ".parquet"))[:3]
    fix = (f"Give one of its files instead, e.g. {path / data_files[0]}." if data_files
           else "Give a data file, or a directory written by Dataset.save_to_disk().")
    raise DataError(f"{path} is a directory without a dataset saved by save_to_disk "
                    "(no state.json or dataset_dict.json).", fix, str(path))


def _check_text_head(source: str, head: bytes) -> None:
    """Reject binary and UTF-16/32 files from their first bytes, before any row is read."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{source} is UTF-16 (or UTF-32) encoded, not UTF-8.",
                        "Re-save the file as UTF-8.", source)
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{source} is gzip-compressed.", "Decompress it first (gunzip).", source)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{source} looks like a binary file (NUL byte at offset {nul}), "
                        "not text.", f"Give a UTF-8 text file ({SUPPORTED}).", source)


def _not_utf8(source: str, offset: int, line: int, byte: int) -> DataError:
    return DataError(
        f"{source} is not valid UTF-8: byte 0x{byte:02x} at byte offset {offset} (line {line}).",
        "Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 in > out).", source, line,
    )


def _size(n: float) -> str:
    """Bytes for people: ``512 bytes``, ``4.0 KB``, ``2.0 GB``."""
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def _bounded_lines(f: Any) -> Iterator[tuple[bytes | None, int]]:
    """``(line, size)`` for each line of binary file ``f``; ``line`` is ``None`` for a line over
    :data:`MAX_LINE_BYTES`, which is skipped in chunks of at most 1 MB, so memory stays bounded."""
    limit = MAX_LINE_BYTES
    while raw := f.readline(limit + 1):
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        del raw
        while chunk := f.readline(min(limit + 1, 2**20)):
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
        yield None, size


def _too_long(size: int) -> str:
    return f"the line is {_size(size)}, longer than the {_size(MAX_LINE_BYTES)} limit for one row"


def iter_jsonl_rows(path: str | Path, start_line: int = 1,
                    offset: int | None = None) -> Iterator[RawRow]:
    """Yield the rows of a JSONL file one at a time, skipping blank lines.

    Reading starts at ``start_line``; pass ``offset``, the byte offset of that line (from an
    earlier :attr:`RawRow.offset`), to seek there instead of scanning from the top. A malformed
    line, or one over :data:`MAX_LINE_BYTES`, becomes a row with a ``problem``; bytes that are
    not UTF-8 raise :class:`DataError`.
    """
    path = Path(path)
    source = str(path)
    with path.open("rb") as f:
        pos, line_no = 0, 1
        if offset is not None:
            f.seek(offset)
            pos, line_no = offset, start_line
        for raw, size in _bounded_lines(f):
            here, line = pos, line_no
            pos += size
            line_no += 1
            if line < start_line:
                continue
            if raw is None:
                yield RawRow(line, None, Problem(
                    source, line, "(line)", f"{_too_long(size)}; it was skipped.",
                    "Shorten or remove the row (no model takes a row this long), or check for "
                    "missing line breaks between rows."), here)
                continue
            skip = 3 if here == 0 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                text = raw[skip:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(source, here + skip + exc.start, line,
                                raw[skip + exc.start]) from None
            if not text.strip():
                continue
            data = problem = None
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                body = text.rstrip()
                # past the end, json reports line 2 column 1: give the column where it ended
                column = min(exc.pos, len(body)) + 1
                cut = exc.pos >= len(body)
                problem = Problem(
                    source, line, "(json)", f"malformed JSON: {exc.msg} at column {column}"
                    f"{' (the line ends before the row is complete)' if cut else ''}.",
                    "Complete the row or remove the line; the file may have been cut short."
                    if cut else "Write each row as one complete JSON object on its own line.")
            except RecursionError:
                problem = Problem(source, line, "(json)", "JSON nested too deeply to read.",
                                  "Flatten the row.")
            yield RawRow(line, data, problem, here)


def _iter_text_lines(path: Path) -> Iterator[str]:
    """Decoded lines of a text file with the BOM removed; bad UTF-8 raises with its offset."""
    with path.open("rb") as f:
        pos = 0
        for line, (raw, size) in enumerate(_bounded_lines(f), 1):
            if raw is None:
                raise DataError(f"{path}, line {line}: {_too_long(size)}.",
                                "Shorten or remove that row, or check for a missing closing "
                                "quote before it.", str(path), line)
            skip = 3 if pos == 0 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                yield raw[skip:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(str(path), pos + skip + exc.start, line,
                                raw[skip + exc.start]) from None
            pos += len(raw)


class DatasetFile:
    """A dataset on disk opened for incremental reading (see :func:`open_dataset`).

    ``kind`` is jsonl, json, csv, tsv, parquet, dataset or dataset_dict. JSONL, CSV, Parquet and
    saved datasets are streamed; a JSON document is parsed whole on first use and kept.
    """

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._json_rows: list[Any] | None = None
        self._handle: Any = None  # the open ParquetFile or datasets.Dataset

    @property
    def source(self) -> str:
        """The path as shown in messages."""
        return str(self.path)

    def iter_rows(self) -> Iterator[RawRow]:
        """Every row from the start, read lazily."""
        if self.kind == "json":
            return (RawRow(i, row) for i, row in enumerate(self._load_json(), 1))
        if self.kind == "jsonl":
            return iter_jsonl_rows(self.path)
        if self.kind in ("csv", "tsv"):
            return self._iter_csv()
        if self.kind == "parquet":
            return self._iter_parquet()
        return self._iter_saved()

    def first_rows(self, n: int) -> list[RawRow]:
        """The first ``n`` rows, reading no further."""
        return list(itertools.islice(self.iter_rows(), n))

    def iter_batches(self, size: int) -> Iterator[list[RawRow]]:
        """Rows in lists of ``size`` (the last may be shorter), for paging and progress."""
        rows = self.iter_rows()
        while batch := list(itertools.islice(rows, size)):
            yield batch

    def count_rows(self) -> int:
        """Number of rows; reads the file through for JSONL and CSV (about 1 s per 500 MB)."""
        if self.kind == "jsonl":
            with self.path.open("rb") as f:
                return sum(1 for line, _ in _bounded_lines(f) if line is None or line.strip())
        if self.kind == "parquet":
            return self._parquet().metadata.num_rows
        if self.kind in ("dataset", "dataset_dict"):
            return len(self._saved())
        return sum(1 for _ in self.iter_rows())

    def detect_format(self, sample: int = DETECT_ROWS) -> tuple[str, str]:
        """The format of the first ``sample`` rows and why; see :func:`detect_format`."""
        rows = self.first_rows(sample)
        if not rows:
            raise DataError(f"{self.source} has no rows.", "Give a file with at least one row.",
                            self.source)
        if not any(isinstance(r.data, dict) for r in rows):
            first = next((r.problem for r in rows if r.problem), None)
            detail = f" First problem: {first.headline}" if first else ""
            fix = "Give one JSON object per row."
            if self.kind == "jsonl" and self._starts_with(b"["):
                fix = "The file looks like one JSON array: rename it to .json."
            raise DataError(f"{self.source}: none of the first {len(rows)} rows is an object "
                            f"with named fields.{detail}", fix, self.source)
        return detect_format((r.data for r in rows), self.source)

    def _starts_with(self, prefix: bytes) -> bool:
        with self.path.open("rb") as f:
            return f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(prefix)

    def _load_json(self) -> list[Any]:
        if self._json_rows is not None:
            return self._json_rows
        source = self.source
        size = self.path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DataError(f"{source} is {_size(size)}, over the {_size(MAX_JSON_BYTES)} limit "
                            "for a JSON document, which is read whole into memory.",
                            "Convert it to JSON Lines, read row by row: "
                            "jq -c '.[]' in.json > out.jsonl", source)
        raw = self.path.read_bytes()
        skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        try:
            text = raw[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            at = skip + exc.start
            raise _not_utf8(source, at, raw.count(b"\n", 0, at) + 1, raw[at]) from None
        if not text.strip():
            raise DataError(f"{source} is empty.", "Give a file with at least one row.", source)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data" and text.lstrip().startswith("{"):
                raise DataError(f"{source} holds JSON Lines (one object per line), not one "
                                "JSON document.", "Rename it to .jsonl.", source) from None
            at = text[exc.pos:exc.pos + 1]
            if at in ("]", "}") and text[:exc.pos].rstrip().endswith(","):
                why, fix = f" (a trailing comma before '{at}')", "Remove that comma."
            elif exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
                why, fix = (" (the file ends before the JSON is complete)",
                            "Export or download the file again; it looks cut short.")
            else:
                why, fix = "", "Fix the JSON syntax there."
            raise DataError(f"{source} is not valid JSON: {exc.msg.removesuffix(' at')} at "
                            f"line {exc.lineno} "
                            f"column {exc.colno}{why}.", fix, source, exc.lineno) from None
        except RecursionError:
            raise DataError(f"{source} is nested too deeply to read.",
                            "Give a list of flat row objects.", source) from None
        self._json_rows = _rows_in_json(value, source)
        return self._json_rows

    def _iter_csv(self) -> Iterator[RawRow]:
        csv.field_size_limit(MAX_LINE_BYTES)  # the default 128 KB rejects long conversations
        # strict: an unclosed quote is an error, not a cell swallowing the rest of the file
        reader = csv.DictReader(_iter_text_lines(self.path), strict=True,
                                delimiter="\t" if self.kind == "tsv" else ",")
        row_no = 0
        try:
            for row_no, row in enumerate(reader, 1):
                missing = [str(k) for k, v in row.items() if v is None]  # DictReader's restval
                problem = None if not missing else Problem(
                    self.source, row_no, "(row)", "the row has fewer cells than the header: "
                    f"no {', '.join(map(repr, missing))}.",
                    "Add the missing cells (an empty cell still needs its delimiter), or quote "
                    "cells that contain line breaks.")
                yield RawRow(row_no, row, problem)
        except csv.Error as exc:
            raise DataError(f"{self.source} is not valid CSV near row {row_no + 1}: {exc}.",
                            "Check the quoting there.", self.source, row_no + 1) from None

    def _parquet(self) -> Any:
        import pyarrow.parquet as pq

        if self._handle is not None:
            return self._handle
        try:
            self._handle = pq.ParquetFile(self.path)
            return self._handle
        except Exception as exc:  # pyarrow raises several unrelated types for bad files
            raise DataError(f"{self.source} is not a readable Parquet file: "
                            f"{str(exc).rstrip('.')}.",
                            "Re-export it, e.g. with pandas DataFrame.to_parquet().",
                            self.source) from None

    def _iter_parquet(self) -> Iterator[RawRow]:
        row_no = 0
        for batch in self._parquet().iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                row_no += 1
                yield RawRow(row_no, row)

    def _saved(self) -> Any:
        import datasets

        if self._handle is not None:
            return self._handle
        try:
            loaded = datasets.load_from_disk(str(self.path))
        except Exception as exc:  # datasets raises many types for a damaged directory
            raise DataError(f"{self.source} could not be read as a saved dataset: {exc}.",
                            "Save it again with Dataset.save_to_disk().", self.source) from None
        if isinstance(loaded, datasets.DatasetDict):
            if "train" in loaded:
                loaded = loaded["train"]
            elif len(loaded) == 1:
                loaded = next(iter(loaded.values()))
            else:
                raise DataError(f"{self.source} holds splits {', '.join(loaded)} and none is "
                                "named train.", "Save the split to train on by itself, or name "
                                "it train.", self.source)
        self._handle = loaded
        return loaded

    def _iter_saved(self) -> Iterator[RawRow]:
        row_no = 0
        for batch in self._saved().iter(batch_size=1024):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns)):
                row_no += 1
                yield RawRow(row_no, dict(zip(columns, values)))


def _rows_in_json(value: Any, source: str) -> list[Any]:
    """The rows of a JSON document: a top-level list, or the list held by one key."""
    if isinstance(value, list):
        if not value:
            raise DataError(f"{source} holds an empty list.", "Add rows to it.", source)
        return value
    if not isinstance(value, dict):
        raise DataError(f"{source} holds a JSON {type(value).__name__}, not a list of rows.",
                        "Write a JSON array of row objects, or JSONL.", source)
    lists = [k for k, v in value.items() if isinstance(v, list) and v
             and all(isinstance(r, dict) for r in v)
             and not any({"role", "from"} & r.keys() for r in v)]
    if len(lists) == 1:
        return value[lists[0]]
    preferred = [k for k in ("train", "data", "rows", "examples", "records") if k in lists]
    if preferred:
        return value[preferred[0]]
    if lists:
        raise DataError(f"{source} holds several lists of rows ({', '.join(lists)}).",
                        "Keep only the list to train on, or name it 'train'.", source)
    if any(k in value for k in ("messages", "conversations", "text", "prompt", "instruction")):
        return [value]
    raise DataError(f"{source} holds a JSON object without a list of rows "
                    f"(keys: {', '.join(map(str, value)) or 'none'}).",
                    "Write a JSON array of row objects, or {\"data\": [...]}.", source)


# --- format detection --------------------------------------------------------------------

_FORMAT_TESTS = (
    ("messages", "a 'messages' list", lambda r: _is_list_like(r.get("messages"))),
    ("sharegpt", "a 'conversations' list", lambda r: _is_list_like(r.get("conversations"))),
    ("prompt_completion", "'prompt' and 'completion'",
     lambda r: "prompt" in r and "completion" in r),
    ("alpaca", "'instruction' and 'output'", lambda r: "instruction" in r and "output" in r),
    ("text", "a 'text' string", lambda r: isinstance(r.get("text"), str)),
)

_FIELD_HINTS = {
    "conversation": "conversations", "dialog": "messages", "dialogue": "messages",
    "chat": "messages", "turns": "messages", "question": "prompt", "query": "prompt",
    "answer": "completion", "response": "completion", "target": "completion",
    "content": "text", "document": "text", "body": "text",
}
"""Field names seen in the wild and the name tunetop expects, for "did you mean" fixes."""


def _is_list_like(value: Any) -> bool:
    # CSV cells hold lists as JSON text
    return isinstance(value, list) or (isinstance(value, str) and value.lstrip().startswith("["))


def detect_format(rows: Iterable[Any], source: str = "") -> tuple[str, str]:
    """Pick the format most of ``rows`` follow; returns ``(format, reason)``.

    Only the given rows are looked at (callers pass the first :data:`DETECT_ROWS`). Raises
    :class:`DataError` with renaming hints when no row has a known field.
    """
    counts = dict.fromkeys((name for name, _, _ in _FORMAT_TESTS), 0)
    seen = 0
    keys: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        seen += 1
        keys.update(dict.fromkeys(map(str, row)))
        for name, _, test in _FORMAT_TESTS:
            if test(row):
                counts[name] += 1
                break
    best = max(counts, key=counts.__getitem__)
    if not seen or not counts[best]:
        hints = [f"'{k}' to '{_FIELD_HINTS[k.lower()]}'" for k in keys if k.lower() in _FIELD_HINTS]
        missing = [f"'{need}' (format {name} needs {' and '.join(map(repr, pair))})"
                   for name, pair in (("alpaca", ("instruction", "output")),
                                      ("prompt_completion", ("prompt", "completion")))
                   for need in pair if need not in keys and any(k in keys for k in pair)]
        fix = ("Rename " + ", ".join(hints) + ", or set data.format." if hints else
               "Add the missing field " + ", ".join(missing) + ", or set data.format."
               if missing else
               "Use 'messages' (OpenAI chat), 'conversations' (ShareGPT), "
               "'instruction'/'input'/'output' (Alpaca), 'prompt'/'completion' or 'text'.")
        raise DataError(f"{source}: cannot tell the data format: none of the first {seen} rows "
                        f"has a known field (they have {', '.join(keys) or 'no fields'}).",
                        fix, source)
    desc = next(d for name, d, _ in _FORMAT_TESTS if name == best)
    reason = f"{best}: {counts[best]} of first {seen} rows have {desc}"
    others = [f"{n} {name}" for name, n in counts.items() if n and name != best]
    if others:
        reason += f" (also {', '.join(others)}; those rows will be reported)"
    return best, reason


# --- normalisation -----------------------------------------------------------------------


class _RowChecker:
    """Collects the problems of one row while it is normalised."""

    def __init__(self, source: str, line: int) -> None:
        self.source = source
        self.line = line
        self.problems: list[Problem] = []

    def error(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix))

    def warn(self, field_name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message, fix, "warning"))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def require(self, row: dict[str, Any], key: str, fmt: str) -> bool:
        """Report a missing field as a wrong field name, with the closest name present."""
        if key in row:
            return True
        present = [str(k) for k in row]
        other = next((name for name, _, test in _FORMAT_TESTS if name != fmt and test(row)), None)
        close = ([k for k in present if _FIELD_HINTS.get(k.lower()) == key]
                 or difflib.get_close_matches(key, present, n=1, cutoff=0.6))
        if other:
            fix = (f"Keep one format in a file: convert the row to {fmt}, or move the {other} "
                   "rows to a file of their own.")
        elif close:
            fix = f"Rename '{close[0]}' to '{key}'."
        else:
            fix = f"Give every row a '{key}' field, or set data.format to match the file."
        looks = f"; it is in {other} format" if other else ""
        self.error(key, f"wrong field names: no '{key}' field for format {fmt} "
                        f"(the row has {', '.join(present) or 'no fields'}{looks}).", fix)
        return False

    def string(self, value: Any, name: str, *, optional: bool = False) -> str | None:
        """A non-empty string field, or ``None`` with the problem reported."""
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            kind = type(value).__name__
            got = ("null (no value)" if value is None
                   else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
            self.error(name, f"non-string content: expected text, got {got}.",
                       "Write the content as a JSON string.")
            return None
        if not value.strip() and not optional:
            self.error(name, "empty content.", "Write the text, or remove the row.")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone \ud800-style JSON escape; tokenizers reject it
            self.error(name, f"invalid Unicode: unpaired surrogate {value[exc.start]!r} at "
                             f"character {exc.start}.",
                       "Fix the \\uXXXX escape; surrogates must come in pairs.")
            return None
        return value

    def turns(self, value: Any, name: str) -> list[dict[str, str]] | None:
        """Normalise a list of turns (role/content or ShareGPT from/value)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                self.error(name, "is text that is not a JSON list of turns.",
                           "Store the turns as a JSON list.")
                return None
        if not isinstance(value, list):
            self.error(name, f"must be a list of turns, got {type(value).__name__}.",
                       "Store the turns as a list of {role, content} objects.")
            return None
        if not value:
            self.error(name, "has no turns.", "Add user and assistant turns, or remove the row.")
            return None
        out: list[dict[str, str]] = []
        for i, turn in enumerate(value):
            where = f"{name}[{i}]"
            if not isinstance(turn, dict):
                self.error(where, f"turn is a {type(turn).__name__}, not an object.",
                           "Write each turn as {\"role\": ..., \"content\": ...}.")
                continue
            role_key = "role" if "role" in turn else "from" if "from" in turn else None
            content_key = "content" if "content" in turn else "value" if "value" in turn else None
            if role_key is None or content_key is None:
                self.error(where, f"wrong field names: the turn has "
                                  f"{', '.join(map(str, turn)) or 'no fields'}.",
                           "Name the fields 'role' and 'content' (or ShareGPT 'from' and "
                           "'value').")
                continue
            role = self._role(turn[role_key], f"{where}.{role_key}")
            content = self._content(turn[content_key], f"{where}.{content_key}")
            if role is not None and content is not None:
                out.append({"role": role, "content": content})
        return out if self.ok else None

    def _role(self, value: Any, name: str) -> str | None:
        role = ROLE_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
        if role is None:
            if isinstance(value, str) and value.strip().lower() in TOOL_ROLES:
                fix = "Tool turns are not supported: remove them or fold them into a user turn."
            else:
                fix = "Use system, user or assistant (ShareGPT: system, human, gpt)."
            self.error(name, f"unknown role {value!r}.", fix)
        return role

    def _content(self, value: Any, name: str) -> str | None:
        if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in value
        ):  # OpenAI content parts
            value = "\n".join(p["text"] for p in value)
        return self.string(value, name)

    def order(self, turns: list[dict[str, str]], name: str) -> None:
        """Check the turn sequence: one leading system turn, then user/assistant alternating."""
        roles = [t["role"] for t in turns]
        if all(r == "system" for r in roles):
            self.error(name, "system-only row: it has no user or assistant turn.",
                       "Add the user and assistant turns, or remove the row.")
            return
        if "assistant" not in roles:
            self.error(name, "missing assistant turn: there is nothing to learn from this row.",
                       "Add the assistant's answer, or remove the row.")
            return
        expected = "user"
        for i, role in enumerate(roles):
            if role == "system" and i == 0:
                continue
            if role != expected:
                after = f"after '{roles[i - 1]}'" if i else "first"
                self.error(f"{name}[{i}]",
                           f"roles out of order: turn {i + 1} is '{role}' {after}; turns must "
                           "alternate user, assistant after an optional first system turn.",
                           "Merge or reorder the turns so user and assistant alternate.")
                return
            expected = "assistant" if role == "user" else "user"
        if roles[-1] == "user":
            self.warn(name, "the last turn is a user turn with no answer; it is not trained.",
                      "Add the assistant's answer or remove the last turn.")


def normalise_row(row: Any, format: str, source: str = "", line: int = 0,
                  ) -> tuple[Example | None, list[Problem]]:
    """Turn one raw row of ``format`` into an :class:`Example`.

    Returns ``(None, problems)`` when the row has an error (it must be dropped), else the
    example and any warnings. Never raises for bad data.
    """
    check = _RowChecker(source, line)
    if not isinstance(row, dict):
        check.error("(row)", f"the row is a {type(row).__name__}, not an object with fields.",
                    "Write each row as a JSON object.")
        return None, check.problems
    if None in row:  # csv.DictReader keeps surplus cells under the key None
        check.error("(row)", "the row has more cells than the header.",
                    "Quote cells that contain the delimiter.")
        return None, check.problems
    example = Example(line)
    if format == "text":
        if check.require(row, "text", format):
            example.text = check.string(row["text"], "text")
    elif format in ("messages", "sharegpt"):
        key = "messages" if format == "messages" else "conversations"
        if check.require(row, key, format):
            turns = check.turns(row[key], key)
            if turns is not None:
                check.order(turns, key)
                example.messages = turns
    elif format == "alpaca":
        # "&", not "and", below and for prompt_completion: every missing field is reported
        if check.require(row, "instruction", format) & check.require(row, "output", format):
            instruction = check.string(row["instruction"], "instruction")
            extra = check.string(row.get("input"), "input", optional=True)
            output = check.string(row["output"], "output")
            system = check.string(row.get("system"), "system", optional=True)
            if check.ok:
                prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
                example.messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": output},
                ]
    elif format == "prompt_completion":
        if check.require(row, "prompt", format) & check.require(row, "completion", format):
            turns = (_side(check, row["prompt"], "prompt", "user")
                     + _side(check, row["completion"], "completion", "assistant"))
            if check.ok:
                check.order(turns, "prompt+completion")
                example.messages = turns
    else:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(DATA_FORMATS[1:])}")
    return (example if check.ok else None), check.problems


def _side(check: _RowChecker, value: Any, name: str, role: str) -> list[dict[str, str]]:
    """One side of a prompt/completion row: a string, or a list of turns (TRL conversational)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:  # a CSV cell holding turns as JSON; otherwise it is prose that starts with "["
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(isinstance(t, dict) for t in parsed):
            value = parsed
    if isinstance(value, list):
        return check.turns(value, name) or []
    text = check.string(value, name)
    return [{"role": role, "content": text}] if text is not None else []


def load_examples(path_or_ref: str | Path, format: str = "auto",
                  on_bad_rows: str = "drop") -> LoadResult:
    """Read, check and normalise a whole dataset.

    ``format`` is ``auto`` (detected from the first rows) or one of the formats in
    ``core.config.DATA_FORMATS``. With ``on_bad_rows="drop"`` bad rows are left out, counted in
    ``dropped`` and listed in ``problems``; with ``"stop"`` the first bad row raises
    :class:`DataError` naming its file and line.
    """
    if format not in DATA_FORMATS:
        raise DataError(f"Unknown data format '{format}'.",
                        f"Use one of {', '.join(DATA_FORMATS)}.")
    if on_bad_rows not in ("drop", "stop"):
        raise DataError(f"Unknown on_bad_rows '{on_bad_rows}'.", "Use drop or stop.")
    dataset = open_dataset(path_or_ref)
    if format == "auto":
        fmt, reason = dataset.detect_format()
    else:
        fmt, reason = format, f"{format}: set by data.format"
    examples: list[Example] = []
    problems: list[Problem] = []
    total = dropped = 0
    for raw in dataset.iter_rows():
        total += 1
        if raw.problem is not None:
            example, found = None, [raw.problem]
        else:
            example, found = normalise_row(raw.data, fmt, dataset.source, raw.line)
        if on_bad_rows == "stop":
            first_error = next((p for p in found if p.severity == "error"), None)
            if first_error is not None:
                raise DataError.from_problem(first_error)
        problems.extend(found)
        if example is None:
            dropped += 1
        else:
            examples.append(example)
    if not total:
        raise DataError(f"{dataset.source} has no rows.", "Give a file with at least one row.",
                        dataset.source)
    return LoadResult(dataset.path, fmt, reason, examples, problems, total, dropped)


def split_examples(examples: Sequence[Example], validation_fraction: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """Split into ``(train, validation)``, the same for the same seed; order is kept in each.

    At least one row goes to each side when the fraction is above 0 and there are two rows.
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


# --- rendering with the loss mask --------------------------------------------------------


@dataclass
class Rendered:
    """A row exactly as the model sees it, with which tokens are trained."""

    line: int
    input_ids: list[int]
    labels: list[int]
    """``input_ids`` with -100 on masked tokens (not shifted; the model shifts)."""
    text: str
    """The templated text of the kept tokens."""
    spans: list[tuple[int, int, bool]]
    """``(start, end, trained)`` character runs of ``text``, for highlighting."""
    offsets: list[tuple[int, int]] | None
    """Character span of each token in ``text``; ``None`` for tokenizers without offsets."""
    full_tokens: int
    """Tokens before truncation."""
    eos_trained: bool
    """The last trained token (ignoring whitespace) is the EOS / end-of-turn token."""
    template_note: str | None = None
    """Set when the tokenizer has no chat template and a fallback ChatML template was used."""
    notes: list[str] = field(default_factory=list)
    """Problems met rendering this row, e.g. an assistant turn the template dropped."""

    @property
    def num_tokens(self) -> int:
        """Tokens kept (at most ``max_length``)."""
        return len(self.input_ids)

    @property
    def truncated(self) -> bool:
        """Whether tokens were cut off at ``max_length``."""
        return self.full_tokens > len(self.input_ids)

    @property
    def tokens_lost(self) -> int:
        """Tokens cut off at ``max_length``."""
        return self.full_tokens - len(self.input_ids)

    @property
    def trained(self) -> list[bool]:
        """Per token: does it count in the loss."""
        return [label != -100 for label in self.labels]

    @property
    def num_trained(self) -> int:
        """Tokens that count in the loss."""
        return sum(label != -100 for label in self.labels)

    def segments(self) -> list[tuple[str, bool]]:
        """``(text, trained)`` runs covering ``text`` in order."""
        return [(self.text[a:b], trained) for a, b, trained in self.spans]

    def to_training_row(self) -> dict[str, list[int]]:
        """The row for ``SFTTrainer``: plain ``input_ids`` and ``labels`` lists."""
        return {"input_ids": list(self.input_ids), "labels": list(self.labels)}


@dataclass
class _Template:
    """What rendering needs to know about one tokenizer, computed once per batch."""

    tokenizer: Any
    template: str | None
    note: str | None
    end_strings: tuple[str, ...]
    end_ids: frozenset[int]
    offsets: bool


def _template_for(tokenizer: Any) -> _Template:
    def token_id(text: str) -> int | None:
        tid = tokenizer.convert_tokens_to_ids(text)
        if isinstance(tid, int) and tokenizer.convert_ids_to_tokens(tid) == text:
            return tid
        return None

    eos = tokenizer.eos_token
    known = [s for s in dict.fromkeys((*END_OF_TURN_TOKENS, eos)) if s and token_id(s) is not None]
    template = note = None
    if not getattr(tokenizer, "chat_template", None):
        end = "<|im_end|>" if "<|im_end|>" in known else (eos or "<|im_end|>")
        template = CHATML_TEMPLATE.replace("END", repr(end))
        note = (f"The tokenizer has no chat template; a simple ChatML template ending turns "
                f"with {end} was used.")
    end_ids = frozenset(t for s in known if (t := token_id(s)) is not None)
    return _Template(tokenizer, template, note, tuple(sorted(known, key=len, reverse=True)),
                     end_ids, bool(getattr(tokenizer, "is_fast", False)))


def _apply(info: _Template, messages: list[dict[str, str]], line: int,
           generation_prompt: bool = False) -> str:
    try:
        return info.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt,
            chat_template=info.template)
    except Exception as exc:  # a Jinja template can raise anything (raise_exception, KeyError)
        raise DataError(f"The model's chat template rejected the row from line {line}: {exc}",
                        "Reshape the conversation as the model expects (some templates reject "
                        "system turns), or choose another model.", "", line) from None


def _assistant_spans(info: _Template, messages: list[dict[str, str]], line: int,
                     ) -> tuple[str, list[tuple[int, int]], list[str]]:
    """The templated text and the character spans of assistant turns (content + end token).

    Each assistant turn is located by rendering the conversation up to it: the prompt with the
    generation header marks where the answer starts, the prefix including the turn where it
    ends. Templates that re-render earlier turns fall back to searching forward for the content.
    """
    full = _apply(info, messages, line)
    spans: list[tuple[int, int]] = []
    notes: list[str] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        lo, hi = cursor, len(full)
        if i:
            head = _apply(info, messages[:i], line, generation_prompt=True)
            if full.startswith(head):
                lo = max(lo, len(head))
        turn = _apply(info, messages[: i + 1], line)
        if full.startswith(turn) and len(turn) > lo:
            hi = len(turn)
        content = message["content"]
        start = full.find(content, lo, hi)
        if start < 0 and content.strip():
            content = content.strip()
            start = full.find(content, lo, hi)
        if start < 0:
            notes.append(f"Assistant turn {i + 1} was not found in the templated text; it is "
                         "not trained.")
            continue
        end = start + len(content)
        gap = full[end:hi]
        after = end + len(gap) - len(gap.lstrip(" \n"))  # Llama 2 puts a space before </s>
        for token in info.end_strings:
            if full.startswith(token, after):
                end = after + len(token)
                break
        spans.append((start, end))
        cursor = end
    return full, spans, notes


def _mark(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Per token, whether its characters overlap a trained span (both lists are in order)."""
    flags = []
    k = 0
    for s, e in offsets:
        while k < len(spans) and spans[k][1] <= s:
            k += 1
        inside = k < len(spans) and (s < spans[k][1] and max(e, s + 1) > spans[k][0])
        flags.append(inside)
    return flags


def _render(info: _Template, example: Example, max_length: int,
            assistant_only_loss: bool) -> Rendered:
    tok = info.tokenizer
    notes: list[str] = []
    if example.messages is None:
        text = example.text or ""
        if tok.eos_token and not text.endswith(tok.eos_token):
            text += tok.eos_token
        spans = [(0, len(text))]
        encode_kwargs: dict[str, Any] = {}
    else:
        text, spans, notes = _assistant_spans(info, example.messages, example.line)
        if not assistant_only_loss:
            spans = [(0, len(text))]
        encode_kwargs = {"add_special_tokens": False}
    offsets: list[tuple[int, int]] | None = None
    if info.offsets:
        enc = tok(text, return_offsets_mapping=True, **encode_kwargs)
        ids = list(enc["input_ids"])
        offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
        flags = _mark(offsets, spans)
    else:
        ids = list(tok(text, **encode_kwargs)["input_ids"])
        flags = [False] * len(ids)
        for a, b in spans:
            first = len(tok(text[:a], **encode_kwargs)["input_ids"]) if a else 0
            last = len(tok(text[:b], **encode_kwargs)["input_ids"])
            flags[first:last] = [True] * (last - first)
    full_tokens = len(ids)
    ids, flags = ids[:max_length], flags[:max_length]
    if offsets is not None:
        offsets = offsets[: len(ids)]
        if full_tokens > len(ids):
            text = text[: offsets[-1][1]]
        token_texts = [text[s:e] for s, e in offsets]
        starts = [s for s, _ in offsets]
    else:
        token_texts = [tok.decode([t]) for t in ids]
        text = "".join(token_texts)
        starts = list(itertools.accumulate((len(t) for t in token_texts[:-1]), initial=0))
    return Rendered(
        line=example.line, input_ids=ids,
        labels=[t if f else -100 for t, f in zip(ids, flags)], text=text,
        spans=_runs(starts, flags, len(text)), offsets=offsets, full_tokens=full_tokens,
        eos_trained=_ends_with_eos(ids, flags, token_texts, info.end_ids),
        template_note=info.note if example.messages is not None else None, notes=notes,
    )


def _runs(starts: list[int], flags: list[bool], length: int) -> list[tuple[int, int, bool]]:
    """Merge per-token flags into ``(start, end, flag)`` character runs covering the text."""
    runs: list[tuple[int, int, bool]] = []
    for i, flag in enumerate(flags):
        if i and flag == flags[i - 1]:
            continue
        start = starts[i] if i else 0
        if runs:
            runs[-1] = (runs[-1][0], start, runs[-1][2])
        runs.append((start, length, flag))
    return runs


def _ends_with_eos(ids: list[int], flags: list[bool], token_texts: list[str],
                   end_ids: frozenset[int]) -> bool:
    """Whether the last trained token, skipping whitespace (ChatML's newline), ends a turn."""
    for token, flag, token_text in zip(reversed(ids), reversed(flags), reversed(token_texts)):
        if flag and (token in end_ids or token_text.strip()):
            return token in end_ids
    return False


def _as_example(example: Example | Mapping[str, Any]) -> Example:
    if isinstance(example, Example):
        return example
    return Example(int(example.get("line", 0)), example.get("messages"), example.get("text"))


def render_example(tokenizer: Any, example: Example | Mapping[str, Any], max_length: int,
                   assistant_only_loss: bool = True) -> Rendered:
    """Render one example with the tokenizer's chat template and build its loss mask.

    Assistant turns (their content and the end-of-turn token after it) are trained; with
    ``assistant_only_loss=False`` every token is. Text rows get EOS appended and are trained on
    every token. Rows longer than ``max_length`` tokens are cut at the end. ``example`` may be an
    :class:`Example` or a mapping with ``messages`` or ``text``. A chat template that rejects the
    row raises :class:`DataError`.
    """
    return _render(_template_for(tokenizer), _as_example(example), max_length,
                   assistant_only_loss)


def render_examples(tokenizer: Any, examples: Iterable[Example], max_length: int,
                    assistant_only_loss: bool = True) -> list[Rendered]:
    """:func:`render_example` over many rows, inspecting the tokenizer once."""
    info = _template_for(tokenizer)
    return [_render(info, e, max_length, assistant_only_loss) for e in examples]


def tokenize_for_training(tokenizer: Any, examples: Iterable[Example], max_length: int,
                          assistant_only_loss: bool = True) -> list[dict[str, list[int]]]:
    """Pre-tokenized rows for ``SFTTrainer``: ``{"input_ids": [...], "labels": [...]}`` each.

    One output row per example, in order. Pass the result as a ``datasets.Dataset``; TRL uses a
    ``labels`` column as it is, so set its own ``assistant_only_loss`` off. Check
    :func:`rendering_problems` first: rows with no trained token are dropped by TRL.
    """
    return [r.to_training_row()
            for r in render_examples(tokenizer, examples, max_length, assistant_only_loss)]


def rendering_problems(rendered: Iterable[Rendered], source: str = "") -> list[Problem]:
    """Warnings for rendered rows: no trained token, EOS not trained (unless truncated), notes.

    A model that never sees a trained end-of-turn token does not learn to stop.
    """
    out: list[Problem] = []
    template_noted = False
    for r in rendered:
        if r.template_note and not template_noted:
            template_noted = True
            out.append(Problem(source, None, "chat_template", r.template_note,
                               "Use an instruct model, or give the tokenizer a chat template.",
                               "warning"))
        for note in r.notes:
            out.append(Problem(source, r.line, "template", note,
                               "Check the chat template, or simplify the turn.", "warning"))
        if not r.num_trained:
            out.append(Problem(source, r.line, "labels",
                               f"no trained tokens in the first {r.num_tokens} tokens; the row "
                               "teaches nothing and will be skipped.",
                               "Raise data.max_length, or shorten the prompt.", "warning"))
        elif not r.eos_trained and not r.truncated:
            out.append(Problem(source, r.line, "labels",
                               "the end-of-turn/EOS token is not trained, so the model may not "
                               "learn to stop.", "Use a chat template that ends assistant turns "
                               "with the EOS token.", "warning"))
    return out


# --- statistics and content checks -------------------------------------------------------


@dataclass
class TokenStats:
    """Token lengths of rendered rows."""

    rows: int
    min: int
    mean: float
    p50: int
    p95: int
    max: int
    truncated: int
    """Rows cut at ``max_length``."""
    truncated_share: float
    tokens_lost: int
    """Tokens cut off, over all rows."""
    total_tokens: int
    trained_tokens: int


def token_stats(rendered: Sequence[Rendered]) -> TokenStats:
    """Summarise lengths (before truncation), truncation and trained tokens."""
    lengths = sorted(r.full_tokens for r in rendered)
    n = len(lengths)
    if not n:
        return TokenStats(0, 0, 0.0, 0, 0, 0, 0, 0.0, 0, 0, 0)

    def pct(q: float) -> int:  # nearest rank
        return lengths[max(0, math.ceil(q * n) - 1)]

    truncated = sum(r.truncated for r in rendered)
    return TokenStats(
        rows=n, min=lengths[0], mean=sum(lengths) / n, p50=pct(0.5), p95=pct(0.95),
        max=lengths[-1], truncated=truncated, truncated_share=truncated / n,
        tokens_lost=sum(r.tokens_lost for r in rendered),
        total_tokens=sum(r.num_tokens for r in rendered),
        trained_tokens=sum(r.num_trained for r in rendered),
    )


@dataclass
class DatasetStats:
    """What ``tunetop inspect`` and the dataset screen show about a dataset."""

    train_rows: int
    val_rows: int
    tokens: TokenStats | None
    """``None`` when no rendered rows were given."""
    exact_duplicates: int
    near_duplicates: int
    refusals: int
    short_answers: int
    """Rows with an empty or one-word answer."""
    leaked: int
    """Validation rows that duplicate (exactly or nearly) a training row."""
    findings: list[Problem]
    """One warning per finding, with its line."""


_WORD = re.compile(r"\w+")
_NUM_PERM = 64
_BANDS = 16
NEAR_DUPLICATE_SIMILARITY = 0.7
"""Estimated Jaccard similarity of word 3-shingles above which two rows are near duplicates."""


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


class _NearIndex:
    """MinHash over word 3-shingles with banded LSH: one pass, constant work per row."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        rng = np.random.default_rng(0)
        self.a = rng.integers(1, 2**63, _NUM_PERM, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, _NUM_PERM, dtype=np.uint64)
        self.buckets: dict[bytes, int] = {}
        self.signatures: dict[int, Any] = {}

    def signature(self, text: str) -> Any:
        words = _WORD.findall(text.lower())
        k = 3 if len(words) >= 3 else 1
        shingles = {" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))}
        x = self.np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=self.np.uint64)
        # multiply-add-shift hashing: uint64 arithmetic wraps, which is the modulus we want
        return ((self.a[:, None] * x[None, :] + self.b[:, None]) >> self.np.uint64(32)).min(1)

    def add(self, key: int, text: str) -> int | None:
        """Index row ``key``; return the key of an earlier near-duplicate row, if any."""
        sig = self.signature(text)
        rows = _NUM_PERM // _BANDS
        match = None
        keys = [bytes([band]) + sig[band * rows:(band + 1) * rows].tobytes()
                for band in range(_BANDS)]
        for band_key in keys:
            other = self.buckets.get(band_key)
            if other is not None and (self.np.count_nonzero(self.signatures[other] == sig)
                                      >= NEAR_DUPLICATE_SIMILARITY * _NUM_PERM):
                match = other
                break
        self.signatures[key] = sig
        for band_key in keys:
            self.buckets.setdefault(band_key, key)
        return match


def dataset_stats(train: Sequence[Example], val: Sequence[Example] = (),
                  rendered: Sequence[Rendered] | None = None, *, train_source: str = "",
                  val_source: str = "") -> DatasetStats:
    """Check content and summarise lengths; O(n) in rows.

    Finds exact duplicates (same text after lower-casing and collapsing whitespace), near
    duplicates (MinHash), refusal boilerplate, empty or one-word answers and validation rows
    that repeat training rows. ``rendered`` (of the training rows) adds token statistics and
    the EOS checks of :func:`rendering_problems`.
    """
    findings: list[Problem] = []
    counts = dict.fromkeys(("exact", "near", "refusal", "short", "leak"), 0)
    seen: dict[str, int] = {}
    near = _NearIndex()
    rows = [(e, False) for e in train] + [(e, True) for e in val]
    for index, (example, is_val) in enumerate(rows):
        source = val_source if is_val else train_source

        def add(kind: str, field_name: str, message: str, fix: str) -> None:
            counts[kind] += 1
            findings.append(Problem(source, example.line, field_name, message, fix, "warning"))

        answers = example.answers()
        if any(REFUSAL_PATTERNS.search(a) for a in answers):
            add("refusal", "content", "refusal or AI-disclaimer boilerplate in the answer.",
                "Rewrite or remove the row; the model will learn to refuse.")
        short = next((a for a in answers if len(a.split()) <= 1), None)
        if short is not None:
            add("short", "content", f"empty or one-word answer {short.strip()[:40]!r}.",
                "Check the answer is complete.")
        text = example.dedupe_text()
        digest = hashlib.sha1(_normalised(text).encode()).hexdigest()
        first = seen.setdefault(digest, index)
        match, exact = (first, True) if first != index else (near.add(index, text), False)
        if match is None:
            continue
        other, other_is_val = rows[match][0], rows[match][1]
        kind = "exact" if exact else "near"
        what = "exact duplicate" if exact else "near duplicate"
        if is_val and not other_is_val:
            add("leak", "leakage", f"validation row is an {what} of training row "
                f"{other.line}; validation loss will look better than it is.",
                "Remove it from one of the splits.")
        else:
            add(kind, kind + "_duplicate", f"{what} of row {other.line}.",
                "Remove the copy; duplicates are learned by heart.")
    tokens = None
    if rendered is not None:
        tokens = token_stats(rendered)
        findings.extend(rendering_problems(rendered, train_source))
    return DatasetStats(len(train), len(val), tokens, counts["exact"], counts["near"],
                        counts["refusal"], counts["short"], counts["leak"], findings)
