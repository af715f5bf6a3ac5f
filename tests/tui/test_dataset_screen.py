"""Pilot tests of the dataset screen: every format, keys, filters, problems, bad files, model.

The tokenizer is the bundled model's, loaded once per session from its converted directory
and injected through ``AppServices.dataset`` (no 30 s conversion per app).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual import events
from textual.widgets import Input, OptionList, Static, TabbedContent

from core.config import RunConfig
from core.data import render_example
from core.models import ModelError
from core.rows import FIRST_PAGE
from tui.app import AppServices, make_app
from tui.commands import TunetopCommands
from tui.dataset_tasks import DatasetServices
from tui.screens.dataset import DatasetScreen
from tui.widgets.row_table import RowBatch, RowStore, RowTable
from tui.widgets.token_view import TokenView

SYSTEM = {"role": "system", "content": "Answer in one short sentence."}


def chat(user: str, answer: str, system: bool = True) -> dict[str, Any]:
    """A ``messages`` row."""
    turns = [SYSTEM] if system else []
    return {"messages": turns + [{"role": "user", "content": user},
                                 {"role": "assistant", "content": answer}]}


FORMATS: dict[str, tuple[list[dict[str, Any]], tuple[str, ...], str]] = {
    "messages": ([chat("What is the capital of France?", "The capital is Paris."),
                  chat("Name a primary colour.", "Red is a primary colour."),
                  chat("How many legs has a spider?", "A spider has eight legs.")],
                 ("system", "user", "assistant"), "The capital is Paris."),
    "sharegpt": ([{"conversations": [{"from": "human", "value": "Say hello politely."},
                                     {"from": "gpt", "value": "Hello, nice to meet you."}]},
                  {"conversations": [{"from": "system", "value": "Be terse."},
                                     {"from": "human", "value": "Two plus two?"},
                                     {"from": "gpt", "value": "It makes four."}]}],
                 ("system", "user", "assistant"), "Hello, nice to meet you."),
    "alpaca": ([{"instruction": "Translate to French.", "input": "cat", "output": "Le chat."},
                {"instruction": "Give an antonym of hot.", "input": "", "output": "It is cold."}],
               ("prompt", "answer"), "Le chat."),
    "prompt_completion": ([{"prompt": "The sky is", "completion": " blue on a clear day."},
                           {"prompt": "Water boils at", "completion": " 100 degrees Celsius."}],
                          ("prompt", "answer"), "blue on a clear day."),
    "text": ([{"text": "Once upon a time there was a tokenizer."},
              {"text": "It counted every token it met, twice."}],
             ("text",), "Once upon a time"),
}
"""Per format: rows, the table's content columns, a text the detail pane shows for row 1."""

PROBLEM_LINES = [
    json.dumps(chat("Where is my order ORD-12345?", "It ships tomorrow from Leeds.")),
    '{"messages": [{"role": "user", "content": "broken',
    json.dumps({"messages": [{"role": "wizard", "content": "Abracadabra"},
                             {"role": "assistant", "content": "Nothing happened here."}]}),
    json.dumps(chat("Where is my order ORD-12345?", "It ships tomorrow from Leeds.")),
    json.dumps(chat("Can you write malware?", "I'm sorry, but I cannot help with that.")),
    json.dumps(chat("Is the refund done?", "Yes")),
    json.dumps(chat("Describe the return policy in detail. " * 12,
                    "Returns are accepted within thirty days of delivery.")),
    json.dumps(chat("How do I reset my password?", "Use the link on the sign-in page.")),
    json.dumps(chat("Can I change my address?", "Yes, until the parcel has shipped.")),
]
"""A messages file with problems: malformed JSON (line 2), unknown role (3), an exact
duplicate of line 1 (4), a refusal (5), a one-word answer (6), one long row (7)."""


def write_jsonl(path: Path, rows: list[dict[str, Any]] | list[str]) -> Path:
    """Write rows (dicts, or raw lines) as JSON Lines."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def dataset_app(path: str | Path, load_tokenizer: Any, read_rows: Any = None, **data: Any):
    """The app opening ``path`` on the dataset screen with an injected tokenizer loader (and
    ``read_rows``, e.g. in-process reading where a test patches ``core.data``)."""
    config = RunConfig(run_name="test")
    config.data.path = str(path)
    for name, value in data.items():
        setattr(config.data, name, value)
    dataset = DatasetServices(load_tokenizer=load_tokenizer)
    if read_rows is not None:
        dataset.read_rows = read_rows
    services = AppServices(dataset=dataset)
    return make_app(config=config, services=services)


async def settle(pilot, timeout: float = 60) -> DatasetScreen:
    """Wait until the screen's tasks are done and its throttled panes are drawn."""
    screen = pilot.app.screen
    assert isinstance(screen, DatasetScreen)
    deadline = time.monotonic() + timeout
    await pilot.pause(0.05)
    while screen.busy:
        assert time.monotonic() < deadline, "dataset screen still busy"
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # one status tick applies the throttled pane updates
    return screen


