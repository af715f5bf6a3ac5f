"""Time estimates and time budgets: the arithmetic, the probe on a real tiny model, and a
budgeted real run that ends inside its budget with its learning-rate schedule fitted."""

from __future__ import annotations

import math

import pytest
from helpers import tiny_run_config

from core.budget import refit_schedule
from core.config import RunConfig
from core.timing import (
    Throughput,
    budget_steps,
    cached_throughput,
    describe_duration,
    estimate_run_time,
    estimate_time,
    parse_duration,
    plan_run,
    shape_key,
    store_throughput,
)


@pytest.fixture(autouse=True)
def scratch_cache(tmp_path, monkeypatch):
    """Every test gets its own probe cache."""
    monkeypatch.setenv("TUNETOP_TIMING_CACHE", str(tmp_path / "timing.json"))


def figures(step: float = 2.0, eval_row: float = 0.1, save: float = 1.0, setup: float = 5.0,
            source: str = "probe") -> Throughput:
    return Throughput(step_seconds=step, eval_row_seconds=eval_row, save_seconds=save,
                      setup_seconds=setup, source=source, spread=0.1, device="cpu")


def test_durations_read_as_people_write_them():
    assert [parse_duration(t) for t in ("90s", "10m", "2h", "1h30m", "1.5h", " 8 min ")] == \
        [90, 600, 7200, 5400, 5400, 480]
    assert parse_duration("") is None and parse_duration(None) is None
    for bad in ("soon", "10", "0m", "-5m"):
        with pytest.raises(ValueError, match="like 90s, 10m|above zero"):
            parse_duration(bad)
    assert [describe_duration(s) for s in (42, 600, 7500)] == ["42 s", "10 min", "2 h 05 min"]


def test_a_bad_budget_or_row_cap_is_a_config_problem_naming_the_field():
    cfg = RunConfig()
    cfg.optim.time_budget = "later"
    cfg.eval.max_rows = -1
    fields = {p.field: p for p in cfg.errors()}
    assert "optim.time_budget" in fields and "10m" in fields["optim.time_budget"].message
    assert "eval.max_rows" in fields


def test_one_step_that_is_all_warmup_is_a_warning_before_start():
    cfg = RunConfig()
    cfg.optim.max_steps = 1
    warnings = [p for p in cfg.validate() if p.field == "optim.warmup_ratio"]
    assert warnings and warnings[0].severity == "warning"
    assert "learning rate 0" in warnings[0].message
    cfg.optim.warmup_ratio = 0.0
    assert not [p for p in cfg.validate() if p.field == "optim.warmup_ratio"]


def test_plan_counts_steps_evaluations_and_saves():
    cfg = RunConfig()
    cfg.optim.per_device_train_batch_size, cfg.optim.num_train_epochs = 8, 2
    cfg.eval.eval_steps = cfg.eval.save_steps = 10
    plan = plan_run(cfg, train_rows=400, val_rows=50)
    assert (plan.steps, plan.evals, plan.eval_rows, plan.final_eval_rows, plan.saves) == (100, 10, 50, 0, 10)
    assert plan.warmup_steps == 5
    cfg.eval.max_rows = 16
    capped = plan_run(cfg, train_rows=400, val_rows=50)
    assert (capped.eval_rows, capped.final_eval_rows) == (16, 50)


def test_estimate_sums_its_parts_and_warns_what_a_user_must_know():
    cfg = RunConfig()
    cfg.eval.eval_steps = 5
    plan = plan_run(cfg, train_rows=8000, val_rows=2000)  # 3000 steps, 600 full evaluations
    assert plan_run(cfg, train_rows=8000, val_rows=2000, steps=12).evals == 3  # at 5, 10 and 12
    estimate = estimate_time(plan, figures())
    assert estimate.train_seconds == 3000 * 2.0
    assert estimate.eval_seconds == pytest.approx(600 * 2000 * 0.1)
    assert estimate.drift_seconds == pytest.approx(600 * 32 * 0.1)  # 32 drift rows an evaluation
    assert estimate.total_seconds == pytest.approx(
        estimate.train_seconds + estimate.eval_seconds + estimate.drift_seconds
        + estimate.save_seconds + 5.0)
    text = " ".join(estimate.warnings)
    assert "time_budget" in text  # hours on this device
    assert "Evaluation" in text and "eval.max_rows" in text  # evaluation outweighs training
    assert dict(estimate.lines())["Time"] == describe_duration(estimate.total_seconds)
    assert "within about 10%" in estimate.sureness
    modelled = estimate_time(plan, figures(source="FLOPs model"))
    assert modelled.sureness.startswith("rough")


