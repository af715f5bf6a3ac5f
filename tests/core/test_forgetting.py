"""The forgetting guard: the probe set, the drift metric on a tiny real model, base answers
cached per model, drift in events, runs list and model card, the drift alert, replay, and the
general prompts offered to review."""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import measure_drift, tiny_run_config

from core import forgetting
from core.alerts import AlertTracker, check_drift
from core.config import GENERAL_PROMPTS, RunConfig
from core.data import DataError, read_prompts, replay_rows
from core.events import (
    EvalLogged,
    MessageLogged,
    PhaseChanged,
    RunFinished,
    RunStarted,
    event_from_dict,
    read_events,
)
from core.samples import general

sys.path.insert(0, str(Path(__file__).parents[1] / "tui"))
from fakes import run_started  # noqa: E402


# --- the probe set ---------------------------------------------------------------------------


def test_probe_set_is_generated_deterministically_and_matches_the_committed_file(tmp_path):
    written = general.main(tmp_path)
    committed = general.SAMPLES_DIR / general.GENERAL_FILE
    assert written.read_bytes() == committed.read_bytes(), "stale: python -m core.samples.general"
    prompts, problems = read_prompts(GENERAL_PROMPTS)
    assert len(prompts) == 300 and not problems
    assert all(len(p) == 1 and p[0]["role"] == "user" and p[0]["content"].strip() for p in prompts)
    assert len({p[0]["content"] for p in prompts}) == 300
    first = [p[0]["content"] for p in prompts[:5]]  # rows cycle through the five kinds
    assert "Write" in first[0] or "Summarise" in first[0] or "title" in first[0]
    assert "Python" in first[3] or "SQL" in first[3] or "programming" in first[3]


