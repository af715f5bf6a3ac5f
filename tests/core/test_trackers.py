"""report_to: validated in the config, passed to the trainer, TensorBoard's events under the run
(read back with tensorboard), and no tracker token in any file of the run."""

from __future__ import annotations

from core.config import RunConfig
from core.trackers import TRACKER_DIR, tracker_env, tracker_names


def test_tensorboard_events_are_under_the_run_and_read_back(bundled_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events_file,) = (bundled_run / TRACKER_DIR / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events_file.parent))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert "train/loss" in tags and "eval/loss" in tags
    assert [e.step for e in accumulator.Scalars("train/loss")] == [1, 2]
    assert not (bundled_run / "checkpoints" / "runs").exists()


def test_no_tracker_token_is_written_to_the_run(bundled_run, tracker_token):
    assert [p for p in bundled_run.rglob("*") if p.is_file()
            and tracker_token.encode() in p.read_bytes()] == []


def test_report_to_is_validated_by_name():
    assert RunConfig.from_dict({"report_to": "tensorboard"}).validate() == []
    assert RunConfig.from_dict({"report_to": ["wandb", "mlflow"]}).validate() == []
    (problem,) = RunConfig.from_dict({"report_to": ["tensorbord"]}).validate()
    assert problem.field == "report_to" and "tensorboard" in problem.fix
    (problem,) = RunConfig.from_dict({"report_to": ["none", "wandb"]}).validate()
    assert "none" in problem.message
    assert tracker_names(["none"]) == [] and tracker_names(["wandb", "trackio"]) == ["wandb", "trackio"]


def test_local_trackers_write_under_the_run(tmp_path):
    env = tracker_env(["wandb", "mlflow", "trackio", "tensorboard"], tmp_path)
    assert env == {"WANDB_DIR": str(tmp_path.resolve() / "tracker"),
                   "MLFLOW_TRACKING_URI": (tmp_path.resolve() / "tracker" / "mlruns").as_uri(),
                   "TRACKIO_DIR": str(tmp_path.resolve() / "tracker" / "trackio")}


def test_a_tracker_that_is_not_installed_fails_the_run_with_the_fix(tiny_model_dir, small_data, tmp_path):
    from helpers import tiny_run_config

    from core.engine import Engine
    from core.events import RunFailed

    cfg = tiny_run_config(tiny_model_dir, small_data)
    cfg.report_to = ["mlflow"]  # not a dependency of tunetop
    events = []
    Engine(cfg, events.append, workspace=tmp_path / "ws").run()
    assert isinstance(events[-1], RunFailed)
    assert "report_to" in events[-1].reason and "pip install mlflow" in events[-1].reason
    assert not (tmp_path / "ws").exists()
