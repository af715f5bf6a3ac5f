"""SVG snapshot of the runs screen at 80x24: finished, stopped (resumable) and failed runs,
with ages from a frozen clock."""

from __future__ import annotations

import types
from pathlib import Path

from fakes import T0, run_started, training_series
from test_keys_and_focus import quick_app
from test_runs_screen import open_runs, write_run

from core.events import RunFailed


async def runs_before(pilot) -> None:
    """Open the runs screen, the second run highlighted."""
    await open_runs(pilot)
    await pilot.press("down")
    await pilot.pause(0.3)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


def test_runs_snapshot_at_80x24(snap_compare, tmp_path, monkeypatch):
    """Three runs at 80x24: status, step, best validation loss, age, model; the footer."""
    monkeypatch.chdir(tmp_path)  # the detail line names the run's relative path
    workspace = Path("runs")
    write_run(workspace, "a-finished", training_series(end="finished"))
    write_run(workspace, "b-stopped", training_series(end="stopped"), checkpoint=100)
    write_run(workspace, "c-failed", [run_started(t=T0 + 3 * 3600 - 90),
                                      RunFailed(step=0, phase="data", reason="No usable rows.",
                                                time=T0 + 3 * 3600 - 60)])
    monkeypatch.setattr("core.runs.time", types.SimpleNamespace(time=lambda: T0 + 3 * 3600))
    assert snap_compare(quick_app(workspace), terminal_size=(80, 24), run_before=runs_before)