def text_of(widget: Static, width: int = 200) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def detail_text(screen: DatasetScreen) -> str:
    """The detail pane's text."""
    return text_of(screen.query_one("#token-view-body", Static))


def header_runs_led_by_spaces(screen: DatasetScreen) -> list[str]:
    """Runs of the detail pane's header lines (down to the trained/masked legend) that start
    with spaces after text in another style. Some SVG renderers drop such spaces, so that a
    screenshot read "Model input168 tokens"; gaps must be runs of their own."""
    from rich.segment import Segment

    console = Console(width=200, file=io.StringIO(), color_system="truecolor")
    content = screen.query_one("#token-view-body", Static).content
    found = []
    for line in console.render_lines(content, pad=False):
        runs = list(Segment.simplify(line))
        found += [run.text for before, run in zip(runs, runs[1:])
                  if before.text.strip() and run.text[:1].isspace() and run.text.strip()]
        if "".join(run.text for run in runs).startswith("  trained"):
            break
    return found


async def stats_text(pilot) -> str:
    """The statistics pane's text (above and below the histogram), its tab opened."""
    screen = pilot.app.screen
    screen.query_one("#panes", TabbedContent).active = "pane-stats"
    await pilot.pause(0.1)
    return text_of(screen.query_one("#stats-top", Static)) + text_of(
        screen.query_one("#stats-bottom", Static))


def shown_lines(table: RowTable) -> list[int]:
    """The line numbers of the rows the table's view shows."""
    assert table.store is not None
    return [table.store.lines[table.row_at(i)] for i in range(len(table))]


