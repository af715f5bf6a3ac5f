"""Events survive a JSON round trip, can be followed from a growing file and read as one
sentence each."""

from __future__ import annotations

import math

from core import events as ev


def test_round_trip_keeps_every_field_including_nan():
    step = ev.StepLogged(step=3, total_steps=10, epoch=0.3, loss=math.nan, learning_rate=1e-4,
                         grad_norm=1.5, tokens_per_second=900.0, samples_per_second=7.0,
                         elapsed_seconds=3.2, eta_seconds=9.0)
    import json

    back = ev.event_from_dict(json.loads(step.to_json()))
    assert isinstance(back, ev.StepLogged) and back.step == 3 and math.isnan(back.loss)
    assert back.time == step.time


def test_terminal_events_name_their_status_without_writing_it():
    stopped = ev.RunStopped(step=1, reason="Stopped on request.", checkpoint="")
    assert stopped.status == "stopped" and "status" not in stopped.to_dict()
    assert [cls.status for cls in ev.TERMINAL_EVENTS] == ["stopped", "finished", "failed"]


def test_read_events_skips_half_written_tail_and_resumes(tmp_path):
    path = tmp_path / "events.jsonl"
    first = ev.EvalLogged(step=5, eval_loss=1.0, best_eval_loss=1.0, is_best=True)
    second = ev.RunFailed(step=6, phase="train", reason="boom")
    line2 = second.to_json()
    path.write_text(first.to_json() + "\n" + line2[:10])
    events, offset = ev.read_events(str(path))
    assert [type(e) for e in events] == [ev.EvalLogged]
    with open(path, "a") as f:
        f.write(line2[10:] + "\n")
    more, offset2 = ev.read_events(str(path), offset)
    assert [type(e) for e in more] == [ev.RunFailed] and more[0].reason == "boom"
    assert offset2 == path.stat().st_size


def test_every_event_reads_as_one_plain_sentence():
    started = ev.RunStarted(run_dir="runs/r", run_name="r", model="m", method="lora", device="cpu",
                            precision="fp32", total_steps=40, num_train_rows=90, num_val_rows=10,
                            trainable_params=1_234_567, total_params=9_000_000, resumed_from_step=20)
    step = ev.StepLogged(step=3, total_steps=10, epoch=0.3, loss=1.23456, learning_rate=1e-4,
                         grad_norm=1.5, tokens_per_second=1234.4, samples_per_second=7.0,
                         elapsed_seconds=3.2, eta_seconds=9.0)
    lines = {
        started: "Run r: lora of m on cpu (fp32), 40 steps, 90 train / 10 val rows, 1,234,567 of "
                 "9,000,000 parameters trainable, resumed at step 20",
        step: "Step 3/10: loss 1.2346, lr 1.00e-04, 1,234 tok/s",
        ev.EvalLogged(step=5, eval_loss=1.0, best_eval_loss=1.0, is_best=True):
            "Step 5: validation loss 1.0000 (new best)",
        ev.EvalLogged(step=6, eval_loss=1.5, best_eval_loss=1.0, is_best=False):
            "Step 6: validation loss 1.5000",
        ev.CheckpointSaved(step=5, path="runs/r/checkpoints/checkpoint-5"):
            "Step 5: checkpoint runs/r/checkpoints/checkpoint-5",
        ev.MessageLogged(level="warning", message="Early stop."): "Early stop.",
        ev.EvalProgressed(step=20, done=3, total=8, elapsed_seconds=4.0):
            "Step 20: evaluating 3/8 batches",
        ev.PhaseChanged(phase="model", message="Loading the model m (lora, bf16 on cuda)"):
            "Loading the model m (lora, bf16 on cuda)",
        ev.PhaseChanged(phase="tokenize", message="Tokenizing training rows", done=64, total=90):
            "Tokenizing training rows 64/90",
        ev.RunFinished(step=40, output_path="runs/r/final", final_eval_loss=None, best_eval_loss=None,
                       elapsed_seconds=61.6):
            "Finished at step 40 in 62s; best validation loss n/a; output runs/r/final",
        ev.RunStopped(step=12, reason="Stopped on request.", checkpoint=""):
            "Stopped at step 12: Stopped on request",
        ev.RunFailed(step=0, phase="setup", reason="No model.", suggestion="Check the path."):
            "Failed during setup at step 0: No model. Fix: Check the path.",
    }
    for event, line in lines.items():
        assert ev.describe_event(event) == line


def test_progress_events_round_trip_and_old_lines_read_without_new_fields():
    import json

    for event in (ev.EvalProgressed(step=20, done=3, total=8, elapsed_seconds=4.5),
                  ev.PhaseChanged(phase="tokenize", message="Tokenizing training rows", done=64, total=90)):
        assert ev.event_from_dict(json.loads(event.to_json())) == event
    old = {"type": "run_started", "run_dir": "r", "run_name": "r", "model": "m", "method": "lora",
           "device": "cpu", "precision": "fp32", "total_steps": 4, "num_train_rows": 8,
           "num_val_rows": 2, "trainable_params": 1, "total_params": 2, "time": 1.0}
    assert ev.event_from_dict(old).eval_steps == 0


DAMAGED_LINES = [
    '{"type": "step_logged", "step": "4", "total_steps": 10, "epoch": 0.4, "loss": 1.0, '
    '"learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_second": 1.0, '
    '"samples_per_second": 1.0, "elapsed_seconds": 1.0, "eta_seconds": 1.0}',   # a string step
    '{"type": "step_logged", "step": 4, "total_steps": 10, "epoch": 0.4, "loss": null, '
    '"learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_second": 1.0, '
    '"samples_per_second": 1.0, "elapsed_seconds": 1.0, "eta_seconds": 1.0}',   # a null loss
    '{"type": "eval_logged", "step": 5, "eval_loss": 1.0, "best_eval_loss": 1.0, "is_best": 1}',
    '{"type": "run_failed", "step": 6, "phase": ["train"], "reason": "x"}',     # a list phase
    '{"type": "step_logged"}',                                                   # fields missing
    '{"type": "no_such_event"}',
    '[1, 2, 3]',
    '{"type": ["step_logged"]}',
    'not json at all',
]
"""One line each that parses as JSON (or not) but is no valid event."""


def test_lines_with_wrong_types_are_skipped_and_counted(tmp_path):
    from core.events import read_event_chunk

    good = ev.EvalLogged(step=5, eval_loss=1.0, best_eval_loss=1.0, is_best=True)
    path = tmp_path / "events.jsonl"
    lines = [good.to_json().encode(), *(line.encode() for line in DAMAGED_LINES),
             b"\xff\xfe not UTF-8", good.to_json().encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    chunk = read_event_chunk(str(path))
    assert [type(e) for e in chunk.events] == [ev.EvalLogged, ev.EvalLogged]
    assert chunk.damaged == len(DAMAGED_LINES) + 1 and chunk.offset == path.stat().st_size
    for event in chunk.events:
        ev.describe_event(event)  # every event read back can be shown


def test_an_int_fits_a_float_field_but_a_bool_fits_only_a_bool():
    back = ev.event_from_dict({"type": "eval_logged", "step": 5, "eval_loss": 2, "best_eval_loss": 2,
                               "is_best": False})
    assert back.eval_loss == 2
    import pytest

    with pytest.raises(TypeError):
        ev.event_from_dict({"type": "eval_logged", "step": True, "eval_loss": 2.0,
                            "best_eval_loss": 2.0, "is_best": False})
