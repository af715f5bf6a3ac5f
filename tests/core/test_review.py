"""Review sets on disk: sides, judgements (append + fsync, undo, resume), statistics, export,
prompt sources, model references and the headless ``compare`` command (with a fake generator).
"""

from __future__ import annotations

import csv
import json
import os
import threading
from pathlib import Path

import pytest

from core.config import RunConfig
from core.generate import GeneratedPair, GenerationError, resolve_pair, resolve_ref
from core.generate import GenerationSettings
from core.review import (
    CSV_COLUMNS,
    FILE_PROMPTS,
    GENERAL_SAMPLE,
    HELD_OUT_SAMPLE,
    ITEMS_FILE,
    JUDGEMENTS_FILE,
    WIN_RATE_DEFINITION,
    GenerationJob,
    PromptItem,
    ReviewError,
    ReviewSet,
    a_side_for,
    find_review_sets,
    generate_into,
    load_prompts,
    prepare_job,
    scan_workspace,
    wilson_interval,
)
from tui.cli import build_parser
from tui.cli.compare import Compare, compare_main


def prompts(n: int) -> list[PromptItem]:
    """``n`` prompts whose reference is ``{"n": i}`` (1-based)."""
    return [PromptItem(messages=[{"role": "user", "content": f"ticket {i}"}],
                       reference=json.dumps({"n": i}), source_line=i) for i in range(1, n + 1)]


def make_set(root: Path, n: int = 10, seed: int = 7, name: str = "s") -> ReviewSet:
    """A generated set: A answers the reference, B answers ``{"n": 0}``."""
    review = ReviewSet.create(root, name, {"label": "base", "spec": "base"},
                              {"label": "run x (final)", "spec": "runs/x"}, prompts(n),
                              "test prompts", {"max_new_tokens": 16, "temperature": 0.0}, seed)
    review.append_items([review.make_item(i, json.dumps({"n": i + 1}), '{"n": 0}')
                         for i in range(n)])
    return review


def side_of(review: ReviewSet, index: int, model: str) -> str:
    """The side (left/right) showing ``model``'s answer to item ``index``."""
    a = review.items[index].a_side
    return a if model == "a" else ("right" if a == "left" else "left")


# --- sides and the interval ------------------------------------------------------------------


def test_sides_are_random_per_item_deterministic_from_the_seed_and_stored():
    layout = [a_side_for(42, i) for i in range(400)]
    assert layout == [a_side_for(42, i) for i in range(400)]
    assert layout != [a_side_for(43, i) for i in range(400)]
    assert 160 < layout.count("left") < 240  # about half each way


def test_items_store_their_side_and_show_outputs_by_side(tmp_path):
    review = make_set(tmp_path, seed=3)
    on_disk = [json.loads(x) for x in (review.path / ITEMS_FILE).read_text().splitlines()]
    assert [r["a_side"] for r in on_disk] == [a_side_for(3, i) for i in range(10)]
    for item in review.items.values():
        left_is_a = item.a_side == "left"
        assert (item.left, item.right) == ((item.output_a, item.output_b) if left_is_a
                                           else (item.output_b, item.output_a))
        assert item.outcome(item.a_side) == "a" and item.outcome("tie") == "tie"


def test_judgements_record_sides_only_never_model_names(tmp_path):
    review = make_set(tmp_path)
    review.judge(0, "left")
    record = json.loads((review.path / JUDGEMENTS_FILE).read_text())
    assert record["verdict"] == "left" and record["index"] == 0
    assert not {"outcome", "winner", "model"} & set(record)


