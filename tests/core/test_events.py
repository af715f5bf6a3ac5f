"""Events survive a JSON round trip and can be followed from a growing file."""

from __future__ import annotations

import math

from core.events import EvalLogged, RunFailed, StepLogged, event_from_dict, read_events


def test_round_trip_keeps_every_field_including_nan():
    step = StepLogged(step=3, total_steps=10, epoch=0.3, loss=math.nan, learning_rate=1e-4,
                      grad_norm=1.5, tokens_per_second=900.0, samples_per_second=7.0,
                      elapsed_seconds=3.2, eta_seconds=9.0)
    import json

    back = event_from_dict(json.loads(step.to_json()))
    assert isinstance(back, StepLogged) and back.step == 3 and math.isnan(back.loss)
    assert back.time == step.time


def test_read_events_skips_half_written_tail_and_resumes(tmp_path):
    path = tmp_path / "events.jsonl"
    first = EvalLogged(step=5, eval_loss=1.0, best_eval_loss=1.0, is_best=True)
    second = RunFailed(step=6, phase="train", reason="boom")
    line2 = second.to_json()
    path.write_text(first.to_json() + "\n" + line2[:10])
    events, offset = read_events(str(path))
    assert [type(e) for e in events] == [EvalLogged]
    with open(path, "a") as f:
        f.write(line2[10:] + "\n")
    more, offset2 = read_events(str(path), offset)
    assert [type(e) for e in more] == [RunFailed] and more[0].reason == "boom"
    assert offset2 == path.stat().st_size
