"""SVG snapshot of the runs screen at 80x24: every status, a detached run, a marked run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fakes import T0, overfit_series, retime, run_started, step, training_series
from helpers import write_run

from core.events import RunFailed
from tui.app import AppServices, make_app


def workspace(now: float) -> Path:
    """Five runs whose ages stay in their unit for minutes (the snapshot must not move)."""
    ws = Path("runs")
    write_run(ws, "20250301-091500-lora", retime(training_series(), now - 3 * 86400 - 400))
    write_run(ws, "20250302-140000-qlora", retime(overfit_series(), now - 86400 - 400))
    write_run(ws, "20250303-100000-lora", retime(
        [run_started(), step(5, 2.4), RunFailed(step=5, phase="train", reason="Out of memory during train.",
                                                suggestion="Use qlora.", time=T0 + 6)], now - 7200 - 400))
    write_run(ws, "20250303-120000-lora", retime(training_series(end="stopped"), now - 3600 - 400),
              checkpoint=100)
    write_run(ws, "20250303-130500-lora", retime(training_series(end="none")[:20], now - 400),
              pid=os.getpid())
    return ws


def test_runs_screen_snapshot_at_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths shown are relative: runs/NAME
    ws = workspace(time.time())
    services = AppServices(gpu_monitor_factory=lambda: None)

    async def run_before(pilot) -> None:
        await pilot.press("5")
        screen = pilot.app.screen
        for _ in range(100):
            if screen.runs:
                break
            await pilot.pause(0.05)
        await pilot.press("down")  # off the running run, whose detail names its pid
        await pilot.press("space")  # mark the stopped run for comparison (moves down)
        await pilot.pause(0.2)

    app = make_app(services=services, workspace=str(ws))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
