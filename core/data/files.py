"""Reading dataset files: whole-file checks when opening, then rows read incrementally.

:func:`open_dataset` reads only the first few KB (binary, UTF-16, gzip and empty files are
refused there); :class:`DatasetFile` then yields :class:`RawRow` records lazily from JSONL,
JSON, CSV/TSV, Parquet or a ``save_to_disk`` directory. Lines are read with a size limit, so a
file without line breaks never fills memory. ``pyarrow`` and ``datasets`` are imported only
when a file needs them.
"""

from __future__ import annotations

import csv
import errno
import itertools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from core.data.formats import DETECT_ROWS, detect_format
from core.data.problems import JSONL_SUFFIXES, DataError, Problem
from core.data.sources import resolve_data_path

TEXT_SUFFIXES = (*JSONL_SUFFIXES, ".json", ".csv", ".tsv")
"""Extensions of text formats, which must be UTF-8 (a BOM is accepted)."""
SUPPORTED = "JSONL, JSON, CSV, TSV, Parquet, or a directory saved with datasets' save_to_disk"
"""The accepted inputs, as named in error messages."""
MAX_LINE_BYTES = 64 * 2**20
"""Longest JSONL or CSV line read; a longer one is skipped in chunks, never held in memory."""
MAX_JSON_BYTES = 2**30
"""Largest JSON document (read whole, at several times its size in memory); use JSONL beyond."""


class RawRow(NamedTuple):
    """One row as read from disk: parsed ``data``, or ``problem`` when it could not be parsed.

    ``offset`` is the byte offset where a JSONL line starts (``None`` for other formats); give it
    back to :func:`iter_jsonl_rows` to resume reading there without scanning.
    """

    line: int
    data: Any
    problem: Problem | None = None
    offset: int | None = None


def open_dataset(path_or_ref: str | Path) -> "DatasetFile":
    """Check a dataset file or directory and open it for incremental reading.

    Only the first few KB are read here; rows are read on demand. Raises :class:`DataError`
    for a missing path, a directory without a saved dataset, an unreadable, empty, binary or
    UTF-16 file, or an unknown extension.
    """
    path = resolve_data_path(path_or_ref)
    source = str(path)
    mode = _file_mode(path, str(path_or_ref).startswith("sample:"))
    if stat.S_ISDIR(mode):
        return DatasetFile(path, _saved_dataset_kind(path))
    suffix = path.suffix.lower()
    compressed = {".gz": "gunzip -k", ".zst": "zstd -d", ".bz2": "bunzip2 -k", ".xz": "unxz -k",
                  ".zip": "unzip"}.get(suffix)
    if compressed:
        raise DataError(f"{source} is a compressed file; tunetop reads uncompressed data.",
                        f"Decompress it first: {compressed} {path}, then give the file it "
                        "writes.", source)
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
        _check_text_head(path, head)
    return DatasetFile(path, kind)


