"""Resuming continues exactly: step count, learning rate and losses match an uninterrupted run."""

from __future__ import annotations

import threading

from helpers import tiny_run_config

from core.engine import Engine
from core.events import RunFinished, RunStarted, RunStopped, StepLogged


def _steps(events):
    return {e.step: e for e in events if isinstance(e, StepLogged)}


def test_resume_matches_an_uninterrupted_run(tiny_model_dir, small_data, tmp_path):
    def config():
        cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=10)
        cfg.eval.logging_steps = 1
        cfg.eval.eval_steps = cfg.eval.save_steps = 5
        return cfg

    straight: list = []
    Engine(config(), straight.append, workspace=tmp_path / "a").run()
    assert isinstance(straight[-1], RunFinished)

    first: list = []
    engine: Engine | None = None
    asked = threading.Event()

    def sink(event):
        first.append(event)
        if isinstance(event, StepLogged) and event.step == 3 and not asked.is_set():
            asked.set()
            engine.stop()

    engine = Engine(config(), sink, workspace=tmp_path / "b")
    engine.run()
    stopped = first[-1]
    assert isinstance(stopped, RunStopped) and stopped.step == 4

    second: list = []
    Engine(config(), second.append, workspace=tmp_path / "b", resume_dir=engine.run_dir).run()
    assert next(e for e in second if isinstance(e, RunStarted)).resumed_from_step == 4
    assert isinstance(second[-1], RunFinished) and second[-1].step == 10

    a, b = _steps(straight), _steps(second)
    assert sorted(b) == list(range(5, 11))
    for step in range(5, 11):
        assert abs(a[step].loss - b[step].loss) < 1e-3, (step, a[step].loss, b[step].loss)
        assert abs(a[step].learning_rate - b[step].learning_rate) < 1e-12
    before = _steps(first)
    assert all(abs(a[s].loss - before[s].loss) < 1e-3 for s in range(1, 5))


def test_publish_is_all_or_nothing_and_leftovers_are_cleared(tmp_path):
    from core.rundir import COMPLETE_MARKER, complete_checkpoints, publish_checkpoint, remove_staging, staging_dir

    root = tmp_path / "checkpoints"
    staging = staging_dir(root, 8)
    (staging / "checkpoint-8").mkdir(parents=True)
    (staging / "checkpoint-8" / "adapter_model.safetensors").write_bytes(b"weights")
    assert complete_checkpoints(tmp_path) == []  # being written: not a checkpoint yet
    (root / "checkpoint-8").mkdir()  # a half-written one from a crash at the same step
    (root / "checkpoint-8" / "optimizer.pt").write_bytes(b"half")
    final = publish_checkpoint(staging, 8)
    assert final == root / "checkpoint-8" and not staging.exists()
    assert sorted(p.name for p in final.iterdir()) == [COMPLETE_MARKER, "adapter_model.safetensors"]
    assert complete_checkpoints(tmp_path) == [final]

    (staging_dir(root, 9) / "checkpoint-9").mkdir(parents=True)  # killed while saving
    (root / "checkpoint-10").mkdir()  # an unmarked one (written by hand, or an old crash)
    removed = remove_staging(root)
    assert sorted(p.name for p in removed) == [".saving-checkpoint-9", "checkpoint-10"]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-8"]