def test_drift_and_a_first_runs_base_answers_count_in_the_estimate(tmp_path, monkeypatch):
    """Drift scoring costs each evaluation its rows (scaled by length against a validation
    row); the base answers count only while no cache of the model holds them."""
    from core.data import read_prompts
    from core.forgetting import ANSWERS_ENV, AnswerCache, BaseAnswer, split_probe, uncached_answers
    from core.timing import DECODE_STEP_ROWS, GENERAL_PROMPT_TOKENS

    monkeypatch.setenv(ANSWERS_ENV, str(tmp_path / "answers"))
    cfg = RunConfig()
    cfg.optim.max_steps, cfg.eval.eval_steps = 30, 10
    assert uncached_answers(cfg, train_rows=400, val_rows=50) == 32  # eval.general_sample
    cfg.data.replay = 0.05
    assert uncached_answers(cfg, train_rows=400, val_rows=50) == 32 + 21  # and 400*0.05/0.95
    assert uncached_answers(cfg, train_rows=400, val_rows=0) == 21  # no drift without val rows
    cfg.data.replay = 0.0

    plan = plan_run(cfg, train_rows=400, val_rows=50, val_tokens=176.0, base_answers=32)
    rows = 32 * (GENERAL_PROMPT_TOKENS + 48) / 176.0
    assert plan.general_rows == pytest.approx(rows) and plan.base_answer_steps == 2 * 48
    estimate = estimate_time(plan, figures(eval_row=0.1))
    assert estimate.drift_seconds == pytest.approx(3 * rows * 0.1)
    assert estimate.base_answer_seconds == pytest.approx(96 * DECODE_STEP_ROWS * 0.1)
    lines = dict(estimate.lines())
    assert lines[" drift at 3 evals"] == describe_duration(estimate.drift_seconds)
    assert lines[" base answers (once)"] == describe_duration(estimate.base_answer_seconds)
    assert plan_run(cfg, train_rows=400, val_rows=0).general_rows == 0

    # Another run of the same model, revision, system prompt and cap finds them cached.
    prompts, _ = read_prompts(cfg.eval.general_prompts)
    sample, _ = split_probe(len(prompts), 32)
    cache = AnswerCache({"model": cfg.model.name_or_path, "revision": cfg.model.revision,
                         "system_prompt": cfg.data.default_system_prompt, "max_new_tokens": 48,
                         "weights": "float32"})
    cache.append([BaseAnswer(prompts[i], "An answer.", True) for i in sample[:30]])
    assert uncached_answers(cfg, train_rows=400, val_rows=50) == 2
    cfg.eval.general_max_new_tokens = 64  # a longer cap: other answers
    assert uncached_answers(cfg, train_rows=400, val_rows=50) == 32


def test_budget_steps_fill_the_budget_and_no_more():
    cfg = RunConfig()
    cfg.eval.eval_steps = cfg.eval.save_steps = 10
    t = figures(step=2.0, eval_row=0.05, save=3.0)

    def run_seconds(steps: int) -> float:  # what such a run costs, end included
        on_the_way = (steps - 1) // 10  # evaluations and checkpoints before the last step
        return 5.0 + steps * 2.0 + (on_the_way + 1) * 100 * 0.05 + (on_the_way + 2) * 3.0

    steps = budget_steps(600, t, cfg, val_rows=100, elapsed=5.0)
    assert run_seconds(steps) <= 600 * 0.95 < run_seconds(steps + 12)
    assert budget_steps(600, t, cfg, val_rows=100, elapsed=400, done_steps=150) >= 150
    assert budget_steps(1, t, cfg, val_rows=100) == 1  # never zero steps
    # Ending on an evaluation step: its evaluation and checkpoint are the end's, counted once
    # (64 s and 2 s of bookkeeping in the 66.5 s the margin leaves; counted twice, 20 steps
    # would not fit).
    assert run_seconds(20) == 64.0
    assert budget_steps(70, t, cfg, val_rows=100, elapsed=5.0) == 20


def test_refit_schedule_ends_the_cosine_at_the_new_length():
    import torch
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=5, num_training_steps=1000)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert refit_schedule(scheduler, total_steps=40, warmup=2)
    for _ in range(29):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] < 0.01  # step 39 of 40: nearly at the end
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)


def test_cache_is_keyed_by_shape_not_by_learning_rate(tmp_path):
    cfg = RunConfig()
    key = shape_key(cfg, "cpu", 300)
    cfg.optim.learning_rate = 1e-5
    cfg.optim.max_steps = 7
    assert shape_key(cfg, "cpu", 300) == key
    cfg.optim.per_device_train_batch_size = 2
    assert shape_key(cfg, "cpu", 300) != key
    assert cached_throughput(key) is None
    store_throughput(key, figures())
    back = cached_throughput(key)
    assert back.step_seconds == 2.0 and back.source == "cached probe"