_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _file_mode(path: Path, sample: bool) -> int:
    """The ``st_mode`` of a regular file or a directory; anything else raises, before any
    ``open()``: opening a named pipe blocks until a writer comes, and a device never ends."""
    source = str(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{source} is a symbolic link loop (a link that leads back to "
                            "itself).", "Point the link at the real file: ls -l shows where "
                            "it leads.", source) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            target = os.readlink(path) if path.is_symlink() else None
            hint = ("The sample is missing from the installation; reinstall tunetop."
                    if sample else
                    f"It is a link to {target}, which is missing: fix the link." if target
                    else "Check the path, or use sample:support-tickets to try the bundled data.")
            raise DataError(f"{source} does not exist.", hint, source) from None
        raise DataError(f"{source} cannot be read: {exc.strerror or exc}.",
                        "Check the permissions of the file and of its folders.", source) from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return mode
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")
    raise DataError(f"{source} is {kind}, not a regular file.",
                    f"Save the data to a file first (e.g. cat {source} > data.jsonl) and give "
                    "that file.", source)


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


COMPRESSED = (
    ((b"\x1f\x8b",), "gzip", "gunzip -c"),
    ((b"\x28\xb5\x2f\xfd",), "zstd", "zstd -dc"),
    ((b"\xfd7zXZ\x00",), "xz", "xz -dc"),
    ((b"PK\x03\x04", b"PK\x05\x06"), "zip", "unzip -p"),
    (tuple(b"BZh" + bytes([d]) + b"1AY&SY" for d in b"123456789"), "bzip2", "bunzip2 -c"),
)
"""Compressed formats recognised by their first bytes: magic numbers, name, command that
writes the content to stdout."""


def _check_text_head(path: Path, head: bytes) -> None:
    """Reject binary, compressed, UTF-16/32 and CR-only files from their first bytes, before
    any row is read."""
    source = str(path)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{source} is UTF-16 (or UTF-32) encoded, not UTF-8.",
                        "Re-save the file as UTF-8.", source)
    for magic, name, command in COMPRESSED:
        if head.startswith(magic):
            plain = path.with_name(f"{path.stem}.decompressed{path.suffix}")
            reads = f"{command} {path}" if name == "zip" else f"{command} < {path}"
            raise DataError(f"{source} is {name}-compressed, though its name does not say so.",
                            f"Decompress it first: {reads} > {plain}", source)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{source} looks like a binary file (NUL byte at offset {nul}), "
                        "not text.", f"Give a UTF-8 text file ({SUPPORTED}).", source)
    if b"\n" not in head and b"\r" in head.rstrip(b"\r\t "):
        raise DataError(f"{source} ends its lines with a bare carriage return (CR, old Mac "
                        "style): every row would be read as one line.",
                        f"Convert the line endings: tr '\\r' '\\n' < {path} > "
                        f"{path.with_name(f'{path.stem}.lf{path.suffix}')}", source)


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


_CONTROL_FIX = ("Escape control characters inside strings (a tab as \\t, a line break as "
                "\\n) and remove NUL bytes (tr -d '\\000').")


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
                control = exc.msg.startswith("Invalid control character")
                fix = ("Complete the row or remove the line; the file may have been cut short."
                       if cut else _CONTROL_FIX if control else
                       "Write each row as one complete JSON object on its own line.")
                # a string cut by the end of the line meets the line break as a control char
                what = ("Unterminated string" if control and cut else
                        f"a raw control character {text[exc.pos]!r}" if control
                        else exc.msg.removesuffix(" at"))
                problem = Problem(
                    source, line, "(json)", f"malformed JSON: {what} at column {column}"
                    f"{' (the line ends before the row is complete)' if cut else ''}.", fix)
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
            self._check_header(reader.fieldnames or [])
            for row_no, row in enumerate(reader, 1):
                missing = [str(k) for k, v in row.items() if v is None]  # DictReader's restval
                nul = [str(k) for k, v in row.items() if isinstance(v, str) and "\x00" in v]
                problem = None
                if missing:
                    problem = Problem(
                        self.source, row_no, "(row)", "the row has fewer cells than the header: "
                        f"no {', '.join(map(repr, missing))}.",
                        "Add the missing cells (an empty cell still needs its delimiter), or "
                        "quote cells that contain line breaks.")
                elif nul:  # as JSON Lines, where a raw NUL is malformed JSON
                    problem = Problem(
                        self.source, row_no, nul[0], "a NUL byte (\\x00) in the cell: it is "
                        "not text.", f"Remove NUL bytes from the file: tr -d '\\000' < "
                        f"{self.path} > {self.path.with_stem(self.path.stem + '.clean')}")
                yield RawRow(row_no, row, problem)
        except csv.Error as exc:
            raise DataError(f"{self.source} is not valid CSV near row {row_no + 1}: {exc}.",
                            "Check the quoting there.", self.source, row_no + 1) from None

    def _check_header(self, names: list[str]) -> None:
        """Refuse a header that names a column twice: a CSV reader keeps only the last cell."""
        seen: dict[str, list[int]] = {}
        for number, name in enumerate(names, 1):
            if name:
                seen.setdefault(name, []).append(number)
        for name, numbers in seen.items():
            if len(numbers) > 1:
                where = ", ".join(map(str, numbers))
                raise DataError(f"{self.source} names the column '{name}' {len(numbers)} times "
                                f"in its header (columns {where}); only one of them would be "
                                "read.", f"Rename or remove the extra '{name}' columns, e.g. "
                                f"{name}_2, so that each column has its own name.", self.source,
                                1)

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

