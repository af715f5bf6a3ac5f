"""The training screen with the real engine on a tiny model (CPU, a few steps), in its own
process as the app starts every run."""

from __future__ import annotations

import time

import pytest

from helpers import sample_rows
from core.config import RunConfig
from core.detach import follow_run, launch_detached
from core.events import RunFinished, StepLogged
from tui.screens.training import TrainingScreen
from tui.widgets.loss_plot import LossPlot
from tui.widgets.run_log import RunLog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """The first 48 rows of the sample dataset."""
    return sample_rows(tmp_path_factory.mktemp("data") / "tickets.jsonl", 48)


def tiny_config(model_dir, data_path, steps: int = 6) -> RunConfig:
    cfg = RunConfig(run_name="tiny")
    cfg.model.name_or_path = str(model_dir)
    cfg.data.path = str(data_path)
    cfg.data.max_length = 128
    cfg.optim.learning_rate = 3e-3
    cfg.optim.precision = "fp32"
    cfg.optim.max_steps = steps
    cfg.optim.per_device_train_batch_size = 4
    cfg.eval.logging_steps = 1
    cfg.eval.eval_steps = 3
    cfg.eval.save_steps = 3
    cfg.eval.per_device_eval_batch_size = 8
    cfg.eval.general_sample = 0  # general drift has its own tests
    return cfg


async def test_real_run_from_the_screen_trains_detached_and_keeps_library_noise_out(
        app_factory, tiny_model_dir, small_data, tmp_path):
    app = app_factory(config=tiny_config(tiny_model_dir, small_data))  # no fake: the real Engine, detached
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await pilot.press("s")
        deadline = time.monotonic() + 600
        while not screen.run_state.ended and time.monotonic() < deadline:
            await pilot.pause(0.2)
        assert screen.run_state == "finished", screen.alert_tracker.raised
        await app.workers.wait_for_complete()
        assert screen.run.detached and not screen.trains_in_process
        assert screen.progress.step == 6 and screen.progress.best_eval_loss is not None
        assert screen.progress.eval_seconds is not None  # measured from its progress events
        assert len(screen.query_one(LossPlot).train) == 6
        run_dir = tmp_path / "runs" / "tiny"
        assert (run_dir / "final").is_dir() and len(screen.progress.checkpoints) == 2
        log = "\n".join(screen.query_one(RunLog).texts)
    for phase in ("Loading torch and transformers…", "Loading the model", "Tokenizing rows…"):
        assert phase in log, phase
    events = (run_dir / "events.jsonl").read_text()
    assert '"eval_progressed"' in events and '"phase_changed"' in events
    # The tiny run makes transformers warn (FutureWarning): debug.log has it, the pane not.
    assert "FutureWarning" in (run_dir / "debug.log").read_text()
    assert "FutureWarning" not in log and "deprecated" not in log
    assert "FutureWarning" not in (run_dir / "worker.log").read_text()


def test_real_detached_run_writes_into_its_run_dir(tiny_model_dir, small_data, tmp_path):
    run_dir = launch_detached(tiny_config(tiny_model_dir, small_data, steps=3), tmp_path / "runs")
    deadline = time.monotonic() + 600
    events = list(follow_run(run_dir, poll_interval=0.2, should_stop=lambda: time.monotonic() > deadline))
    log = (run_dir / "worker.log").read_text()
    assert isinstance(events[-1], RunFinished), log
    assert sum(isinstance(e, StepLogged) for e in events) == 3
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny"]  # no tiny-2 beside it
