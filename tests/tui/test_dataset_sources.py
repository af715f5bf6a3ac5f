"""The dataset screen on the data users already have: every row shape and source opened with
no row lost, a mix of two sources (each source's share and checks, rows from both, problems
that jump to their row), tool-calling rows (the calls and the fallback rendering shown), a
preference dataset refused with what to do, and the sources on the Config screen.

Real keystrokes through the pilot, the bundled tokenizer, the real reader process.
"""

from __future__ import annotations

import pytest
from dataset_fixtures import (
    alpaca_history_rows,
    card_folder,
    general_rows,
    glaive_rows,
    openai_tool_rows,
    preference_rows,
    registry_dir,
    v1_parts_rows,
    write_json,
    write_jsonl,
)
from test_dataset_screen import dataset_app, detail_text, settle, stats_text, text_of
from textual.widgets import OptionList, Static, TabbedContent

from core.config import SourceConfig
from core.data import dataset_report, load_data

def mix_app(tmp_path, tokenizer):
    """The app on a config mixing tool-calling rows (line 1 not an object) with general rows,
    one part to two, with a short system prompt of its own."""
    tools = write_jsonl(tmp_path / "tools.jsonl", ["{broken"] + openai_tool_rows(6))
    general = write_json(tmp_path / "general.json", general_rows(11) + [general_rows(1)[0]])
    sources = [SourceConfig(str(tools), weight=1), SourceConfig(str(general), weight=2)]
    app = dataset_app(tmp_path / "unused.jsonl", lambda ref: tokenizer, sources=sources,
                      default_system_prompt="Be brief.", max_length=1024)
    return app, sources


async def test_a_mix_shows_each_sources_share_and_checks(tmp_path, tokenizer):
    app, _ = mix_app(tmp_path, tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        store = screen.store
        assert store is not None and len(store) == 19  # 6 + 12 used, 1 dropped
        assert [r.used for r in store.sources] == [6, 12]
        assert "2 sources (data.sources)" in screen.query_one("#dataset-path").value
        stats = " ".join((await stats_text(pilot)).split())  # long lines wrap
        assert "18 rows loaded · 1 dropped" in stats
        assert "Source 1" in stats and "7 read, 6 kept, 1 dropped; 6 used (33% of the mix; " \
                                       "weight 1)" in stats
        assert "12 used (67% of the mix; weight 2)" in stats
        assert "'Be brief.' (data.default_system_prompt)" in stats
        assert "fallback: <tools> in the system turn" in stats
        # the screen splits and checks the rows training reads: the same counts
        config = app.config
        report = dataset_report(load_data(config.data, config.optim.seed).examples,
                                config.data.validation_fraction, config.optim.seed).stats
        checks = screen.loader.summary.checks
        assert (checks.exact_duplicates, checks.near_duplicates, checks.leaked,
                checks.short_answers) == (report.exact_duplicates, report.near_duplicates,
                                          report.leaked, report.short_answers)
        # and counts them per source: general.json repeats its first row
        findings = screen.loader.summary.source_findings
        assert len(findings) == 2 and findings[1].get("duplicate", 0) + findings[1].get(
            "leakage", 0) >= 1
        assert stats.count("checks:") == 2


async def test_mix_rows_name_their_source_and_problems_jump_to_them(tmp_path, tokenizer):
    app, sources = mix_app(tmp_path, tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        table = screen.table
        await pilot.press("end")
        await settle(pilot)
        detail = detail_text(screen)
        assert "Row 19" in detail and f"from {sources[1].path} row 12" in " ".join(detail.split())
        screen.query_one("#panes", TabbedContent).active = "pane-problems"
        await pilot.pause()
        problems = screen.query_one("#problems", OptionList)
        first = str(problems.get_option_at_index(0).prompt)
        assert first.startswith("tools.jsonl line      1 ✗ (row): the row is a str")
        problems.focus()
        problems.highlighted = 0
        await pilot.press("enter")
        await pilot.pause()
        assert table.has_focus and table.current_row == 0


async def test_tool_calls_show_in_the_row_and_in_the_model_input(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "tools.jsonl", openai_tool_rows(3))
    app = dataset_app(path, lambda ref: tokenizer, max_length=1024)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert "→ get_weather(" in screen.table.render_line(1).text  # the call, not a blank
        await pilot.press("down", "down")
        await settle(pilot)
        detail = detail_text(screen)
        assert "tools: get_weather" in detail
        assert '→ get_weather({"city": "Oslo"})' in detail and "tool\n" in detail
        assert "<tool_call>" in detail and "<tool_response>" in detail
        assert "0 dropped" in await stats_text(pilot)


async def test_a_preference_dataset_says_what_to_do(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    app = dataset_app(path, lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        error = text_of(screen.query_one("#dataset-error", Static))
        assert "is a preference dataset" in error and "data.format: chosen" in error
        app.config.data.format = "chosen"
        screen.on_screen_resume()  # as after changing data.format on the Config screen
        screen = await settle(pilot)
        assert screen.store is not None and len(screen.store) == 3


SHAPE_FILES = {
    "sharegpt function_call": (lambda d: write_json(d / "glaive.json", glaive_rows()), {}, 5),
    "llama-factory v1 parts": (lambda d: write_jsonl(d / "v1.jsonl", v1_parts_rows()), {}, 3),
    "alpaca history": (lambda d: write_json(d / "alpaca.json", alpaca_history_rows()), {}, 3),
    "registry entry": (registry_dir, {"dataset": "glaive_toolcall"}, 5),
    "load_dataset folder": (card_folder, {"split": "test"}, 2),
}
"""Per shape (the OpenAI tool calls and the mix have tests of their own): a writer, the
config's data fields besides the path, and the rows."""


@pytest.mark.parametrize("name", SHAPE_FILES)
async def test_every_shape_opens_with_no_row_lost(tmp_path, tokenizer, name):
    write, fields, rows = SHAPE_FILES[name]
    app = dataset_app(write(tmp_path), lambda ref: tokenizer, max_length=1024, **fields)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert screen.store is not None and len(screen.store) == rows
        assert screen.store.dropped == 0 and not screen.store.problems
        assert screen.loader.summary.lengths.truncated == 0
        stats = " ".join((await stats_text(pilot)).split())
        assert f"{rows} row{'s' if rows > 1 else ''} loaded · 0 dropped" in stats


async def test_the_config_screen_shows_the_sources_read_only(tmp_path, tokenizer):
    from test_hyperparams import open_screen

    app, sources = mix_app(tmp_path, tokenizer)
    app.config.data.sources[1].weight = -1
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_screen(app, pilot)
        field = screen.query_one("#field-data-sources")
        assert isinstance(field, Static) and not field.can_focus
        shown = text_of(field)
        assert f"{sources[0].path} (weight 1)" in shown and "(weight -1)" in shown
        error = text_of(field.parent.query_one(".field-error", Static))
        assert "[1].weight: -1 must be a positive number" in error


async def test_text_chunking_is_shown_as_chunks_not_cuts(tmp_path, tokenizer):
    long = " ".join(f"word{i}" for i in range(300))
    path = write_jsonl(tmp_path / "book.jsonl", [{"text": long}, {"text": "A short line."}])
    app = dataset_app(path, lambda ref: tokenizer, max_length=64, text_chunking=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert "text rows become chunks of 64 (data.text_chunking)" in " ".join(
            (await stats_text(pilot)).split())
        screen.query_one("#panes", TabbedContent).active = "pane-row"
        await pilot.pause()
        detail = detail_text(screen)
        assert "Trained as" in detail and "rows of at most 64 tokens" in detail
        assert "cuts here" not in detail
