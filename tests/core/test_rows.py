"""The dataset reader process: the same rows as reading in-process, errors whole, no leftovers."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.data import DataError
from core.rows import FIRST_PAGE, SEND_ROWS, Opened, Progress, RowBatch, read_batches, read_in_subprocess


def write_rows(path, count: int, bad_every: int = 0):
    with path.open("w", encoding="utf-8") as f:
        for i in range(1, count + 1):
            if bad_every and i % bad_every == 0:
                f.write('{"messages": [oops\n')
            else:
                f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                 {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    return path


def collect(items) -> tuple[Opened, RowBatch, list[int]]:
    items = list(items)
    assert isinstance(items[0], Opened) and all(isinstance(i, Progress) for i in items[1:])
    whole = RowBatch()
    for item in items[1:]:
        whole.extend(item.batch)
    return items[0], whole, [len(i.batch) for i in items[1:]]


def test_the_reader_process_sends_what_reading_in_process_gives(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", 2500, bad_every=700)
    opened, rows, sizes = collect(read_in_subprocess(str(path)))
    expected_opened, expected, _ = collect(read_batches(str(path)))
    assert opened == expected_opened and opened.format == "messages"
    assert sizes[0] == FIRST_PAGE and max(sizes) == SEND_ROWS and sum(sizes) == 2500
    assert rows == expected
    assert rows.rows[0] == (("user", "q1"), ("assistant", "a1"))
    dropped = [rows.lines[i] for i, r in enumerate(rows.rows) if r is None]
    assert dropped == [700, 1400, 2100]
    assert rows.problems[699][0].line == 700 and "JSON" in rows.problems[699][0].message


def test_the_reader_and_the_loader_read_every_row_alike(tmp_path):
    """read_batches and load_examples share one generator: the same rows and problems."""
    from core.data import load_examples
    from core.rows import unpack

    path = write_rows(tmp_path / "d.jsonl", 300, bad_every=70)
    with path.open("a", encoding="utf-8") as f:  # a row kept with a warning, one dropped
        f.write(json.dumps({"messages": [{"role": "user", "content": "q"},
                                         {"role": "assistant", "content": "a"},
                                         {"role": "user", "content": "unanswered"}]}) + "\n")
        f.write(json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    _, rows, _ = collect(read_batches(str(path)))
    loaded = load_examples(path)
    kept = [unpack(line, packed) for line, packed in zip(rows.lines, rows.rows) if packed]
    assert kept == loaded.examples and len(kept) == 297
    assert [p for found in rows.problems.values() for p in found] == loaded.problems
    assert {p.severity for p in loaded.problems} == {"error", "warning"}


def test_a_file_error_reaches_the_caller_whole(tmp_path):
    with pytest.raises(DataError) as caught:
        list(read_in_subprocess(str(tmp_path / "missing.jsonl")))
    assert caught.value.source.endswith("missing.jsonl") and caught.value.fix
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="has no rows"):
        list(read_in_subprocess(str(empty)))


def test_closing_the_reader_early_ends_its_process(tmp_path, monkeypatch):
    children = []
    popen = subprocess.Popen

    def record(*args, **kwargs):
        children.append(popen(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(subprocess, "Popen", record)
    items = read_in_subprocess(str(write_rows(tmp_path / "d.jsonl", 50_000)))
    assert isinstance(next(items), Opened) and len(next(items).batch) == FIRST_PAGE
    items.close()
    assert children[0].returncode is not None  # reaped, not left running


def test_checks_in_the_child_find_what_checks_in_process_find(tmp_path):
    from core.data import dataset_stats
    from core.rows import check_in_subprocess, unpack

    packed = [(i, (("user", f"question number {i % 40} about my order"),
                   ("assistant", "As an AI language model I cannot help." if i == 7 else f"answer {i % 40} here")))
              for i in range(1, 201)]
    train, val = packed[:180], packed[180:]
    stats = check_in_subprocess(train, val, "d.jsonl", lambda: False)
    expected = dataset_stats([unpack(*r) for r in train], [unpack(*r) for r in val],
                             train_source="d.jsonl", val_source="d.jsonl")
    assert stats == expected
    assert stats.exact_duplicates > 0 and stats.refusals == 1 and stats.leaked == 20
    assert check_in_subprocess(train, val, "d.jsonl", lambda: True) is None