def test_probe_measures_a_real_tiny_model_and_is_cached(tiny_model_dir, small_data):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=-1, num_train_epochs=1)
    said: list[str] = []
    first = estimate_run_time(cfg, on_progress=said.append)
    t = first.throughput
    assert t.source == "probe" and t.step_seconds > 0 and t.eval_row_seconds > 0
    assert any("measuring step" in s for s in said)
    assert first.plan.steps == math.ceil(first.plan.train_rows / 4)
    assert first.total_seconds > first.train_seconds > 0
    again = estimate_run_time(cfg)  # the same shape: no second probe
    assert again.throughput.source == "cached probe"
    assert again.throughput.step_seconds == t.step_seconds


def test_flops_model_stands_in_without_a_probe(tiny_model_dir, small_data):
    cfg = tiny_run_config(tiny_model_dir, small_data)
    estimate = estimate_run_time(cfg, probe=False)
    assert estimate.throughput.source == "FLOPs model"
    assert estimate.train_seconds > 0 and "GFLOP/s" in estimate.throughput.detail


def test_a_budgeted_run_ends_inside_its_budget_with_its_schedule_fitted(tiny_model_dir, small_data, tmp_path):
    """Fifty epochs would be a thousand steps; a 30 s budget sizes them from the run's own
    step times, the learning rate still decays to (nearly) zero at the last step, and the
    evaluations read eval.max_rows rows except the last, which reads the whole split."""
    from core.engine import Engine
    from core.events import EvalProgressed, RunFinished, RunStarted, StepLogged

    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=-1, num_train_epochs=50,
                          time_budget="30s", lr_scheduler_type="linear", warmup_ratio=0.0)
    cfg.eval.eval_steps = cfg.eval.save_steps = 20
    cfg.eval.max_rows = 8
    cfg.eval.keep_best = False
    cfg.eval.logging_steps = 1  # a log after each resize
    events: list = []
    engine = Engine(cfg, sink=events.append, workspace=tmp_path / "runs")
    final = engine.run()
    assert isinstance(final, RunFinished), final
    started = next(e for e in events if isinstance(e, RunStarted))
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert started.budget_seconds == 30
    assert 1 <= final.step < 1000  # sized down from the epochs
    # Inside the budget, unless the machine is so loaded that setup and the first step
    # alone used it up: then the run stops at the first step it can.
    assert final.elapsed_seconds <= 30 or final.step == 1, final
    assert steps[-1].total_steps == final.step  # the run knew where it would end
    # The logged rate is the next step's; once a step ran on the last refitted schedule, the
    # last one is (nearly) zero. (On a loaded machine the last resize can end the run at
    # once, leaving no step to refit: refit_schedule has its own test.)
    last_resize = max((i for i in range(1, len(steps))
                       if steps[i].total_steps != steps[i - 1].total_steps), default=0)
    if len(steps) - last_resize >= 2:
        assert steps[-1].learning_rate < 0.15 * cfg.optim.learning_rate
    evals = [e for e in events if isinstance(e, EvalProgressed) and e.done == e.total]
    assert evals[-1].total == 2  # the whole split: 10 rows in batches of 8
    assert all(e.total == 1 for e in evals[:-1])  # eval.max_rows: 8 rows, one batch


def test_estimate_command_prints_the_time_measured_then_cached(tiny_model_dir, small_data, tmp_path, capsys):
    from tui.cli import main

    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=1)
    path = tmp_path / "run.yaml"
    cfg.save(path)
    assert main(["estimate", str(path), "--no-probe"]) == 0
    out, err = capsys.readouterr()
    assert "Time " in out and "1 train steps" in out and "FLOPs model, rough" in out
    assert "learning rate 0" in err  # max_steps 1 is all warm-up: said before the run
    assert main(["estimate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "from" in out and "probe, within about" in out and "measuring step" in err
    assert main(["estimate", str(path), "--no-probe"]) == 0
    assert "cached probe" in capsys.readouterr().out


def test_evaluation_batches_are_padding_free_like_training(tiny_model_dir, small_data, tmp_path):
    """One flat sequence per evaluation batch, the rows told apart by position ids: no pad
    token is computed, in evaluation as in training; eval.max_rows caps its rows."""
    from core.engine import Engine

    cfg = tiny_run_config(tiny_model_dir, small_data)
    cfg.eval.max_rows = 6
    engine = Engine(cfg, workspace=tmp_path / "runs")
    try:
        engine.setup()
        trainer = engine._trainer
        assert len(trainer.eval_dataset) == 6
        for loader in (trainer.get_train_dataloader(), trainer.get_eval_dataloader()):
            batch = next(iter(loader))
            assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch
            assert (batch["position_ids"] == 0).sum() > 1  # several rows in the one sequence
    finally:
        engine.cleanup()
