"""``tunetop inspect`` and the dataset screen agree: the same counts for the same file and
settings, and the same words for where a row is (``line`` in JSON Lines, ``row`` elsewhere)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList, TabbedContent

from core.config import DataConfig, OptimConfig
from core.data import split_examples


from test_dataset_screen import dataset_app, detail_text, settle, stats_text  # noqa: E402


def alpaca(i: int, output: str | None = None) -> dict[str, Any]:
    """A distinct Alpaca row: its own words, so that no two rows are nearly alike."""
    words = " ".join(f"w{i}x{j}" for j in range(14))
    return {"instruction": f"Explain topic {i} in a few words.", "input": "",
            "output": output or f"Topic {i} means {words}."}


def alpaca_with_duplicates(path: Path) -> Path:
    """A JSON array (indented: a row spans several text lines) of 60 distinct rows, 12 exact
    copies, a near copy, a refusal, a one-word answer and a row without ``output``."""
    rows = [alpaca(i) for i in range(60)]
    rows += [dict(rows[i]) for i in range(0, 60, 5)]
    near = alpaca(7)
    near["output"] = near["output"].replace("w7x13", "w7x99")
    rows += [near, alpaca(100, "As an AI language model, I cannot help with that."),
             alpaca(101, "Yes"), {"instruction": "No answer here."}]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def inspect_counts(out: str) -> dict[str, int]:
    """The counts ``tunetop inspect`` printed."""
    checks = re.search(r"checks +(\d+) exact duplicates, (\d+) near duplicates, (\d+) refusals, "
                       r"(\d+) empty/one-word answers", out)
    split = re.search(r"split +(\d+) train, (\d+) validation .*repeating training rows: (\d+)",
                      out)
    problems = re.search(r"^(\d+) problem\(s\):$", out, re.MULTILINE)
    rendering = re.search(r"^(\d+) rendering problem\(s\) with ", out, re.MULTILINE)
    assert checks and split and problems, out
    counts = dict(zip(("exact", "near", "refusals", "short", "train", "val", "leaked"),
                      map(int, checks.groups() + split.groups())))
    counts["problems"] = int(problems.group(1)) + (int(rendering.group(1)) if rendering else 0)
    return counts


async def test_inspect_and_the_screen_report_the_same_counts(tmp_path, tokenizer, capsys,
                                                             monkeypatch):
    """Duplicates across the training/validation split are leakage in both, not duplicates in
    one and leakage in the other (the CLI once checked the whole file, the screen the split)."""
    import core.models
    from tui.cli import main

    path = alpaca_with_duplicates(tmp_path / "alpaca.json")
    monkeypatch.setattr(core.models, "load_tokenizer", lambda ref, *args: tokenizer)
    assert main(["inspect", str(path)]) == 0
    cli = inspect_counts(capsys.readouterr().out)
    # the fixture puts copies on both sides of the split that training makes
    train, val = split_examples(range(75), DataConfig().validation_fraction, OptimConfig().seed)
    copies = {60 + k: 5 * k for k in range(12)}
    assert any((c in val) != (o in val) for c, o in copies.items())
    assert cli["leaked"] >= 1 and cli["exact"] + cli["leaked"] >= 12

    app = dataset_app(path, lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        summary, store = screen.loader.summary, screen.store
        checks = summary.checks
        assert checks is not None and store is not None
        label = str(screen.query_one("#panes", TabbedContent).get_tab("pane-problems").label)
        shown = int(re.search(r"Problems \((\d+)\)", label).group(1))
        screen_counts = {
            "exact": checks.exact_duplicates, "near": checks.near_duplicates,
            "refusals": checks.refusals, "short": checks.short_answers,
            "train": summary.train_rows, "val": summary.val_rows, "leaked": checks.leaked,
            "problems": shown,
        }
        assert screen_counts == cli
        assert (len(train), len(val)) == (cli["train"], cli["val"])
        stats = await stats_text(pilot)
        assert f"{cli['exact']} exact · {cli['near']} near" in stats


@pytest.mark.parametrize("suffix, where, head", [
    (".json", "row 3", "Row 3"),  # the row starts at text line 12 of the array
    (".jsonl", "line 4", "Line 4  ·  row 3"),  # a blank line comes before the third row
])
async def test_rows_of_a_json_array_are_rows_and_jsonl_lines_are_lines(tmp_path, tokenizer,
                                                                       suffix, where, head):
    """The table, the problems list and the detail pane say where a row is as the problem
    itself does: the text line in JSON Lines, the row elsewhere (never a row as a line)."""
    rows = [alpaca(1), alpaca(2), {"instruction": "Cut short."}, alpaca(4)]
    path = tmp_path / f"rows{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    else:
        lines = [json.dumps(r) for r in rows]
        path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n", encoding="utf-8")
    unit, number = where.split()
    app = dataset_app(path, lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert screen.store is not None
        (problem,) = screen.store.problems[2]
        assert str(problem).startswith(f"{path}, {where} (output): wrong field names")
        assert screen.table.render_line(0).text.split()[0] == unit
        listed = screen.query_one("#problems", OptionList).get_option_at_index(0).prompt
        assert str(listed).startswith(f"{unit:<4} {number:>6} ✗ output:")
        await pilot.press("down", "down")
        await settle(pilot)
        assert detail_text(screen).splitlines()[0].strip() == head


async def test_max_length_128_drops_the_same_rows_in_inspect_estimate_the_engine_and_the_screen(
        tmp_path, tokenizer, tiny_model_dir, capsys, monkeypatch):
    """At max_length 128 the prompt of some sample rows fills the budget: ``tunetop inspect``,
    ``tunetop estimate``, the engine's log and the dataset screen (after its max length is
    changed from 512 with the keyboard) all count the same rows dropped, because
    ``core.data.training_outcome`` computes them for all four."""
    from helpers import tiny_run_config

    from core.engine import Engine
    from core.events import MessageLogged
    from tui.cli import main

    model = str(tiny_model_dir)  # a 2-layer model with the bundled tokenizer and template
    assert main(["inspect", "sample:support-tickets", "--model", model, "--max-length", "128"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"training +(\d+) of (\d+) rows kept at max_length 128; (\d+) teach "
                      r"nothing and will be dropped; EOS trained in (\d+) of", out)
    assert found, out
    kept, rows, dropped, eos = map(int, found.groups())
    assert 0 < dropped < rows == kept + dropped
    assert f"{dropped} rendering problem(s)" in out

    config = tiny_run_config(tiny_model_dir, "sample:support-tickets")
    config.data.max_length = 128
    config.save(tmp_path / "run.yaml")
    main(["estimate", str(tmp_path / "run.yaml")])
    out = capsys.readouterr().out
    assert f"Dropped: {dropped} of {rows} rows teach nothing at max_length 128 and will be " \
           "dropped" in out, out

    events: list = []
    engine = Engine(config, events.append, workspace=tmp_path / "runs")
    try:
        engine.setup()
        assert engine._inputs is not None
        trained = len(engine._inputs.train_rows) + len(engine._inputs.val_rows)
    finally:
        engine.cleanup()
    logged = [e.message for e in events if isinstance(e, MessageLogged)]
    assert any(m.startswith(f"Dropped {dropped} of {rows} rows teach nothing at max_length 128")
               for m in logged), logged
    assert trained == kept

    app = dataset_app("sample:support-tickets", lambda ref: tokenizer)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        outcome = screen.loader.summary.training
        assert outcome is not None and outcome.max_length == 512 and outcome.dropped == 0
        assert re.search(r"EOS +trained in 640 of 640 kept rows *\n", await stats_text(pilot))
        await pilot.press("t", *"128", "enter")
        screen = await settle(pilot)
        outcome = screen.loader.summary.training
        assert outcome is not None and outcome.max_length == 128
        assert (outcome.kept, outcome.dropped, outcome.eos_trained) == (kept, dropped, eos)
        stats = await stats_text(pilot)
        assert f"{kept} of {rows} rows kept at max_length 128 · {dropped} teach nothing and " \
               "will be dropped" in stats
        assert f"trained in {eos} of {kept} kept rows" in stats
        label = str(screen.query_one("#panes", TabbedContent).get_tab("pane-problems").label)
        assert label == f"Problems ({dropped})"
        first = str(screen.query_one("#problems", OptionList).get_option_at_index(0).prompt)
        assert f"line {outcome.untrained[0]:>6} ✗ labels: no trained token in the first 128" \
               in first


async def test_a_model_without_a_chat_template_is_one_problem_in_both(tmp_path, tokenizer,
                                                                      capsys, monkeypatch):
    """The fallback template is a problem of the whole file: one line in ``tunetop inspect``,
    one entry in the Problems pane (not one per row, and not left out of the count)."""
    import core.models
    from tui.cli import main

    bare = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    bare.chat_template = None
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(alpaca(i)) + "\n" for i in range(3)), encoding="utf-8")
    monkeypatch.setattr(core.models, "load_tokenizer", lambda ref, *args: bare)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 rendering problem(s)" in out and "has no chat template" in out
    app = dataset_app(path, lambda ref: bare)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        label = str(screen.query_one("#panes", TabbedContent).get_tab("pane-problems").label)
        assert label == "Problems (1)"
        listed = str(screen.query_one("#problems", OptionList).get_option_at_index(0).prompt)
        assert listed.startswith("whole file  ! chat_template: The tokenizer has no chat")
