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


def test_a_full_disk_reported_as_a_plain_exception_is_still_a_full_disk(
        tiny_model_dir, small_data, tmp_path, monkeypatch):
    """The tokenizer's save raises ``Exception(... No space left on device ...)``: no errno."""
    from transformers import PreTrainedTokenizerBase

    def full(self, *args, **kwargs):
        raise Exception("Failed to write tokenizer.json: No space left on device (os error 28)")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", full)
    _, events = run(tiny_run_config(tiny_model_dir, small_data, max_steps=2), tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed), failed
    assert failed.reason.startswith("The disk is full while writing during save"), failed.reason
    assert "Free disk space" in failed.suggestion and "resume" in failed.suggestion


def test_describe_failure_looks_through_the_exception_chain():
    from core.failures import describe_failure

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/optimizer.pt")
        except OSError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as wrapped:
        reason, fix = describe_failure(wrapped, "save")
    assert reason.startswith("The disk is full while writing during save (/runs/x/optimizer.pt)")
    assert "Free disk space" in fix


def refuse_mkdir_under(monkeypatch, root, error: OSError) -> None:
    """Creating any directory under ``root`` fails with ``error`` (a read-only disk; root
    ignores permission bits, so a chmod cannot stand in for one)."""
    import pathlib

    real = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(root)):
            raise type(error)(error.errno, error.strerror, str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)


def test_a_read_only_workspace_fails_in_setup_with_the_fix(tmp_path, monkeypatch):
    from core.config import RunConfig

    refuse_mkdir_under(monkeypatch, tmp_path / "ro", OSError(errno.EROFS, "Read-only file system"))
    _, events = run(RunConfig(), tmp_path / "ro" / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "setup", failed
    assert failed.reason.startswith("The workspace is on a read-only file system (")
    assert str(tmp_path / "ro" / "runs") in failed.reason
    assert "--workspace" in failed.suggestion and "output_dir" in failed.suggestion


def test_detach_into_a_file_or_a_read_only_workspace_says_what_to_do(tmp_path, monkeypatch, capsys):
    from core.config import RunConfig
    from tui.cli import main

    config = tmp_path / "run.yaml"
    RunConfig(run_name="r").save(config)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", str(config), "--detach", "--workspace", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert f"{blocker} is a file, not a directory" in err and "Fix: " in err and "--workspace" in err
    assert "Traceback" not in err and blocker.read_text() == "not a directory"

    refuse_mkdir_under(monkeypatch, tmp_path / "ro", PermissionError(errno.EACCES, "Permission denied"))
    assert main(["train", str(config), "--detach", "--workspace", str(tmp_path / "ro")]) == 1
    err = capsys.readouterr().err
    assert f"Permission denied ({tmp_path / 'ro'}" in err and "a disk you can write to" in err