@pytest.mark.parametrize(("wins", "n", "low", "high"), [
    (7, 10, 0.3968, 0.8922),   # p=.7: centre .6445, half .2477 (computed by hand)
    (4, 5, 0.3755, 0.9638),
    (10, 10, 0.7225, 1.0),
    (0, 5, 0.0, 0.4345),
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_interval_matches_hand_computed_values(wins, n, low, high):
    got = wilson_interval(wins, n)
    assert got is not None
    assert got[0] == pytest.approx(low, abs=5e-4) and got[1] == pytest.approx(high, abs=5e-4)


def test_no_decisions_gives_no_interval():
    assert wilson_interval(0, 0) is None


# --- judging, durability, undo, resume --------------------------------------------------------


def test_each_judgement_is_appended_and_fsynced_before_judge_returns(tmp_path, monkeypatch):
    review = make_set(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    log = review.path / JUDGEMENTS_FILE
    for k, verdict in enumerate(["left", "right", "tie"]):
        review.judge(k, verdict)
        assert len(synced) == k + 1
        assert len(log.read_text().splitlines()) == k + 1  # on disk, not in a buffer
    first = log.read_text().splitlines()[0]
    review.undo()
    assert log.read_text().splitlines()[0] == first  # append-only: nothing rewritten
    assert json.loads(log.read_text().splitlines()[-1])["kind"] == "undo" and len(synced) == 4


def test_a_torn_last_line_is_skipped_and_later_records_stay_readable(tmp_path):
    review = make_set(tmp_path)
    review.judge(0, "left")
    with open(review.path / JUDGEMENTS_FILE, "a") as f:
        f.write('{"kind": "judgement", "ind')  # killed mid-write
    reopened = ReviewSet.open(review.path)
    assert reopened.verdict(0) == "left" and len(reopened.verdicts) == 1
    reopened.judge(1, "right")
    again = ReviewSet.open(review.path)
    assert again.verdict(1) == "right" and again.verdict(0) == "left"


def test_undo_restores_the_previous_verdict_then_unjudged(tmp_path):
    review = make_set(tmp_path)
    review.judge(0, "left")
    review.judge(1, "tie")
    review.judge(0, "right")  # changed its mind about item 1
    assert review.undo().index == 0 and review.verdict(0) == "left"
    assert review.undo().index == 1 and review.verdict(1) is None
    assert review.undo().index == 0 and review.verdict(0) is None
    assert review.undo() is None
    kinds = [json.loads(x)["kind"] for x in (review.path / JUDGEMENTS_FILE).read_text().splitlines()]
    assert kinds == ["judgement"] * 3 + ["undo"] * 3
    assert ReviewSet.open(review.path).verdicts == {}


def test_reopening_resumes_at_the_first_unjudged_item(tmp_path):
    review = make_set(tmp_path)
    for i, verdict in enumerate(["left", "skip", "both_bad"]):
        review.judge(i, verdict)
    review.judge(5, "tie")
    reopened = ReviewSet.open(review.path)
    assert reopened.first_unjudged() == 3
    assert reopened.next_unjudged(3) == 4 and reopened.next_unjudged(4) == 6
    assert reopened.next_unjudged(9) == 3  # wraps round
    assert {i: j.verdict for i, j in reopened.verdicts.items()} == {
        0: "left", 1: "skip", 2: "both_bad", 5: "tie"}


def test_judging_checks_its_input(tmp_path):
    review = ReviewSet.create(tmp_path, "s", {}, {}, prompts(3), "p", {}, 1)
    with pytest.raises(ReviewError, match="no answers yet"):
        review.judge(0, "left")
    review.append_items([review.make_item(0, "a", "b")])
    with pytest.raises(ReviewError, match="Unknown verdict"):
        review.judge(0, "a")
    with pytest.raises(ReviewError, match="already exists"):
        ReviewSet.create(tmp_path, "s", {}, {}, prompts(3), "p", {}, 1)
    with pytest.raises(ReviewError, match="No prompts"):
        ReviewSet.create(tmp_path, "t", {}, {}, [], "p", {}, 1)


def test_reveal_is_logged_and_marks_later_judgements(tmp_path):
    review = make_set(tmp_path)
    review.judge(0, "left")
    review.reveal()
    review.judge(1, "left")
    reopened = ReviewSet.open(review.path)
    assert reopened.revealed
    assert [reopened.verdicts[i].after_reveal for i in (0, 1)] == [False, True]
    assert reopened.stats().after_reveal == 1


# --- statistics -------------------------------------------------------------------------------


def test_statistics_count_b_against_a_as_computed_by_hand(tmp_path):
    review = make_set(tmp_path, n=12)
    plan = ["b", "b", "b", "b", "b", "b", "b", "a", "a", "a", "tie", "both_bad"]
    for i, outcome in enumerate(plan):
        verdict = side_of(review, i, outcome) if outcome in ("a", "b") else outcome
        review.judge(i, verdict)
    review.judge(11, "skip")  # re-judged: both bad -> skip
    s = review.stats()
    assert (s.wins, s.losses, s.ties, s.both_bad, s.skipped, s.judged) == (7, 3, 1, 0, 1, 12)
    assert s.decisions == 10 and s.win_rate == pytest.approx(0.7)
    assert s.interval[0] == pytest.approx(0.3968, abs=5e-4)
    assert s.interval[1] == pytest.approx(0.8922, abs=5e-4)
    assert s.win_rate_text() == "B win rate 70.0% (95% CI 39.7%-89.2%, n=10)"
    assert "excluded" in WIN_RATE_DEFINITION and "Wilson" in WIN_RATE_DEFINITION
    # Automatic checks: A always matches the reference, B never does.
    assert s.checks_a["exact_match"] == 1.0 and s.checks_b["exact_match"] == 0.0
    assert s.checks_a["valid_json"] == 1.0 and s.checks_b["valid_json"] == 1.0
    assert s.disagreements == 8  # 7 B wins and 1 tie go against exact match; skips do not count


def test_per_item_checks_and_disagreement(tmp_path):
    review = ReviewSet.create(tmp_path, "s", {}, {}, [
        PromptItem([{"role": "user", "content": "q1"}], '{"a": 1}'),
        PromptItem([{"role": "user", "content": "q2"}], None),
        PromptItem([{"role": "user", "content": "q3"}], "Paris"),
    ], "p", {}, 5)
    review.append_items([review.make_item(0, '{"a": 1}', "not json"),
                         review.make_item(1, "x", "y"),
                         review.make_item(2, "Paris", "Paris")])
    review.judge(0, side_of(review, 0, "b"))
    ca, cb = review.checks(0)
    assert ca.exact and ca.valid_json and not cb.exact and cb.valid_json is False
    assert cb.length == 8 and cb.length_ratio == pytest.approx(8 / 8)
    assert review.checks(1) is None
    rows = review.rows()
    assert rows[0].outcome == "b" and rows[0].checks_prefer == "a" and rows[0].disagrees
    assert rows[1].checks_prefer is None and not rows[1].disagrees
    assert rows[2].checks_prefer is None and rows[2].checks_a.valid_json is None


# --- export -----------------------------------------------------------------------------------


def test_exports_read_back(tmp_path):
    review = make_set(tmp_path, n=4)
    review.judge(0, side_of(review, 0, "b"))
    review.judge(1, side_of(review, 1, "a"))
    review.judge(2, "tie")
    review.reveal()
    md = review.export_markdown().read_text()
    assert "# Review s" in md and "| 1 | 1 | 1 | 0 | 0 | 3 of 4 |" in md
    assert "B win rate 50.0% (95% CI 9.5%-90.5%, n=2)" in md
    assert WIN_RATE_DEFINITION in md and "| exact match | 100.0% | 0.0% |" in md
    with open(review.export_csv(), newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["outcome"] for r in rows] == ["b", "a", "tie", ""]
    assert rows[0]["output_a"] == '{"n": 1}' and rows[0]["reference"] == '{"n": 1}'
    assert rows[0]["a_exact"] == "yes" and rows[0]["b_exact"] == "no"
    assert rows[0]["disagrees"] == "yes" and rows[1]["disagrees"] == "no"
    assert rows[0]["a_side"] == review.items[0].a_side


def test_default_names_are_unique_and_file_safe(tmp_path):
    from datetime import datetime

    from core.review import default_set_name

    when = datetime(2025, 3, 3, 10, 15)
    first = default_set_name(tmp_path, "base bundled:smollm2-135m-instruct", "run lora-1 (final)", when)
    assert first == "20250303-101500-base-bundled-smo-vs-run-lora-1-final"
    make_set(tmp_path, name=first)
    assert default_set_name(tmp_path, "base bundled:smollm2-135m-instruct", "run lora-1 (final)",
                            when) == first + "-2"


def test_find_review_sets_lists_run_and_workspace_sets(tmp_path):
    make_set(tmp_path / "run-1", name="one").judge(0, "left")
    make_set(tmp_path, name="two")
    (tmp_path / "review" / "junk").mkdir()
    (tmp_path / "review" / "junk" / "meta.json").write_text("not json")
    found = {info.name: info for info in find_review_sets(tmp_path)}
    assert set(found) == {"one", "two"}
    assert (found["one"].judged, found["one"].total, found["one"].label_b) == (1, 10, "run x (final)")


# --- prompt sources ---------------------------------------------------------------------------


def test_held_out_sample_gives_prompts_with_references():
    items, source = load_prompts("sample:support-tickets-heldout")
    assert source == "sample:support-tickets-heldout" and len(items) == 120
    assert items[0].messages[-1]["role"] == "user" and items[0].messages[0]["role"] == "system"
    assert json.loads(items[0].reference)["order_id"] == "ORD-13046"
    assert len(load_prompts("sample:support-tickets-heldout", limit=5)[0]) == 5


def test_validation_split_of_a_run_matches_the_engine_split(tmp_path):
    from core.data import load_examples, split_examples

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = RunConfig()
    config.data.validation_fraction = 0.05
    config.save(run_dir / "config.yaml")
    items, source = load_prompts(f"val:{run_dir}")
    _, val = split_examples(load_examples(config.data.path).examples, 0.05, config.optim.seed)
    assert "validation split of run" in source
    assert [p.source_line for p in items] == [e.line for e in val]
    assert items[0].reference == val[0].messages[-1]["content"]


def test_plain_text_rows_cannot_be_prompts(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "hello"}\n{"text": "world"}\n')
    with pytest.raises(ReviewError, match="no chat rows"):
        load_prompts(str(path))


# --- model references -------------------------------------------------------------------------


def fake_run(root: Path, name: str = "lora-1", final: str | None = "adapter",
             checkpoints: dict[int, bool] | None = None) -> Path:
    """A run directory with a config, an optional final output and checkpoints."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = RunConfig(run_name=name)
    config.model.name_or_path = "org/base-model"
    config.save(run_dir / "config.yaml")
    if final == "adapter":
        (run_dir / "final").mkdir()
        (run_dir / "final" / "adapter_config.json").write_text('{"base_model_name_or_path": "/x"}')
    elif final == "full":
        (run_dir / "final").mkdir()
        (run_dir / "final" / "config.json").write_text("{}")
        (run_dir / "final" / "tokenizer_config.json").write_text("{}")
    for step, complete in (checkpoints or {}).items():
        ckpt = run_dir / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "adapter_config.json").write_text("{}")
        if complete:
            (ckpt / "COMPLETE").write_text(str(step))
    return run_dir


def test_references_to_runs_checkpoints_and_models(tmp_path):
    run = fake_run(tmp_path, checkpoints={10: True, 20: False})
    ref = resolve_ref(str(run))
    assert (ref.kind, ref.model, ref.adapter, ref.tokenizer) == (
        "run", "org/base-model", str(run / "final"), "org/base-model")
    ckpt = resolve_ref(str(run / "checkpoints" / "checkpoint-10"))
    assert ckpt.kind == "checkpoint" and ckpt.model == "org/base-model"
    assert ckpt.label == "run lora-1 checkpoint-10"
    with pytest.raises(GenerationError, match="incomplete"):
        resolve_ref(str(run / "checkpoints" / "checkpoint-20"))
    plain = resolve_ref("bundled:smollm2-135m-instruct")
    assert plain.kind == "model" and plain.adapter is None
    full = resolve_ref(str(fake_run(tmp_path, "full-1", final="full")))
    assert full.model == str(tmp_path / "full-1" / "final") and full.adapter is None
    assert full.tokenizer == full.model and full.base_model == "org/base-model"


def test_a_run_without_output_names_its_latest_checkpoint(tmp_path):
    run = fake_run(tmp_path, final=None, checkpoints={5: True, 10: True})
    with pytest.raises(GenerationError, match="checkpoint-10"):
        resolve_ref(str(run))


def test_base_means_the_base_of_the_run_on_the_other_side(tmp_path):
    run = fake_run(tmp_path)
    a, b = resolve_pair("base", str(run))
    assert (a.kind, a.model, a.label) == ("base", "org/base-model", "base org/base-model")
    a, b = resolve_pair("base", "org/other", default_base="bundled:smollm2-135m-instruct")
    assert a.model == "bundled:smollm2-135m-instruct"
    with pytest.raises(GenerationError, match="neither side is a run"):
        resolve_pair("base", "org/other")


# --- what a workspace offers, and generation jobs ----------------------------------------------


def test_workspace_scan_offers_finished_runs_complete_checkpoints_and_splits(tmp_path):
    older = fake_run(tmp_path, "old", checkpoints={10: True, 30: True, 20: False})
    (older / "checkpoints" / ".saving-checkpoint-40" / "checkpoint-40").mkdir(parents=True)
    newer = fake_run(tmp_path, "new", final=None, checkpoints={5: True})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model: [\n")
    make_set(older, n=3)
    os.utime(older, (1000, 1000))
    os.utime(newer, (2000, 2000))
    choices = scan_workspace(tmp_path, "bundled:app-model")
    ckpt = older / "checkpoints"
    assert choices.models == [
        ("base bundled:app-model", ("base", "bundled:app-model")),
        ("base org/base-model", ("base", "org/base-model")),
        ("run new checkpoint-5", ("path", str(newer / "checkpoints" / "checkpoint-5"))),
        ("run old (final)", ("path", str(older))),
        ("run old checkpoint-30", ("path", str(ckpt / "checkpoint-30"))),
        ("run old checkpoint-10", ("path", str(ckpt / "checkpoint-10"))),
    ]  # newest run first, its checkpoints newest first; half-written and staged ones left out
    assert choices.default_a == ("base", "org/base-model")  # the base of the newest finished run
    assert choices.default_b == ("path", str(older))
    assert [value for _, value in choices.prompts] == [
        ("sample", HELD_OUT_SAMPLE), ("sample", GENERAL_SAMPLE), ("val", str(newer)),
        ("val", str(older)), FILE_PROMPTS]
    assert [(s.name, s.total) for s in choices.sets] == [("s", 3)]
    assert choices.for_run(older) == (("base", "org/base-model"), ("path", str(older)),
                                      ("val", str(older)))
    assert choices.for_run(newer) is None  # no final output to review yet


def test_an_empty_workspace_offers_the_app_model_and_the_sample(tmp_path):
    choices = scan_workspace(tmp_path / "missing", "bundled:app-model")
    assert choices.models == [("base bundled:app-model", ("base", "bundled:app-model"))]
    assert choices.default_a == choices.default_b == ("base", "bundled:app-model")
    assert [value for _, value in choices.prompts] == [
        ("sample", HELD_OUT_SAMPLE), ("sample", GENERAL_SAMPLE), FILE_PROMPTS]
    assert choices.sets == []


def test_a_job_creates_its_set_in_bs_run_and_a_resumed_job_reuses_it(tmp_path):
    run = fake_run(tmp_path / "runs")
    settings = GenerationSettings(batch_size=2)
    stop = threading.Event()
    review, request = prepare_job(GenerationJob(
        settings=settings, choice_a=("base", "org/base-model"), choice_b=("path", str(run)),
        prompts="sample:support-tickets-heldout", limit=3, workspace=tmp_path / "runs"), stop)
    assert review.path.parent == run / "review" and review.total == 3 and not review.items
    assert request.stop is stop and request.settings == settings
    assert (request.a.kind, request.b.adapter) == ("base", str(run / "final"))
    assert request.conversations == [p.messages for p in review.prompts]
    assert generate_into(review, request, fake_generator) == 3
    again, resumed = prepare_job(GenerationJob(settings=settings, resume=ReviewSet.open(review.path)),
                                 threading.Event())
    assert again.path == review.path and again.complete
    assert (resumed.a, resumed.b) == (request.a, request.b)
    plain, _ = prepare_job(GenerationJob(
        settings=settings, choice_a=("path", "org/a"), choice_b=("path", "org/b"),
        prompts="sample:support-tickets-heldout", limit=2, workspace=tmp_path / "ws"), stop)
    assert plain.path.parent == tmp_path / "ws" / "review"  # neither side is a run


# --- tunetop compare (fake generator) ---------------------------------------------------------


def fake_generator(request, on_status):
    """Answers ``A<i>``/``B<i>`` for each prompt from ``request.start``."""
    on_status("fake models loaded")
    for i in range(request.start, len(request.conversations)):
        yield GeneratedPair(i, f"A{i}", f"B{i}")


def test_compare_writes_a_set_into_bs_run_and_prints_progress(tmp_path, capsys):
    run = fake_run(tmp_path)
    code = compare_main(a="base", b=str(run), prompts="sample:support-tickets-heldout",
                        limit=6, batch_size=4, max_new_tokens=32, generator=fake_generator,
                        name="cli", side_seed=11)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[6/6] generated" in out and "fake models loaded" in out
    review = ReviewSet.open(run / "review" / "cli")
    assert review.complete and review.meta["complete"] and review.meta["side_seed"] == 11
    assert review.meta["a"]["kind"] == "base" and review.meta["b"]["adapter"] == str(run / "final")
    assert review.meta["generation"] == {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0,
                                         "seed": 0, "batch_size": 4, "greedy": True}
    assert review.meta["prompts"] == {"source": "sample:support-tickets-heldout", "count": 6}
    assert review.items[3].output_b == "B3"
    assert compare_main(resume=str(review.path), generator=fake_generator) == 0
    assert "nothing to generate" in capsys.readouterr().out


def test_compare_resume_generates_only_the_missing_answers(tmp_path):
    review = ReviewSet.create(tmp_path, "s", {"spec": "m1", "kind": "model", "model": "m1"},
                              {"spec": "m2", "kind": "model", "model": "m2"}, prompts(5), "p",
                              {"batch_size": 2}, 1)
    review.append_items([review.make_item(i, f"old{i}", f"old{i}") for i in range(2)])
    starts = []

    def generator(request, on_status):
        starts.append(request.start)
        return fake_generator(request, on_status)

    assert compare_main(resume=str(review.path), generator=generator) == 0
    reopened = ReviewSet.open(review.path)
    assert starts == [2] and reopened.complete
    assert [reopened.items[i].output_a for i in range(5)] == ["old0", "old1", "A2", "A3", "A4"]


def test_compare_explains_bad_arguments(tmp_path, capsys):
    assert compare_main(a="base", b="org/x", prompts="sample:support-tickets-heldout",
                        out=str(tmp_path)) == 2
    assert "neither side is a run" in capsys.readouterr().err
    assert compare_main(a="org/a", b="org/b", prompts=str(tmp_path / "missing.jsonl"),
                        out=str(tmp_path)) == 2
    assert "does not exist" in capsys.readouterr().err
    assert compare_main(a="org/a", b="org/b", prompts="sample:support-tickets-heldout",
                        batch_size=0) == 2
    assert "batch_size must be at least 1" in capsys.readouterr().err
    assert compare_main(a="org/a") == 2


def test_compare_parser_builds_the_call(tmp_path, monkeypatch):
    args = build_parser().parse_args(["compare", "--a", "base", "--b", "runs/x", "--prompts",
                                      "p.jsonl", "--out", str(tmp_path), "--max-new-tokens", "64",
                                      "--batch-size", "4"])
    seen = {}
    monkeypatch.setattr("tui.cli.compare.compare_main", lambda **kw: seen.update(kw) or 0)
    assert Compare().run(args) == 0
    assert (seen["a"], seen["b"], seen["prompts"], seen["out"]) == ("base", "runs/x", "p.jsonl", str(tmp_path))
    assert (seen["max_new_tokens"], seen["batch_size"]) == (64, 4)


def test_review_modules_import_without_textual_or_torch():
    import subprocess
    import sys

    code = ("import sys, core.review, core.generate, core.compare, tui.cli.compare; "
            "print(sorted(m for m in ('textual', 'torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
