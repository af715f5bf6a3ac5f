"""What the screens say is what gets trained: a finished run never trains again, resuming at
the last step trains nothing, "train longer" starts from the final weights, one process
trains a run at a time, NaN stops a run without publishing what it poisoned, and data
mistakes leave no run directory. Each entry point (engine, CLI, detached launcher, worker)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading

import pytest
from helpers import tiny_run_config

from core.alerts import AlertTracker
from core.config import RunConfig
from core.detach import launch_detached
from core.engine import Engine
from core.events import (
    CheckpointSaved,
    RunFailed,
    RunFinished,
    RunStarted,
    StepLogged,
    read_events,
)
from core.rundir import (
    RunLocked,
    RunRefused,
    complete_checkpoints,
    lock_holder,
)
from core.runs import run_progress, train_longer_config

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def tunetop(*args):
    return subprocess.run([sys.executable, "-m", "tui.cli", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=600)


def run(cfg, workspace, **kwargs):
    events: list = []
    engine = Engine(cfg, events.append, workspace=workspace, **kwargs)
    engine.run()
    return engine, events


def four_steps(model_dir, data_path):
    cfg = tiny_run_config(model_dir, data_path, max_steps=4)
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    return cfg


def snapshot(run_dir):
    """Bytes of what must never change once a run has finished."""
    return {p.relative_to(run_dir): p.read_bytes()
            for p in [run_dir / "events.jsonl", *sorted((run_dir / "final").iterdir())]}


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, small_data, tmp_path_factory):
    """A tiny LoRA run that finished its 4 steps (checkpoints at 2 and 4); copy it to change it."""
    engine, events = run(four_steps(tiny_model_dir, small_data), tmp_path_factory.mktemp("done"))
    assert isinstance(events[-1], RunFinished), events[-1]
    return engine.run_dir


def copy_run(run_dir, tmp_path):
    target = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, target)
    return target


# --- a finished run is not resumed -----------------------------------------------------------


def test_the_engine_refuses_to_resume_a_finished_run(finished_run, tiny_model_dir, small_data):
    before = snapshot(finished_run)
    _, events = run(four_steps(tiny_model_dir, small_data), finished_run.parent, resume_dir=finished_run)
    (failed,) = events
    assert isinstance(failed, RunFailed) and failed.phase == "setup"
    assert "finished all its 4 steps" in failed.reason
    assert f"tunetop train --from {finished_run}" in failed.suggestion
    assert snapshot(finished_run) == before  # no event, no step, final/ untouched
    assert run_progress(finished_run).status == "finished" and lock_holder(finished_run) is None


def test_the_cli_refuses_it_and_prints_the_train_longer_command(finished_run):
    before = snapshot(finished_run)
    result = tunetop("train", "--resume", finished_run)
    assert result.returncode == 2, result.stderr
    assert "a finished run is not resumed" in result.stderr
    assert f"Fix: to train longer, start a new run from its final weights with a fresh schedule: " \
           f"`tunetop train --from {finished_run}`" in result.stderr
    assert "Traceback" not in result.stderr and snapshot(finished_run) == before


def test_the_detached_launcher_and_the_worker_refuse_it(finished_run):
    before = snapshot(finished_run)
    with pytest.raises(RunRefused, match="finished all its 4 steps"):
        launch_detached(RunConfig(), finished_run.parent, resume_dir=finished_run)
    assert not (finished_run / "worker.pid").exists()  # nothing was started
    worker = subprocess.run([sys.executable, "-m", "core.worker", str(finished_run), "--resume"],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert worker.returncode == 1
    assert "not started" in worker.stdout and "finished all its 4 steps" in worker.stdout
    assert "Traceback" not in worker.stdout + worker.stderr
    assert not (finished_run / "worker.pid").exists() and snapshot(finished_run) == before


def test_a_run_killed_after_its_last_checkpoint_writes_final_without_training(finished_run, tmp_path,
                                                                             tiny_model_dir, small_data):
    """Killed while writing final/ (or stopped on its last step): the resume trains nothing."""
    run_dir = copy_run(finished_run, tmp_path)
    events_file = run_dir / "events.jsonl"
    lines = events_file.read_text().splitlines(keepends=True)
    events_file.write_text("".join(line for line in lines if '"run_finished"' not in line))
    shutil.rmtree(run_dir / "final")
    _, events = run(four_steps(tiny_model_dir, small_data), run_dir.parent, resume_dir=run_dir)
    assert isinstance(events[-1], RunFinished) and events[-1].step == 4, events[-1]
    assert not [e for e in events if isinstance(e, (StepLogged, CheckpointSaved))]
    best = run_dir / "checkpoints" / "checkpoint-4"  # the lower validation loss of the two
    assert run_progress(run_dir).best_eval_step == 4
    weights = "adapter_model.safetensors"
    assert (run_dir / "final" / weights).read_bytes() == (best / weights).read_bytes()
    assert not (run_dir / "final" / "optimizer.pt").exists()
    progress = run_progress(run_dir)
    assert progress.status == "finished" and progress.step == 4 and progress.fraction == 1.0


# --- train longer ---------------------------------------------------------------------------


def test_train_longer_starts_from_the_final_weights_with_a_fresh_schedule(finished_run, tmp_path):
    import torch
    from safetensors.torch import load_file

    config = train_longer_config(finished_run)
    assert config.model.adapter == str(finished_run) and config.run_name == f"{finished_run.name}-more"
    events: list = []
    engine = Engine(config, events.append, workspace=tmp_path / "runs")
    engine.setup()
    try:
        started = next(e for e in events if isinstance(e, RunStarted))
        assert started.resumed_from_step == 0 and started.total_steps == 4  # its own schedule
        saved = load_file(finished_run / "final" / "adapter_model.safetensors")
        live = {n: p for n, p in engine._trainer.model.named_parameters() if p.requires_grad}
        assert len(live) == len(saved) > 0
        for name, value in saved.items():
            match = [p for n, p in live.items() if n.replace(".default", "") == name]
            assert len(match) == 1 and torch.equal(match[0].detach(), value), name
    finally:
        engine.cleanup()


def test_the_cli_trains_longer_as_a_new_run(finished_run, tmp_path, capsys):
    from tui.cli import main

    before = snapshot(finished_run)
    code = main(["train", "--from", str(finished_run), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 0, err
    more = tmp_path / "ws" / f"{finished_run.name}-more"
    assert RunConfig.load(more / "config.yaml").model.adapter == str(finished_run)
    assert (more / "final" / "adapter_model.safetensors").is_file()
    assert run_progress(more).step == 4 and snapshot(finished_run) == before
    assert f"train longer with `tunetop train --from {more}`" in err


def test_train_longer_of_a_full_fine_tune_starts_from_its_final_model(tmp_path):
    run_dir = tmp_path / "full-run"
    (run_dir / "final").mkdir(parents=True)
    RunConfig(method="full", run_name="full-run").save(run_dir / "config.yaml")
    (run_dir / "events.jsonl").write_text(RunFinished(step=3, output_path=str(run_dir / "final"),
                                                      final_eval_loss=None, best_eval_loss=None,
                                                      elapsed_seconds=1.0).to_json() + "\n")
    config = train_longer_config(run_dir)
    assert config.model.name_or_path == str(run_dir / "final") and config.model.adapter is None
    (run_dir / "events.jsonl").write_text("")
    with pytest.raises(RunRefused, match="has not finished"):
        train_longer_config(run_dir)


def test_a_wrong_adapter_is_refused_before_a_run_directory_exists(tiny_model_dir, small_data, tmp_path):
    cfg = four_steps(tiny_model_dir, small_data)
    cfg.model.adapter = str(tmp_path / "nowhere")
    _, events = run(cfg, tmp_path / "runs")
    assert isinstance(events[-1], RunFailed) and "model.adapter" in events[-1].reason
    assert not (tmp_path / "runs").exists()


# --- one process trains a run at a time -----------------------------------------------------


def test_a_second_resume_of_a_run_being_resumed_is_refused_everywhere(tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=6)
    cfg.eval.logging_steps = 1
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    engine = None

    def stop_at_2(event):
        if isinstance(event, StepLogged) and event.step == 2:
            engine.stop()

    engine = Engine(cfg, stop_at_2, workspace=tmp_path / "runs")
    engine.run()
    run_dir, stopped = engine.run_dir, engine.final_event.step
    assert complete_checkpoints(run_dir)[-1].name == f"checkpoint-{stopped}"

    training, release = threading.Event(), threading.Event()
    first: list = []

    def hold_at_first_step(event):
        first.append(event)
        if isinstance(event, StepLogged) and not training.is_set():
            training.set()
            release.wait(300)

    resumed = Engine(cfg, hold_at_first_step, workspace=tmp_path / "runs", resume_dir=run_dir)
    resumed.start()
    try:
        assert training.wait(300), first[-1:]
        assert lock_holder(run_dir) == os.getpid()
        # The app and the engine
        _, second = run(cfg, tmp_path / "runs", resume_dir=run_dir)
        (refused,) = second
        assert isinstance(refused, RunFailed) and refused.phase == "setup"
        assert f"being trained right now by process {os.getpid()}" in refused.reason
        assert "tunetop attach" in refused.suggestion
        # The command line, the detached launcher and the worker
        cli = tunetop("train", "--resume", run_dir)
        assert cli.returncode == 2 and f"by process {os.getpid()}" in cli.stderr, cli.stderr
        with pytest.raises(RunLocked):
            launch_detached(cfg, tmp_path / "runs", resume_dir=run_dir)
        worker = subprocess.run([sys.executable, "-m", "core.worker", str(run_dir), "--resume"],
                                capture_output=True, text=True, env=ENV, timeout=600)
        assert worker.returncode == 1 and "not started" in worker.stdout
        assert not (run_dir / "worker.pid").exists()  # the refused worker touched nothing
    finally:
        release.set()
        assert resumed.join(600)
    assert isinstance(first[-1], RunFinished) and first[-1].step == 6, first[-1]
    assert lock_holder(run_dir) is None
    on_disk, _ = read_events(str(run_dir / "events.jsonl"))
    steps = [e.step for e in on_disk if isinstance(e, StepLogged)]
    assert steps == list(range(1, 7))  # no duplicates from a second trainer
    assert [e.step for e in on_disk if isinstance(e, CheckpointSaved)] == sorted({2, stopped, 4, 6})
    assert sum(isinstance(e, RunFailed) for e in on_disk) == 0


# --- NaN stops the run and never reaches a checkpoint -----------------------------------------


def test_a_nan_weight_decay_stops_at_step_one_and_saves_nothing(tiny_model_dir, small_data, tmp_path,
                                                                monkeypatch):
    """validate() rejects NaN settings; the engine must be safe on its own all the same. (Of the
    other settings, a NaN learning rate is refused by the optimizer, and a NaN max_grad_norm
    only turns clipping off: the trainer clips when it is above 0.)"""
    monkeypatch.setattr(RunConfig, "validate", lambda self: [])
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=4, weight_decay=math.nan)
    cfg.eval.eval_steps = cfg.eval.save_steps = 1
    engine, events = run(cfg, tmp_path / "runs")
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.step == 1 and failed.phase == "train", failed
    assert "Weights became NaN or infinite" in failed.reason
    assert "no checkpoint was written before it" in failed.reason and "intact" not in failed.reason
    assert failed.suggestion == ("optim.weight_decay is not a finite number: set a real value (the "
                                 "default is optim.weight_decay 0.01) and start again.")
    assert not (engine.run_dir / "checkpoints").exists() or not any((engine.run_dir / "checkpoints").iterdir())
    assert not (engine.run_dir / "final").exists()
    assert not [e for e in events if isinstance(e, (StepLogged, CheckpointSaved))]
    assert [a.key for a in AlertTracker().update_all(events)] == ["nonfinite"]


def test_a_nan_validation_loss_stops_before_its_checkpoint(tiny_model_dir, small_data, tmp_path):
    import torch

    cfg = four_steps(tiny_model_dir, small_data)
    events: list = []
    engine = Engine(cfg, events.append, workspace=tmp_path / "runs")
    build = engine._build_trainer

    def build_with_nan_eval(*args):
        trainer = build(*args)
        compute = trainer.compute_loss

        def compute_loss(model, inputs, *a, **k):
            result = compute(model, inputs, *a, **k)
            if not model.training and trainer.state.global_step >= 4:  # the second evaluation
                nan = torch.tensor(float("nan"))
                result = (result[0] * nan, *result[1:]) if isinstance(result, tuple) else result * nan
            return result

        trainer.compute_loss = compute_loss
        return trainer

    engine._build_trainer = build_with_nan_eval
    engine.run()
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.phase == "eval" and failed.step == 4, failed
    assert "Validation loss became nan at step 4" in failed.reason
    assert "the last checkpoint, checkpoint-2, was checked before it was written" in failed.reason
    assert [c.name for c in complete_checkpoints(engine.run_dir)] == ["checkpoint-2"]
    assert not (engine.run_dir / "checkpoints" / ".saving-checkpoint-4").exists()
    assert not (engine.run_dir / "final").exists()


# --- data and model mistakes leave no run directory -------------------------------------------


def test_a_data_mistake_leaves_no_run_directory(tiny_model_dir, tmp_path):
    cfg = four_steps(tiny_model_dir, tmp_path / "missing.jsonl")
    _, events = run(cfg, tmp_path / "runs")
    assert isinstance(events[-1], RunFailed) and events[-1].phase == "data"
    assert "does not exist" in events[-1].reason
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="does not exist"):
        launch_detached(cfg, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_missing_model_leaves_no_run_directory(small_data, tmp_path):
    cfg = four_steps(tmp_path / "no-model", small_data)
    _, events = run(cfg, tmp_path / "runs")
    assert isinstance(events[-1], RunFailed) and events[-1].phase == "model"
    assert not (tmp_path / "runs").exists()


def test_a_directory_a_run_started_in_is_refused_but_a_fresh_launch_is_not(tiny_model_dir,
                                                                            small_data, tmp_path):
    """The detached launcher writes its launch phase before the engine starts: that is not a
    run. A RunStarted line is one, and training it again from the start is refused."""
    from core.events import PhaseChanged, RunStarted as Started

    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=2)
    launched = tmp_path / "runs" / "launched"
    launched.mkdir(parents=True)
    (launched / "events.jsonl").write_text(PhaseChanged(phase="launch", message="Loading").to_json() + "\n")
    engine, events = run(cfg, tmp_path / "runs", run_dir=launched)
    assert isinstance(events[-1], RunFinished), events[-1]
    trained = tmp_path / "runs" / "trained"
    trained.mkdir()
    started = Started(run_dir=str(trained), run_name="trained", model="m", method="lora",
                      device="cpu", precision="fp32", total_steps=2, num_train_rows=1,
                      num_val_rows=0, trainable_params=1, total_params=2)
    (trained / "events.jsonl").write_text(started.to_json() + "\n")
    _, events = run(cfg, tmp_path / "runs", run_dir=trained)
    assert isinstance(events[-1], RunFailed) and "already holds a run" in events[-1].reason
