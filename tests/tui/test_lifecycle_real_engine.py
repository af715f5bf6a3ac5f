"""The app with the real engine: `r` on a finished run trains longer as a new run; the
finished run's output and progress never change (CPU, a tiny model, a few steps)."""

from __future__ import annotations


import pytest
from helpers import tiny_run_config, wait_for
from textual.widgets import DataTable

from core.engine import Engine
from core.events import RunFinished
from core.runs import list_runs
from tui.screens.runs import RunsScreen
from tui.widgets.confirm import Confirm

pytestmark = pytest.mark.slow


async def test_train_longer_from_the_runs_screen(app_factory, tiny_model_dir, small_data, tmp_path):
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=2)
    cfg.run_name = "short"
    cfg.eval.eval_steps = cfg.eval.save_steps = 2
    events: list = []
    Engine(cfg, events.append, workspace=tmp_path / "runs").run()
    assert isinstance(events[-1], RunFinished), events[-1]
    done = tmp_path / "runs" / "short"
    final = (done / "final" / "adapter_model.safetensors").read_bytes()

    app = app_factory(workspace=tmp_path / "runs")  # engine_factory=None: the real Engine
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: len(screen.runs) == 1, timeout=600)
        screen.query_one(DataTable).move_cursor(row=0)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), timeout=600)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.current_mode == "training", timeout=600)
        training = app.screen
        await wait_for(pilot, lambda: training.run_state in ("finished", "stopped", "failed"), timeout=600)
        assert training.run_state == "finished", training.alert_tracker.raised
        await app.workers.wait_for_complete()
    more = tmp_path / "runs" / "short-more"
    assert (more / "final" / "adapter_model.safetensors").is_file()
    assert (done / "final" / "adapter_model.safetensors").read_bytes() == final
    runs = {r.name: r for r in list_runs(tmp_path / "runs")}
    assert {n: (r.status, r.step, r.total_steps) for n, r in runs.items()} == {
        "short": ("finished", 2, 2), "short-more": ("finished", 2, 2)}
