"""Faults outside the model: a disk that fills during a save, an output path that cannot be
written, a model directory missing its weights. Each gives a clear reason and leaves the run
directory usable (the last complete checkpoint stays the one to resume from)."""

from __future__ import annotations

import errno
import shutil

from helpers import tiny_run_config
from transformers import Trainer

from core.engine import Engine
from core.events import RunFailed, RunFinished, RunStarted
from core.rundir import complete_checkpoints, latest_checkpoint


def run(cfg, workspace, **kwargs):
    events = []
    engine = Engine(cfg, events.append, workspace=workspace, **kwargs)
    engine.run()
    return engine, events


def test_disk_full_during_a_save_keeps_the_last_checkpoint_and_resumes(
        tiny_model_dir, small_data, tmp_path, monkeypatch):
    real = Trainer._save_optimizer_and_scheduler

    def fill_disk_at_step_12(self, output_dir):
        if self.state.global_step == 12:
            raise OSError(errno.ENOSPC, "No space left on device", f"{output_dir}/optimizer.pt")
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", fill_disk_at_step_12)
    engine, events = run(tiny_run_config(tiny_model_dir, small_data), tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "save", failed
    assert failed.reason.startswith("The disk is full while writing during save")
    assert "optimizer.pt" in failed.reason and "resume" in failed.suggestion
    checkpoints = engine.run_dir / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-6"], "the failed write left nothing"
    assert latest_checkpoint(engine.run_dir).name == "checkpoint-6"

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", real)  # space freed
    _, again = run(tiny_run_config(tiny_model_dir, small_data), tmp_path / "runs", resume_dir=engine.run_dir)
    assert next(e for e in again if isinstance(e, RunStarted)).resumed_from_step == 6
    assert isinstance(again[-1], RunFinished) and again[-1].step == 12
    assert [p.name for p in complete_checkpoints(engine.run_dir)] == ["checkpoint-6", "checkpoint-12"]


def test_an_output_path_that_is_a_file_fails_in_setup_with_the_path(tiny_model_dir, small_data, tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a directory")
    _, events = run(tiny_run_config(tiny_model_dir, small_data), blocker)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "setup", failed
    assert failed.reason.startswith("Cannot create the run directory") and str(blocker) in failed.reason
    assert "output_dir" in failed.suggestion
    assert blocker.read_text() == "not a directory"


def test_a_model_directory_without_weights_fails_before_any_run_file(tiny_model_dir, small_data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    engine, events = run(tiny_run_config(model, small_data), tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "model", failed
    assert str(model) in failed.reason and "safetensors" in failed.reason, failed.reason
    assert not (engine.run_dir / "checkpoints").exists()
