"""Alerts from event streams: non-finite values, overfitting, plateaus, early stop, failures."""

from __future__ import annotations

import math

import pytest


from fakes import nonfinite_series, overfit_series, step, training_series  # noqa: E402

from core.alerts import (  # noqa: E402
    AlertTracker,
    check_early_stop,
    check_failure,
    check_flat_loss,
    check_nonfinite,
    check_rising_validation,
)
from core.events import MessageLogged, RunFailed, RunStopped  # noqa: E402


def test_nonfinite_loss_or_grad_norm_asks_to_stop():
    assert check_nonfinite(step(10, 1.0)) is None
    alert = check_nonfinite(step(10, math.nan))
    assert alert and alert.stop_run and alert.level == "error" and "loss nan" in alert.detail
    alert = check_nonfinite(step(11, 1.0, grad_norm=math.inf))
    assert alert and "gradient norm inf" in alert.detail


def test_rising_validation_loss_names_the_best_checkpoint():
    assert check_rising_validation([(20, 1.4), (40, 1.1), (60, 1.15)]) is None  # one rise only
    alert = check_rising_validation([(20, 1.4), (40, 1.1), (60, 1.15), (80, 1.22)])
    assert alert and "step 40" in alert.detail and "1.1000" in alert.detail
    assert check_rising_validation([(20, 1.4), (40, 1.1), (60, 1.05), (80, 1.0)]) is None
    assert check_rising_validation([(20, 0.9), (40, 1.3), (60, 1.2), (80, 1.25)]) is None  # not monotonic


def test_flat_loss_needs_a_full_window_of_nearly_equal_values():
    flat = [(i, 1.2345 + (0.001 if i % 2 else 0.0)) for i in range(20)]
    assert check_flat_loss(flat[:10]) is None
    alert = check_flat_loss(flat)
    assert alert and alert.key == "flat" and "1.23" in alert.detail
    falling = [(i, 2.0 - i * 0.05) for i in range(20)]
    assert check_flat_loss(falling) is None


def test_early_stop_from_message_or_stop_reason():
    msg = MessageLogged(level="warning", message="Early stop at step 100: validation loss has not improved.",
                        early_stop=True)
    assert check_early_stop(msg).key == "early-stop"
    assert check_early_stop(RunStopped(step=5, reason="Stopped on request.", checkpoint="")) is None


def test_early_stop_is_the_event_flag_not_the_text():
    said = MessageLogged(level="info", message="Early stop is on: patience 3 evaluations.")
    assert check_early_stop(said) is None
    flagged = MessageLogged(level="warning", message="Stopped at step 40: no better loss.", early_stop=True)
    assert "Stopped at step 40" in check_early_stop(flagged).detail


def test_failure_keeps_reason_and_suggestion():
    alert = check_failure(RunFailed(step=3, phase="model", reason="Out of memory during model.", suggestion="Use qlora."))
    assert alert.key == "failed" and "Out of memory" in alert.detail and "Fix: Use qlora." in alert.detail
    nan = check_failure(RunFailed(step=3, phase="train", reason="Loss became nan at step 4"))
    assert nan.key == "nonfinite"


def test_tracker_on_recorded_streams_raises_each_alert_once():
    tracker = AlertTracker()
    keys = [a.key for a in tracker.update_all(nonfinite_series())]
    assert keys == ["nonfinite"]  # the engine's RunFailed for the same cause is not repeated
    tracker = AlertTracker()
    keys = [a.key for a in tracker.update_all(overfit_series())]
    assert "overfit@40" in keys and "early-stop" in keys
    assert keys.count("overfit@40") == 1
    assert AlertTracker().update_all(training_series()) == []


def test_the_callbacks_early_stop_raises_the_alert():
    """The engine's callback flags its early-stop line; the tracker keys on that flag."""
    import threading
    from types import SimpleNamespace

    from transformers import TrainerControl

    from core.callbacks import EventCallback

    events = []
    callback = EventCallback(events.append, threading.Event(), threading.Event(), lambda: 0, patience=2)
    control = TrainerControl()
    for step, loss in ((10, 1.0), (20, 1.1), (30, 1.2)):
        callback.on_evaluate(None, SimpleNamespace(global_step=step), control, metrics={"eval_loss": loss})
    assert control.should_training_stop and events[-1].early_stop
    assert "early-stop" in [a.key for a in AlertTracker().update_all(events)]


# --- each alert fires in a real run made to trigger it ----------------------------------------


@pytest.fixture(scope="module")
def code_words(tmp_path_factory):
    """24 short rows, 'Code for item N?' answered by 4 random words: nothing generalises, so a
    model trained hard on 18 of them memorises them and gets worse on the other 6."""
    import json
    import random

    rng = random.Random(0)
    words = ("amber birch cedar delta ember fjord grove heron iris juniper kelp lotus maple "
             "nectar onyx pine quartz raven sage tulip umber violet willow yarrow zinc").split()
    rows = [{"messages": [{"role": "user", "content": f"Code for item {i}?"},
                          {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(4))}]}
            for i in range(24)]
    path = tmp_path_factory.mktemp("codes") / "codes.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def alert_run(cfg, workspace):
    """Train ``cfg`` for real; its events and the alerts the tracker raises from them."""
    from core.engine import Engine

    events: list = []
    Engine(cfg, events.append, workspace=workspace).run()
    return events, AlertTracker().update_all(events)