def test_prompt_files_accept_chats_and_prompt_fields_and_name_bad_lines(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Name a colour."},
                          {"role": "assistant", "content": "Blue."}]},
            {"prompt": "Count to three."},
            {"instruction": "Translate.", "input": "merci"},
            {"messages": [{"role": "assistant", "content": "no question"}]},
            {"text": "no prompt field"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts, problems = read_prompts(path)
    assert prompts == [[{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Name a colour."}],
                       [{"role": "user", "content": "Count to three."}],
                       [{"role": "user", "content": "Translate.\n\nmerci"}]]
    assert [p.line for p in problems] == [4, 5] and "user turn" in problems[0].message
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(DataError, match="holds no prompt"):
        read_prompts(bad)


def test_the_drift_sample_is_fixed_and_replay_draws_from_the_rest_with_the_seed():
    sample, pool = forgetting.split_probe(300, 32)
    assert len(sample) == 32 and len(pool) == 268 and not set(sample) & set(pool)
    assert forgetting.split_probe(300, 32) == (sample, pool)  # whatever the run's seed
    assert forgetting.split_probe(10, 32) == (list(range(10)), [])
    picks = forgetting.replay_picks(pool, 20, seed=42)
    assert picks == forgetting.replay_picks(pool, 20, seed=42) != forgetting.replay_picks(pool, 20, 7)
    assert set(picks) <= set(pool) and len(picks) == 20
    assert forgetting.replay_picks(pool[:5], 20, 42) == pool[:5]
    # a share of the training split: 5% of 608 task rows + 32 replay rows
    assert replay_rows(608, 0.05) == 32 and replay_rows(86, 0.1) == 10
    assert replay_rows(86, 0.0) == 0 and replay_rows(3, 0.01) == 1


def test_config_validates_the_forgetting_fields(tmp_path):
    cfg = RunConfig()
    assert cfg.eval.general_prompts == GENERAL_PROMPTS and cfg.eval.general_sample > 0
    cfg.eval.general_sample = -1
    cfg.eval.general_max_new_tokens = 0
    cfg.eval.drift_threshold = math.nan
    cfg.data.replay = 0.8
    cfg.eval.general_prompts = str(tmp_path / "missing.jsonl")
    fields = {p.field for p in cfg.validate()}
    assert {"eval.general_sample", "eval.general_max_new_tokens", "eval.drift_threshold",
            "data.replay", "eval.general_prompts"} <= fields
    loaded = RunConfig.from_dict({"eval": {"general_sample": 0}, "data": {"replay": 0.05}})
    assert loaded.eval.general_sample == 0 and loaded.data.replay == 0.05 and not loaded.validate()
    cfg = RunConfig.from_dict({"data": {"validation_fraction": 0}})  # nothing to evaluate on
    assert [(p.field, p.severity) for p in cfg.validate()] == [("eval.general_sample", "warning")]
    # a preference run measures drift, but its pairs take no SFT replay rows
    dpo = RunConfig.from_dict({"objective": "dpo", "data": {"replay": 0.05}})
    assert [p.field for p in dpo.errors()] == ["data.replay"]
    assert "set data.replay 0" in str(dpo.errors()[0]).lower()
    assert not RunConfig.from_dict({"objective": "dpo"}).errors()
    cfg = RunConfig.from_dict({"eval": {"general_prompts": "sample:nope", "drift_threshold": 0}})
    assert {p.field for p in cfg.errors()} == {"eval.general_prompts", "eval.drift_threshold"}
    assert "is not a bundled sample" in str(cfg.errors()[0]) + str(cfg.errors()[1])


# --- the metric on a tiny real model ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_probe(tiny_model_dir):
    """The tiny model's own greedy answers to six general prompts, as scored rows."""
    from core.config import ModelConfig
    from core.generate import GenerationSettings, TextGenerator
    from core.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = load_model(ModelConfig(name_or_path=str(tiny_model_dir)), "full", "fp32", "cpu")
    prompts = read_prompts(GENERAL_PROMPTS)[0][:6]
    tokenizer.padding_side = "left"
    out = TextGenerator(model, tokenizer, None, "cpu").generate_with_ends(
        prompts, GenerationSettings(max_new_tokens=8, batch_size=6), strip=False)
    tokenizer.padding_side = "right"
    answers = [forgetting.BaseAnswer(p, a, e) for p, (a, e) in zip(prompts, out)]
    return model, tokenizer, forgetting.answer_rows(tokenizer, answers, 256)


def test_drift_is_zero_for_the_untouched_base_packed_or_padded(tiny_probe):
    import torch

    model, tokenizer, rows = tiny_probe
    assert len(rows) == 6
    # an answer cut at the cap keeps its end-of-turn token out of the score
    assert all(row["labels"][-2] == -100 or row["labels"][-1] == -100 for row in rows)
    probe = forgetting.GeneralProbe(rows, math.nan, 6, batch_size=4).with_base(model)
    loss, drift = probe.measure(model)
    assert math.isfinite(loss) and abs(drift) < 1e-4
    padded = replace(probe, packed=False, pad_id=tokenizer.pad_token_id).loss(model)
    assert abs(padded - probe.base_loss) < 1e-4  # packing keeps the rows apart, as training's

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    try:
        on_peft = forgetting.GeneralProbe(rows, math.nan, 6).with_base(peft)
        assert abs(on_peft.base_loss - probe.base_loss) < 1e-4  # adapter disabled: the base
        assert abs(on_peft.measure(peft)[1]) < 1e-4  # a fresh adapter changes nothing yet
        with torch.no_grad():  # a changed adapter is measured (and the base still is not)
            for name, p in peft.named_parameters():
                if "lora_B" in name:
                    p.add_(0.5)
        assert abs(on_peft.measure(peft)[1]) > 1e-3
        assert abs(on_peft.with_base(peft).base_loss - probe.base_loss) < 1e-4
    finally:
        peft.unload()


# --- a real tiny run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drift_run(tiny_model_dir, small_data, tmp_path_factory):
    """A case built to forget: a full fine-tune of the tiny model on support tickets (unrelated
    to the general prompts) at a high learning rate; then two setups with replay beside a mix
    of two sources (the first asks the base the replay prompts, the second finds them cached)."""
    from core.config import SourceConfig
    from core.engine import Engine

    cfg = measure_drift(tiny_run_config(tiny_model_dir, small_data))
    cfg.method = "full"
    cfg.eval.drift_threshold = 0.01
    workspace = tmp_path_factory.mktemp("drift-runs")
    events: list = []
    engine = Engine(cfg, events.append, workspace=workspace)
    engine.run()
    cfg = copy.deepcopy(cfg)
    cfg.data.replay = 0.1
    cfg.data.path = ""
    cfg.data.sources = [SourceConfig(str(small_data), max_rows=60),
                        SourceConfig("sample:support-tickets-heldout", max_rows=20)]
    setups = []
    for _ in range(2):
        setups.append([])
        again = Engine(cfg, setups[-1].append, workspace=workspace)
        try:
            again.setup()
        finally:
            again.cleanup()
    return engine, events, (setups, cfg)


def test_a_tiny_run_on_unrelated_data_reports_rising_drift_in_its_events(drift_run):
    engine, events, _ = drift_run
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.general_prompts == 8 and started.drift_threshold == 0.01
    # asking the base model is a setup phase with its progress (one batch: 8 prompts)
    setup = events[:events.index(started)]
    phases = [e.phase for e in setup if isinstance(e, PhaseChanged)]
    assert list(dict.fromkeys(phases)) == ["data", "tokenizer", "tokenize", "model", "general", "trainer"]
    general = [e for e in setup if isinstance(e, PhaseChanged) and e.phase == "general"]
    assert [(e.done, e.total) for e in general] == [(0, 8), (8, 8)]
    assert general[0].message.startswith("Asking the base model 8 general prompts")
    evals = [e for e in events if isinstance(e, EvalLogged)]
    assert len(evals) == 2 and all(e.general_loss is not None for e in evals)
    assert 0 < evals[0].general_drift < evals[1].general_drift
    log = [e.message for e in events if isinstance(e, MessageLogged)]
    base = next(m for m in log if m.startswith("General drift: 8 prompts"))
    base_loss = float(base.split("is ")[1].split(" per")[0])
    timed = [m for m in log if m.startswith("General drift took ")]  # its cost, once per run
    assert len(timed) == 1 and "(8 prompts); the validation loss took" in timed[0]
    assert abs(evals[1].general_loss - evals[1].general_drift - base_loss) < 1e-3
    on_disk, _ = read_events(str(engine.run_dir / "events.jsonl"))
    assert [(e.general_loss, e.general_drift) for e in on_disk if isinstance(e, EvalLogged)] == \
        [(e.general_loss, e.general_drift) for e in evals]
    # the alert fires on the real series: above 0.01 and rising at both evaluations
    alerts = AlertTracker().update_all(on_disk)
    drift = [a for a in alerts if a.key == "drift"]
    assert len(drift) == 1 and drift[0].level == "warning"
    for fix in ("optim.learning_rate", "method: lora", "optim.max_steps", "data.replay"):
        assert fix in drift[0].detail


def test_replay_joins_the_mixed_sources_and_answers_are_cached_for_the_next_setup(drift_run):
    from core.data import load_data, split_examples

    _, events, ((first, second), cfg) = drift_run
    assert next(e for e in events if isinstance(e, RunStarted)).num_train_rows == 86
    mixed = load_data(cfg.data, cfg.optim.seed)
    task = len(split_examples(mixed.examples, 0.1, cfg.optim.seed)[0])
    extra = replay_rows(task, 0.1)
    assert task == 72 and extra == 8
    started = next(e for e in first if isinstance(e, RunStarted))
    assert started.num_train_rows == task + extra
    log = [e.message for e in first if isinstance(e, MessageLogged)]
    assert any(m.startswith("Source ") and "60 used" in m for m in log)  # the mix's own lines
    assert f"Source replay (data.replay 0.1): {extra} rows of the base model's own answers to " \
           f"prompts of {GENERAL_PROMPTS} join the {task} task rows (10% of the " \
           f"{task + extra} training rows)." in log
    # the 8 probe answers are cached from the run; only the replay prompts are asked
    asked = [(e.done, e.total) for e in first if isinstance(e, PhaseChanged) and e.phase == "general"]
    assert asked == [(0, extra), (extra, extra)]
    log = [e.message for e in second if isinstance(e, MessageLogged)]
    assert not [e for e in second if isinstance(e, PhaseChanged) and e.phase == "general"]
    assert any(m.startswith(f"Base answers to {8 + extra} general prompts: all from the cache in ")
               for m in log)
    assert next(e for e in second if isinstance(e, RunStarted)).num_train_rows == task + extra
    files = list(Path(forgetting.answers_dir()).glob("*.jsonl"))
    assert files and all(len(f.read_text().splitlines()) >= 8 for f in files)


def test_drift_reaches_the_runs_list_and_the_model_card(drift_run):
    from core.export.card import model_card, summarize_run
    from core.runs import RunIndex

    engine, events, _ = drift_run
    last = [e for e in events if isinstance(e, EvalLogged)][-1]
    info = next(r for r in RunIndex(engine.run_dir.parent).refresh() if r.path == engine.run_dir)
    assert info.general_drift == last.general_drift
    summary = summarize_run(engine.run_dir)
    assert summary.general_drift == last.general_drift and summary.general_prompts == 8
    text = str(model_card(summary, "adapter"))
    assert f"| General drift | {last.general_drift:+.4f} per token" in text


# --- the alert on made-up series ---------------------------------------------------------------


def test_drift_alert_needs_the_threshold_passed_and_two_rises():
    assert check_drift([(20, 0.2), (40, 0.4)], threshold=0.3) is not None  # 0 → 0.2 → 0.4
    assert check_drift([(20, 0.2)], threshold=0.1) is None  # one rise only
    assert check_drift([(20, 0.2), (40, 0.25)], threshold=0.3) is None  # under the threshold
    assert check_drift([(20, 0.5), (40, 0.4)], threshold=0.3) is None  # falling
    assert check_drift([(20, 0.5), (40, 0.4), (60, 0.45), (80, 0.6)], threshold=0.3) is not None
    full = check_drift([(20, 0.2), (40, 0.4)], threshold=0.3, method="full")
    lora = check_drift([(20, 0.2), (40, 0.4)], threshold=0.3, method="lora")
    assert "method: lora" in full.detail and "method: lora" not in lora.detail
    for fix in ("learning_rate", "max_steps", "data.replay"):
        assert fix in lora.detail


def test_the_drift_rule_is_said_only_for_runs_that_measure_drift():
    from core.alerts import ALERT_RULES, rules_summary

    rule = next(r for r in ALERT_RULES if r.key == "drift")
    assert "eval.drift_threshold" in rule.when and "last 2 evaluations" in rule.when
    assert "drift" not in rules_summary() and "drift" not in rules_summary(True)
    assert "drift > 0.3 rising" in rules_summary(False, 0.3)
    assert "drift > 0.5 rising" in rules_summary(True, 0.5) and "margin" in rules_summary(True, 0.5)


def test_the_tracker_takes_the_threshold_from_the_run_and_old_events_read_back():
    def evals(*drifts):
        return [EvalLogged(step=20 * (i + 1), eval_loss=1.0, best_eval_loss=1.0, is_best=True,
                           general_loss=2.0 + d, general_drift=d) for i, d in enumerate(drifts)]

    assert AlertTracker().update_all([run_started(), *evals(0.5, 0.9)]) == []  # not measured
    started = replace(run_started(), general_prompts=32, drift_threshold=0.3)
    alerts = AlertTracker().update_all([started, *evals(0.5, 0.9, 1.2)])
    assert [a.key for a in alerts] == ["drift"]  # raised once
    old = event_from_dict({"type": "eval_logged", "step": 5, "eval_loss": 1.0,
                           "best_eval_loss": 1.0, "is_best": True, "time": 0.0})
    assert old.general_loss is None and old.general_drift is None


# --- review -------------------------------------------------------------------------------------


def test_review_offers_the_general_prompts_and_reads_them_without_answers(tmp_path):
    from core.review import GENERAL_SAMPLE, load_prompts, scan_workspace

    choices = scan_workspace(tmp_path, "bundled:smollm2-135m-instruct")
    assert ("sample", GENERAL_SAMPLE) in [value for _, value in choices.prompts]
    prompts, described = load_prompts(GENERAL_SAMPLE, limit=10)
    assert described == GENERAL_SAMPLE and len(prompts) == 10
    assert all(p.reference is None and p.messages[-1]["role"] == "user" for p in prompts)


def test_tunetop_train_prints_drift_at_each_evaluation_and_the_alert(drift_run):
    from io import StringIO

    from rich.console import Console

    from tui.cli.train import EXIT_FINISHED, _print_events

    _, events, _ = drift_run
    out = StringIO()
    assert _print_events(iter(events), Console(file=out, width=400)) == EXIT_FINISHED
    text = out.getvalue()
    assert "general drift on 8 prompts" in text  # the start line
    assert text.count("; general drift +") == 2  # each evaluation's line
    assert text.count("General drift rising: forgetting: Step 12:") == 1


def test_a_prompts_file_without_prompts_fails_the_run_naming_the_field(tiny_model_dir, small_data,
                                                                       tmp_path):
    from core.engine import Engine
    from core.events import RunFailed

    bad = tmp_path / "general.jsonl"
    bad.write_text('{"text": "not a prompt"}\n')
    cfg = measure_drift(tiny_run_config(tiny_model_dir, small_data))
    cfg.eval.general_prompts = str(bad)
    events: list = []
    Engine(cfg, events.append, workspace=tmp_path / "runs").run()
    assert isinstance(events[-1], RunFailed)
    assert events[-1].reason.startswith(f"eval.general_prompts: {bad} holds no prompt.")
    assert "line 1" in events[-1].reason and "'messages' list ending in a user turn" in events[-1].reason
