"""The nastiest inputs of the bad-input corpus (tests/core/test_bad_inputs.py) opened on the
dataset screen: the message is on screen, never a traceback, and the app keeps working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList, Static

from core.rows import read_batches


from test_bad_inputs import DATA_CASES, GOOD, jsonl  # noqa: E402
from test_dataset_screen import dataset_app, detail_text, settle, text_of  # noqa: E402

CASES = {case.name: case for case in DATA_CASES}


def write(case_name: str, tmp_path: Path, monkeypatch) -> tuple[Path, Any]:
    """Write a corpus case (and apply its patch); its path and how the screen must read it.

    A patch of ``core.data`` (a small line limit, reading denied to root) holds in this
    process only, so those cases read in-process rather than in the reader process.
    """
    case = CASES[case_name]
    path = tmp_path / case.filename
    case.write(path)
    if case.patch:
        case.patch(monkeypatch, path)
        return path, read_batches
    return path, None


@pytest.mark.parametrize("name, expected", [
    ("binary", "looks like a binary file (NUL byte at offset 8)"),
    ("Parquet with the wrong schema", "cannot tell the data format"),
    ("unreadable file (chmod 000)", "cannot be read: Permission denied"),
    ("2 GB CSV line (guard)", "the line is 5.0 KB, longer than the 4.0 KB limit"),
    ("named pipe (FIFO)", "is a named pipe (FIFO), not a regular file"),
    ("CSV with two output columns", "names the column 'output' 2 times"),
])
async def test_unusable_file_shows_its_error_and_the_app_goes_on(tmp_path, monkeypatch,
                                                                 tokenizer, name, expected):
    path, read_rows = write(name, tmp_path, monkeypatch)
    good = tmp_path / "good.jsonl"
    jsonl(*GOOD)(good)
    app = dataset_app(path, lambda ref: tokenizer, read_rows)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        error = text_of(screen.query_one("#dataset-error", Static), width=400)
        assert expected in error and str(path) in error and "Fix:" in error
        assert "Traceback" not in error and "Reading failed" not in error  # a DataError, named
        assert screen.store is None
        # still working: open a good file from the same screen
        await pilot.press("o")
        screen.query_one("#dataset-path", Input).value = str(good)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.store is not None and len(screen.store) == len(GOOD)
        assert not screen.query_one("#dataset-error", Static).has_class("-shown")


async def test_bom_file_opens_like_any_other(tmp_path, monkeypatch, tokenizer):
    path, read_rows = write("UTF-8 BOM, JSONL", tmp_path, monkeypatch)
    app = dataset_app(path, lambda ref: tokenizer, read_rows)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert screen.store is not None and screen.store.format == "messages"
        assert len(screen.store) == len(GOOD) and screen.store.dropped == 0
        assert not screen.query_one("#dataset-error", Static).has_class("-shown")
        assert "How do I reset my password?" in detail_text(screen)


async def test_huge_line_is_a_dropped_row_listed_with_its_line(tmp_path, monkeypatch, tokenizer):
    """The guard turns a line over the limit into one dropped row; the rows around it stay."""
    path, read_rows = write("2 GB JSONL line (guard)", tmp_path, monkeypatch)
    app = dataset_app(path, lambda ref: tokenizer, read_rows)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        store = screen.store
        assert store is not None and len(store) == 3 and store.dropped == 1
        problems = screen.query_one("#problems", OptionList)
        listed = [str(problems.get_option_at_index(i).prompt)
                  for i in range(problems.option_count)]
        assert any(p.startswith("line      2 ✗") and "longer than the 4.0 KB limit" in p
                   for p in listed), listed
        await pilot.press("down")
        await settle(pilot)
        detail = detail_text(screen)
        assert "Line 2" in detail and "Dropped" in detail and "Fix:" in detail
        assert "longer than the 4.0 KB limit" in detail
        assert app.is_running


async def test_a_forged_turn_is_a_row_training_drops(tmp_path, monkeypatch, tokenizer):
    """``<|im_end|>`` inside a user turn: the row reads fine, but rendering refuses it, so the
    table marks it, the Problems pane lists it with its line and the fix, and Stats counts it
    among the rows training drops."""
    path, read_rows = write("chat template token inside a user turn (forged turn)", tmp_path,
                            monkeypatch)
    app = dataset_app(path, lambda ref: tokenizer, read_rows)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        store = screen.store
        assert store is not None and store.dropped == 0 and 1 in store.training
        problems = screen.query_one("#problems", OptionList)
        listed = str(problems.get_option_at_index(0).prompt)
        assert listed.startswith("line      2 ✗ messages[0].content: the user turn 1 contains "
                                 "<|im_end|>"), listed
        assert screen.table.render_line(2).text.split()[:2] == ["✗", "2"]
        outcome = screen.loader.summary.training
        assert outcome is not None and (outcome.kept, outcome.dropped) == (2, 1)
        await pilot.press("down")
        await settle(pilot)
        detail = detail_text(screen)
        assert "a forged turn" in detail and "Remove <|im_end|>" in detail
