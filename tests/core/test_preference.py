"""Preference tuning: review votes become pairs (ties, skips and the rest counted), the config
fields and their messages, and real DPO and ORPO runs on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import tiny_run_config

from core.config import ConfigError, RunConfig
from core.data import load_preferences, resolve_data_path
from core.events import EvalLogged, RunFailed, RunFinished, StepLogged, read_events
from core.review import PromptItem, ReviewSet
from core.review.preferences import preference_pairs, write_preferences


def make_set(root: Path, n: int) -> ReviewSet:
    """A generated set of ``n`` items: A answers ``a i``, B answers ``b i``."""
    prompts = [PromptItem(messages=[{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": f"ticket {i}"}]) for i in range(n)]
    review = ReviewSet.create(root, "s", {"label": "base"}, {"label": "run"}, prompts, "p", {}, 3)
    review.append_items([review.make_item(i, f"a {i}", f"b {i}") for i in range(n)])
    return review


def side_showing(review: ReviewSet, index: int, model: str) -> str:
    a = review.items[index].a_side
    return a if model == "a" else ("right" if a == "left" else "left")


# --- votes to pairs --------------------------------------------------------------------------


def test_decided_votes_become_pairs_with_the_side_as_judged(tmp_path):
    review = make_set(tmp_path, 9)
    review.judge(0, side_showing(review, 0, "b"))  # B better
    review.judge(1, side_showing(review, 1, "a"))  # A better
    review.judge(2, "tie")
    review.judge(3, "both_bad")
    review.judge(4, "skip")
    review.judge(5, side_showing(review, 5, "a"))
    review.undo()  # item 5 goes back to unjudged
    review.reveal()
    review.judge(6, side_showing(review, 6, "b"))  # not blind
    # items 7 and 8: never judged
    pairs = preference_pairs(review)
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in pairs.rows] == [
        ("b 0", "a 0"), ("a 1", "b 1")]
    assert pairs.rows[0]["prompt"] == [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "ticket 0"}]
    assert (pairs.ties, pairs.both_bad, pairs.skipped, pairs.unjudged, pairs.after_reveal) == (
        1, 1, 1, 3, 1)
    assert pairs.left_out == 7 and len(pairs.rows) + pairs.left_out == 9
    assert pairs.summary() == ("2 preference pairs; left out: 1 tie, 1 both bad, 1 skipped, "
                               "3 not judged, 1 judged after the reveal")
    with_reveal = preference_pairs(review, include_after_reveal=True)
    assert len(with_reveal.rows) == 3 and with_reveal.after_reveal == 0
    assert with_reveal.rows[-1]["chosen"][0]["content"] == "b 6"


def test_identical_answers_and_an_empty_preferred_answer_are_left_out_and_counted(tmp_path):
    prompts = [PromptItem(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    review = ReviewSet.create(tmp_path, "s", {}, {}, prompts, "p", {}, 1)
    review.append_items([review.make_item(0, "same", "same "), review.make_item(1, "", "text"),
                         review.make_item(2, "good", "bad")])
    for i in range(3):
        review.judge(i, side_showing(review, i, "a"))
    pairs = preference_pairs(review)
    assert (pairs.identical, pairs.empty_chosen, len(pairs.rows)) == (1, 1, 1)
    assert "1 same answer twice, 1 empty preferred answer" in pairs.summary()


def test_written_pairs_read_back_as_a_preference_dataset(tmp_path):
    review = make_set(tmp_path, 4)
    for i in range(4):
        review.judge(i, side_showing(review, i, "b"))
    path, pairs = write_preferences(review)
    assert path == review.path / "preferences.jsonl" and len(pairs.rows) == 4
    loaded = load_preferences(path)
    assert loaded.format_reason.startswith("preference") and loaded.dropped == 0
    assert [p.chosen[0]["content"] for p in loaded.preferences] == [f"b {i}" for i in range(4)]
    assert [p.prompt[-1]["content"] for p in loaded.preferences] == [f"ticket {i}" for i in range(4)]


def test_a_set_without_decided_votes_writes_nothing_and_says_why(tmp_path):
    review = make_set(tmp_path, 2)
    review.judge(0, "tie")
    review.reveal()
    review.judge(1, side_showing(review, 1, "b"))
    with pytest.raises(ValueError, match="1 tie, 1 judged after the reveal.*include the judgements"):
        write_preferences(review)
    assert not (review.path / "preferences.jsonl").exists()


def test_export_preferences_writes_pairs_and_a_dpo_config_of_the_run(tmp_path, capsys):
    from tui.cli import main

    run = tmp_path / "runs" / "sft-run"
    (run / "final").mkdir(parents=True)
    RunConfig(run_name="sft-run", method="lora").save(run / "config.yaml")
    (run / "final" / "adapter_config.json").write_text("{}")
    prompts = [PromptItem(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    review = ReviewSet.create(run, "s", {"label": "base", "kind": "base"},
                              {"label": "run sft-run (final)", "kind": "run", "spec": str(run),
                               "model": "bundled:smollm2-135m-instruct",
                               "adapter": str(run / "final")}, prompts, "p", {}, 5)
    review.append_items([review.make_item(i, f"a {i}", f"b {i}") for i in range(3)])
    review.judge(0, side_showing(review, 0, "b"))
    review.judge(1, side_showing(review, 1, "a"))
    assert main(["export-preferences", str(review.path), "--config", str(tmp_path / "dpo.yaml")]) == 0
    out = capsys.readouterr().out
    assert "2 preference pairs; left out: 1 not judged" in out and "tunetop train" in out
    config = RunConfig.load(tmp_path / "dpo.yaml")
    config.check()
    assert (config.objective, config.run_name, config.model.adapter) == ("dpo", "sft-run-dpo",
                                                                        str(run / "final"))
    assert config.data.path == str((review.path / "preferences.jsonl").resolve())
    assert config.optim.learning_rate == 5e-5 and config.data.validation_fraction == 0.0
    assert main(["export-preferences", str(tmp_path / "nothing")]) == 1
    assert "is not a review set" in capsys.readouterr().err


def test_a_plain_model_as_b_trains_a_fresh_adapter_on_it(tmp_path, monkeypatch):
    from core.review.preferences import preference_run_config

    monkeypatch.chdir(tmp_path)
    RunConfig(method="full").save(tmp_path / "config.yaml")  # a stray config must not be read
    review = make_set(tmp_path / "ws", 2)
    review.meta["b"] = {"label": "Qwen 0.5B", "kind": "model", "spec": "org/qwen",
                        "model": "org/qwen"}
    review.judge(0, side_showing(review, 0, "b"))
    path, _ = write_preferences(review)
    config = preference_run_config(review, path, "orpo")
    assert (config.method, config.objective, config.model.name_or_path) == ("lora", "orpo", "org/qwen")
    assert config.model.adapter is None and config.run_name == "Qwen-0.5B-orpo"


# --- config ----------------------------------------------------------------------------------


def test_preference_fields_are_validated_with_fixes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: dpx\npreference:\n  beta: -1\n  loss_type: sigmod\n")
    with pytest.raises(ConfigError) as err:
        RunConfig.load(path).check(str(path))
    text = str(err.value)
    assert "objective: 'dpx' is not an objective. Fix: Use sft" in text
    assert "preference.beta: -1.0 must be positive. Fix: Use 0.1" in text
    assert "preference.loss_type: 'sigmod' is not a DPO loss. Fix: Use sigmoid" in text


def test_a_preference_run_refuses_a_mix_and_an_sft_format():
    cfg = RunConfig(objective="dpo")
    cfg.data.format = "messages"
    fields = {p.field for p in cfg.errors()}
    assert fields == {"data.format"}
    cfg = RunConfig.from_dict({"objective": "orpo", "data": {"sources": ["a.jsonl", "b.jsonl"]},
                               "preference": {"loss_type": "ipo"}})
    problems = {p.field: p for p in cfg.validate()}
    assert problems["data.sources"].is_error and "one preference dataset" in problems["data.sources"].message
    assert problems["preference.loss_type"].severity == "warning"


# --- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def preference_data(tmp_path_factory):
    """48 sample tickets as pairs: chosen is the reference answer, rejected a fixed refusal."""
    rows = resolve_data_path("sample:support-tickets").read_text().splitlines()[:48]
    path = tmp_path_factory.mktemp("prefs") / "pairs.jsonl"
    with open(path, "w") as f:
        for line in rows:
            messages = json.loads(line)["messages"]
            f.write(json.dumps({"prompt": messages[:-1], "chosen": [messages[-1]],
                                "rejected": [{"role": "assistant",
                                              "content": "Sorry, I cannot help with that."}]}) + "\n")
    return path


def preference_config(model_dir, data, objective: str, steps: int = 6):
    cfg = tiny_run_config(model_dir, data, max_steps=steps, learning_rate=5e-3)
    cfg.objective = objective
    cfg.data.validation_fraction = 0.25  # 12 held-out pairs
    cfg.eval.eval_steps = cfg.eval.save_steps = steps
    return cfg


def run(cfg, workspace):
    from core.engine import Engine

    events = []
    final = Engine(cfg, events.append, workspace=workspace).run()
    assert not isinstance(final, RunFailed), final
    return events, final


def test_dpo_learns_the_preferences_and_held_out_margin_and_accuracy_rise(
        tmp_path, tiny_model_dir, preference_data):
    events, final = run(preference_config(tiny_model_dir, preference_data, "dpo"), tmp_path)
    steps = [e for e in events if isinstance(e, StepLogged)]
    evals = [e for e in events if isinstance(e, EvalLogged)]
    # Policy and reference start equal: the first loss is ln 2 and the margin 0.
    assert steps[0].loss == pytest.approx(math.log(2), abs=0.02)
    assert steps[-1].loss < steps[0].loss - 0.1
    assert steps[-1].reward_margin > steps[0].reward_margin + 0.1
    assert steps[-1].reward_chosen is not None and steps[-1].reward_rejected is not None
    (held_out,) = evals
    assert held_out.reward_margin > 0.1 and held_out.reward_accuracy >= 0.75
    assert isinstance(final, RunFinished)
    out = Path(final.output_path)
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "ref").exists()  # the frozen reference is not saved with the output
    # The same metrics reach events.jsonl.
    logged, _ = read_events(str(out.parent / "events.jsonl"))
    assert [e.reward_margin for e in logged if isinstance(e, StepLogged)] == [
        e.reward_margin for e in steps]


def test_orpo_trains_on_pairs_without_a_reference(tmp_path, tiny_model_dir, preference_data):
    events, final = run(preference_config(tiny_model_dir, preference_data, "orpo", steps=4), tmp_path)
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert isinstance(final, RunFinished) and steps[-1].step == 4
    assert all(e.reward_margin is not None and e.reward_accuracy is not None for e in steps)
    assert steps[-1].loss < steps[0].loss


@pytest.mark.slow
def test_dpo_on_top_of_an_sft_run_starts_from_its_adapter(tmp_path, tiny_model_dir, small_data,
                                                          preference_data):
    sft = tiny_run_config(tiny_model_dir, small_data, max_steps=2)
    sft.eval.eval_steps = sft.eval.save_steps = 2
    _, sft_final = run(sft, tmp_path)
    cfg = preference_config(tiny_model_dir, preference_data, "dpo", steps=2)
    cfg.model.adapter = str(Path(sft_final.output_path).parent)
    events, final = run(cfg, tmp_path)
    messages = [getattr(e, "message", "") for e in events]
    assert any(m.startswith("Continuing the adapter") for m in messages), messages
    steps = [e for e in events if isinstance(e, StepLogged)]
    # The reference is the SFT run's adapter, not the base: the first step starts at ln 2.
    assert steps[0].loss == pytest.approx(math.log(2), abs=0.02)
    assert isinstance(final, RunFinished)


def test_sft_data_for_a_preference_run_fails_before_the_run_directory(tmp_path, tiny_model_dir,
                                                                     small_data):
    from core.engine import Engine

    cfg = preference_config(tiny_model_dir, small_data, "dpo")
    final = Engine(cfg, lambda e: None, workspace=tmp_path / "runs").run()
    assert isinstance(final, RunFailed) and "is not a preference dataset" in final.reason
    assert not (tmp_path / "runs").exists()