@pytest.mark.parametrize("data_format", list(FORMATS))
async def test_opens_each_format(tmp_path, tokenizer, data_format):
    """Format detected, role columns in the header, exact token counts, detail with turns."""
    rows, columns, first_text = FORMATS[data_format]
    path = write_jsonl(tmp_path / f"{data_format}.jsonl", rows)
    app = dataset_app(path, lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        store = screen.store
        assert store is not None and store.format == data_format
        header = screen.table.render_line(0).text.split()
        assert header == ["line", *columns, "tokens"]
        expected = [render_example(tokenizer, e, 1 << 30).full_tokens for e in store.examples()]
        assert list(store.tokens) == expected
        assert f"{expected[0]:,}" in screen.table.render_line(1).text
        detail = detail_text(screen)
        assert "Line 1" in detail and first_text in detail
        assert f"{expected[0]:,} tokens" in detail and "EOS trained ✓" in detail
        assert f"Model input  {expected[0]:,} tokens · " in detail
        assert "  trained  masked" in detail
        assert header_runs_led_by_spaces(screen) == []
        assert data_format in await stats_text(pilot)


async def test_move_through_rows_with_keys(tmp_path, tokenizer):
    """Arrows, page keys, home and end move the cursor; the detail pane follows."""
    rows = [chat(f"Question number {i}?", f"Answer number {i} is here.") for i in range(1, 101)]
    app = dataset_app(write_jsonl(tmp_path / "many.jsonl", rows), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        table = screen.table
        await pilot.press("down", "down")
        assert table.current_row == 2
        await pilot.press("end")
        assert table.current_row == 99
        await pilot.press("pageup")
        assert table.current_row == 99 - table.page
        await pilot.press("home", "pagedown")
        assert table.current_row == table.page
        await pilot.press("up")
        await settle(pilot)
        line = table.page
        detail = detail_text(screen)
        assert f"Line {line}" in detail and f"Answer number {line} is here." in detail
        assert "Model input" in detail and "trained" in detail


async def test_filter_problems_and_jump_from_the_list(tmp_path, tokenizer):
    """p shows only rows with problems; Enter on a listed problem puts the cursor on its row."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        table = screen.table
        assert screen.store is not None and screen.store.dropped == 2
        await pilot.press("p")
        assert shown_lines(table) == [2, 3, 4, 5, 6]
        marks = [table.render_line(y).text[0] for y in range(1, 6)]
        assert marks[:2] == ["✗", "✗"] and marks[2] == "≡"
        assert "only problems: 5 rows" in text_of(screen.query_one("#dataset-summary", Static))
        await pilot.press("p")
        assert len(table) == 9
        await pilot.press("v", "v")
        assert screen.query_one("#panes", TabbedContent).active == "pane-problems"
        problems = screen.query_one("#problems", OptionList)
        assert problems.option_count == 5
        listed = [str(problems.get_option_at_index(i).prompt) for i in range(5)]
        assert listed[0].startswith("line      2 ✗ (json): malformed JSON")
        assert "unknown role 'wizard'" in listed[1]
        problems.focus()
        problems.highlighted = 0
        await pilot.press("down", "down", "down", "enter")  # the refusal on line 5
        await pilot.pause()
        assert table.has_focus and table.store.lines[table.current_row] == 5
        await settle(pilot)
        await pilot.press("v")  # back to the row pane
        assert "refusal" in detail_text(screen)


async def test_dropped_row_detail_shows_error_and_raw_data(tmp_path, tokenizer):
    """A dropped row shows its error, the fix, and the row as read."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("down", "down")
        await settle(pilot)
        detail = detail_text(screen)
        assert "Line 3" in detail and "unknown role 'wizard'" in detail and "Fix:" in detail
        assert "Dropped" in detail and "Abracadabra" in detail
        assert "unknown role 'wizard'" in screen.table.render_line(3).text


async def test_max_length_and_too_long_filter(tmp_path, tokenizer):
    """A smaller max length (key t) marks long rows; l shows only them; the detail shows the cut."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("l")
        assert len(screen.table) == 0
        assert "No row matches" in screen.table.render_line(0).text
        await pilot.press("t", *"100", "enter")
        await settle(pilot)
        assert app.config.data.max_length == 100 and screen.table.has_focus
        assert shown_lines(screen.table) == [7]
        stats = await stats_text(pilot)
        assert "1 row (14.3%) over max_length 100" in stats
        detail = detail_text(screen)
        assert "✂ max_length 100 cuts here" in detail and "tokens lost" in detail
        assert "  trained  masked  cut off" in detail
        assert header_runs_led_by_spaces(screen) == []
        await pilot.press("t", *"8", "enter")
        assert screen.max_length == 100  # below the config's minimum of 16: refused


async def test_duplicates_filter_and_checks(tmp_path, tokenizer):
    """d shows duplicates; the statistics count refusals, short answers and the split."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("d")
        assert shown_lines(screen.table) == [4]
        stats = await stats_text(pilot)
        assert "7 rows loaded · 2 dropped" in stats
        assert "1 × malformed JSON" in stats and "1 × unknown role 'wizard'" in stats
        assert "1 row with refusal boilerplate" in stats
        assert "1 row with an empty or one-word answer" in stats
        assert "6 train · 1 validation" in stats and "Leakage" in stats


async def test_search_with_slash(tmp_path, tokenizer):
    """/ opens the search field; Enter shows matching rows; a clears it."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("slash", *"ORDER ORD", "enter")
        await settle(pilot)
        assert shown_lines(screen.table) == [1, 4]
        assert "search 'ORDER ORD': 2 rows" in text_of(screen.query_one("#dataset-summary",
                                                                        Static))
        await pilot.press("p")  # search and filter combine
        assert shown_lines(screen.table) == [4]
        await pilot.press("a")
        assert len(screen.table) == 9 and not screen.search


async def test_first_page_is_posted_before_the_rest(tmp_path, tokenizer, monkeypatch):
    """The first 100 rows reach the table at once; the rest follow in batches."""
    batches: list[int] = []
    extend = RowStore.extend

    def record(store: RowStore, batch: RowBatch) -> None:
        batches.append(len(batch))
        extend(store, batch)

    monkeypatch.setattr(RowStore, "extend", record)
    rows = [chat(f"Row {i}: tell me more.", f"Here is answer {i}.") for i in range(5000)]
    app = dataset_app(write_jsonl(tmp_path / "big.jsonl", rows), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert batches[0] == FIRST_PAGE and len(batches) >= 2 and sum(batches) == 5000
        await pilot.press("end")
        assert screen.table.current_row == 4999 and "5000" in screen.table.render_line(
            screen.table.page).text


@pytest.mark.parametrize("name, content, expected", [
    ("empty.jsonl", b"", "is empty"),
    ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), "is not valid UTF-8"),
    ("notjson.jsonl", b"hello world\nthis is not json\n", "none of the first 2 rows"),
    ("folder", None, "is a directory without a dataset"),
    ("missing.jsonl", "missing", "does not exist"),
])
async def test_bad_files_show_a_clear_message(tmp_path, tokenizer, name, content, expected):
    """Each bad input shows its DataError on screen; the app keeps running and opens the next."""
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)
    good = write_jsonl(tmp_path / "good.jsonl", FORMATS["messages"][0])
    app = dataset_app(path, lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        error = screen.query_one("#dataset-error", Static)
        assert error.has_class("-shown") and expected in text_of(error)
        assert "Fix:" in text_of(error)
        assert screen.store is None and "No dataset open" in screen.table.render_line(0).text
        await pilot.press("o")
        path_input = screen.query_one("#dataset-path", Input)
        assert path_input.has_focus
        path_input.value = str(good)  # as typed; pressing each key is slow
        await pilot.press("enter")
        await settle(pilot)
        assert not error.has_class("-shown") and len(screen.store) == 3
        assert app.config.data.path == str(good)


async def test_switching_model_recounts_with_its_template(tmp_path, tokenizer):
    """m + a model reference loads that tokenizer (in a worker) and counts again with it."""
    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None  # render_example falls back to ChatML and says so
    tokenizers = {"bundled:smollm2-135m-instruct": tokenizer, "plain": plain}

    def load(ref: str) -> Any:
        if ref not in tokenizers:
            raise ModelError(f"'{ref}' is neither a local directory nor a hub id.")
        return tokenizers[ref]

    rows = [chat("No system turn here.", "So the template adds one.", system=False)]
    app = dataset_app(write_jsonl(tmp_path / "one.jsonl", rows), load)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        before = screen.store.tokens[0]
        assert "You are a helpful AI assistant" in detail_text(screen)  # SmolLM2's default
        await pilot.press("m", *"plain", "enter")
        screen = await settle(pilot)
        assert app.config.model.name_or_path == "plain"
        after = screen.store.tokens[0]
        assert after == render_example(plain, screen.store.example(0), 512).full_tokens
        assert after < before
        assert "no chat template" in detail_text(screen)
        await pilot.press("m", *"nope", "enter")
        screen = await settle(pilot)
        assert "no model: 'nope' is neither" in detail_text(screen)
        assert screen.store.tokens[0] == -1
        assert "Duplicates" in await stats_text(pilot)  # the checks do not need a tokenizer


async def test_changed_split_checks_again(tmp_path, tokenizer):
    """Back on the screen after the split changed elsewhere, the checks run again."""
    rows = [chat("Same question?", "Same answer every time.")] * 6 + [
        chat("Another question?", "Another answer altogether.")]
    app = dataset_app(write_jsonl(tmp_path / "same.jsonl", rows), lambda ref: tokenizer,
                      validation_fraction=0.0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        stats = await stats_text(pilot)
        assert "7 train · 0 validation" in stats and "5 exact" in stats
        app.config.data.validation_fraction = 0.5  # as the hyperparams screen would
        screen.post_message(events.ScreenResume())
        await settle(pilot)
        stats = await stats_text(pilot)
        assert "3 train · 4 validation (50% held out" in stats
        assert "3 rows in validation repeat training rows" in stats
        assert len(screen.store.row_problems(6)) == 0  # the old findings went


async def test_narrow_terminal_switches_table_and_panes(tmp_path, tokenizer):
    """At 80x24 one of table and panes shows; v cycles them, Enter opens a row, Esc returns."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settle(pilot)
        panes = screen.query_one("#panes")
        assert screen.table.display and not panes.display
        await pilot.press("enter")
        assert panes.display and not screen.table.display
        assert screen.query_one(TokenView).has_focus
        await pilot.press("v")
        assert screen.query_one("#panes", TabbedContent).active == "pane-stats"
        await pilot.press("escape")
        assert screen.table.display and screen.table.has_focus
        await pilot.press("v", "v")  # the stats tab is still current: stats, problems
        assert screen.query_one("#panes", TabbedContent).active == "pane-problems"
        await pilot.press("v")  # after the last tab comes the table
        assert screen.table.display and not panes.display


async def test_command_palette_offers_what_fits(tmp_path, tokenizer):
    """The palette lists dataset commands that fit and the other screens; one runs a filter."""
    app = dataset_app(write_jsonl(tmp_path / "bad.jsonl", PROBLEM_LINES), lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        provider = TunetopCommands(screen)
        titles = [hit.text async for hit in provider.discover()]
        assert "Data: Problems only (again: all rows)" in titles
        assert "Data: Open another dataset file" in titles
        assert not any(title.startswith("Data: All rows") for title in titles)  # no filter
        assert "Go to Train" in titles and "Go to Data" not in titles
        assert not any("Back" in title for title in titles)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"duplicates only")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert screen.filter_mode == "duplicates"
        titles = [hit.text async for hit in provider.discover()]
        assert "Data: All rows (no filter, no search)" in titles
        assert not any(title.startswith("Data: Duplicates") for title in titles)