def constant_lr(model_dir, data, steps, lr, method="lora"):
    from helpers import tiny_run_config

    cfg = tiny_run_config(model_dir, data, max_steps=steps, learning_rate=lr,
                          lr_scheduler_type="constant", warmup_ratio=0.0)
    cfg.method = method
    cfg.eval.logging_steps = 1
    cfg.data.validation_fraction = 0
    cfg.eval.save_steps = cfg.eval.eval_steps = steps
    return cfg


def test_a_learning_rate_that_diverges_raises_the_diverging_alert(tiny_model_dir, code_words, tmp_path,
                                                                  monkeypatch):
    """validate() refuses a learning rate above 1e-2, which diverges on any model; bypassed here
    so that the tiny model diverges too (bigger models already diverge below that limit)."""
    from core.config import RunConfig
    from core.events import RunFinished

    monkeypatch.setattr(RunConfig, "validate", lambda self: [])
    events, alerts = alert_run(constant_lr(tiny_model_dir, code_words, 10, 1.0, "full"), tmp_path)
    assert isinstance(events[-1], RunFinished), events[-1]
    (alert,) = [a for a in alerts if a.key == "diverging"]
    assert "learning rate is too high" in alert.detail and "x its lowest average" in alert.detail


def test_training_far_past_the_best_validation_loss_raises_overfit_then_early_stop(
        tiny_model_dir, code_words, tmp_path):
    from core.events import EvalLogged, RunFinished

    cfg = constant_lr(tiny_model_dir, code_words, 40, 1e-2, "full")
    cfg.data.validation_fraction = 0.25
    cfg.eval.logging_steps = 2
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    cfg.eval.save_total_limit = 1
    events, alerts = alert_run(cfg, tmp_path)
    keys = [a.key for a in alerts]
    assert isinstance(events[-1], RunFinished) and events[-1].step < 40, events[-1]  # stopped early
    overfit = next(a for a in alerts if a.key.startswith("overfit@"))
    best = min((e for e in events if isinstance(e, EvalLogged)), key=lambda e: e.eval_loss)
    assert overfit.key == f"overfit@{best.step}" and f"step {best.step}" in overfit.detail
    assert keys.index(overfit.key) < keys.index("early-stop")


def test_a_learning_rate_near_zero_raises_the_flat_alert(tiny_model_dir, code_words, tmp_path):
    events, alerts = alert_run(constant_lr(tiny_model_dir, code_words, 20, 1e-9), tmp_path)
    assert [a.key for a in alerts] == ["flat"]
    assert "from step 1 to 20" in alerts[0].detail


def dpo_step(n: int, margin: float, accuracy: float = 0.8, chosen: float = 0.1):
    from dataclasses import replace

    return replace(step(n, 1.0 - 0.02 * n), reward_margin=margin, reward_accuracy=accuracy,
                   reward_chosen=chosen, reward_rejected=chosen - margin)


def test_a_stalled_reward_margin_warns_until_the_pairs_are_learnt():
    tracker = AlertTracker()
    growing = [dpo_step(n, 0.1 * n) for n in range(1, 11)]
    assert tracker.update_all(growing) == []
    stalled = [dpo_step(n, 1.0 - 0.01 * (n - 11)) for n in range(11, 21)]
    alerts = tracker.update_all(stalled)
    assert [a.key for a in alerts] == ["margin-stalled"]
    assert "preference accuracy at 80%" in alerts[0].detail and "preference.beta" in alerts[0].detail
    # At 100% accuracy a flat margin is the pairs learnt, not a stall.
    learnt = AlertTracker()
    assert learnt.update_all(dpo_step(n, 1.0, accuracy=1.0) for n in range(1, 21)) == []


def test_a_falling_chosen_reward_warns_even_while_the_margin_grows():
    tracker = AlertTracker()
    steps = [dpo_step(n, 0.2 * n, chosen=-0.15 * n) for n in range(1, 9)]
    keys = [a.key for a in tracker.update_all(steps)]
    assert keys == ["chosen-falling"]
    assert tracker.raised["chosen-falling"].detail.startswith(
        "The chosen answers' reward averages -0.600 over the last 5")  # steps 2-6


def test_sft_steps_never_raise_preference_alerts_and_their_rules_are_apart():
    from core.alerts import rules_summary

    tracker = AlertTracker()
    assert tracker.update_all(step(n, 1.0 - 0.01 * n) for n in range(1, 30)) == []
    assert "margin" not in rules_summary() and "chosen reward < -0.5" in rules_summary(True)
