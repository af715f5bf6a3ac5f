"""The runs screen lists statuses, opens a run on the training screen and resumes runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakes import ScriptedEngine, engine_factory, run_started, step, training_series
from textual.widgets import DataTable

from core.config import RunConfig
from core.events import RunFailed
from tui.screens.runs import RunsScreen, format_age
from tui.screens.training import TrainingScreen
from tui.widgets.confirm import Confirm
from tui.widgets.loss_plot import LossPlot


async def wait_for(pilot, predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    assert predicate(), "condition not reached in time"


def write_run(workspace: Path, name: str, events, pid: int | None = None, checkpoint: int | None = None) -> Path:
    run_dir = workspace / name
    run_dir.mkdir(parents=True)
    RunConfig(run_name=name).save(run_dir / "config.yaml")
    with open(run_dir / "events.jsonl", "w") as f:
        for event in events:
            f.write(event.to_json() + "\n")
    if pid:
        (run_dir / "worker.pid").write_text(str(pid))
    if checkpoint:
        ckpt = run_dir / "checkpoints" / f"checkpoint-{checkpoint}"
        ckpt.mkdir(parents=True)
        (ckpt / "COMPLETE").write_text("")
    return run_dir


def workspace_with_runs(tmp_path: Path) -> Path:
    ws = tmp_path / "runs"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(ws, "a-finished", training_series(end="finished"))
    write_run(ws, "b-stopped", training_series(end="stopped"), checkpoint=100)
    write_run(ws, "c-failed", [run_started(), RunFailed(step=0, phase="data", reason="No usable rows.")])
    write_run(ws, "d-running", [run_started(), step(5, 2.0)], pid=os.getpid())
    write_run(ws, "e-crashed", [run_started(), step(5, 2.0)], pid=dead.pid)
    return ws


async def open_runs(pilot) -> RunsScreen:
    await pilot.press("5")
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await wait_for(pilot, lambda: len(screen.runs) > 0)
    return screen


async def test_runs_list_shows_statuses(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        statuses = {run.name: run.status for run in screen.runs}
        assert statuses == {
            "a-finished": "finished",
            "b-stopped": "stopped",
            "c-failed": "failed",
            "d-running": "running",
            "e-crashed": "failed",
        }
        table = screen.query_one(DataTable)
        assert table.row_count == 5
        row = table.get_row(str(ws / "a-finished"))
        assert row[0] == "a-finished" and str(row[1]) == "finished" and row[3] != "—"
        running = table.get_row(str(ws / "d-running"))
        assert str(running[1]) == "running ⇱"


async def test_enter_opens_the_run_on_the_training_screen(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(DataTable)
        table.focus()
        index = [r.name for r in screen.runs].index("a-finished")
        table.move_cursor(row=index)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "training")
        training = app.screen
        assert isinstance(training, TrainingScreen)
        await wait_for(pilot, lambda: training.run_state == "finished")
        assert training.follow_dir == ws / "a-finished" and training.progress.step == 100


async def test_resume_key_restarts_a_stopped_run_from_its_checkpoint(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws, engine_factory=engine_factory(write_events=False))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(DataTable)
        table.move_cursor(row=[r.name for r in screen.runs].index("b-stopped"))
        await pilot.press("r")
        await wait_for(pilot, lambda: app.current_mode == "training")
        training = app.screen
        await wait_for(pilot, lambda: training.run_state == "finished")
        engine = ScriptedEngine.instances[-1]
        assert engine.resume_dir == str(ws / "b-stopped")
        assert len(training.query_one(LossPlot).train) == 20  # the history before the stop
        assert training.progress.best_eval_step == 100


async def test_resume_refuses_a_run_without_checkpoint(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws, engine_factory=engine_factory())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        screen.query_one(DataTable).move_cursor(row=[r.name for r in screen.runs].index("e-crashed"))
        await pilot.press("r")
        await pilot.pause()
        assert app.current_mode == "runs"
        refusal = next(str(n.message) for n in app._notifications)
        assert "no complete checkpoint" in refusal and "Fix: start it again as a new run" in refusal


async def test_empty_workspace_says_how_to_start(app_factory, tmp_path):
    app = app_factory(workspace=tmp_path / "nothing")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.3)
        detail = app.screen.query_one("#runs-detail")
        assert "No runs in" in str(detail.render())


def test_format_age():
    assert [format_age(s) for s in (5, 90, 7200, 200000)] == ["5s", "1m", "2h", "2d"]


def finished_run_with_output(ws: Path) -> Path:
    run_dir = write_run(ws, "f-done", training_series(end="finished"), checkpoint=100)
    (run_dir / "final").mkdir()
    return run_dir


async def test_resume_key_on_a_finished_run_offers_to_train_longer(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    done = finished_run_with_output(ws)
    app = app_factory(workspace=ws, engine_factory=engine_factory(write_events=False))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        screen.query_one(DataTable).move_cursor(row=[r.name for r in screen.runs].index("f-done"))
        await pilot.pause()
        assert "train longer (r)" in str(screen.query_one("#runs-detail").render())
        count = len(ScriptedEngine.instances)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = app.screen.question
        assert "finished all its 100 steps, so it is not resumed" in question
        assert "f-done-more" in question and "fresh schedule" in question
        await pilot.press("n")  # nothing starts
        await pilot.pause()
        assert app.current_mode == "runs" and len(ScriptedEngine.instances) == count
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.current_mode == "training")
        await wait_for(pilot, lambda: len(ScriptedEngine.instances) > count)
        engine = ScriptedEngine.instances[-1]
        assert engine.resume_dir is None  # a new run, never a resume of the finished one
        assert engine.config.model.adapter == str(done) and engine.config.run_name == "f-done-more"


async def test_resume_key_refuses_a_run_another_process_trains(app_factory, tmp_path):
    from core.rundir import RunLock

    ws = workspace_with_runs(tmp_path)
    lock = RunLock.acquire(ws / "b-stopped")  # as a trainer in another process holds it
    lock.set_holder(4242)
    app = app_factory(workspace=ws, engine_factory=engine_factory())
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_runs(pilot)
            count = len(ScriptedEngine.instances)
            screen.query_one(DataTable).move_cursor(row=[r.name for r in screen.runs].index("b-stopped"))
            await pilot.press("r")
            await pilot.pause()
            assert app.current_mode == "runs" and len(ScriptedEngine.instances) == count
            refusal = next(str(n.message) for n in app._notifications)
            assert "being trained right now by process 4242" in refusal and "tunetop attach" in refusal
    finally:
        lock.release()


async def test_a_damaged_run_is_listed_beside_the_healthy_ones(app_factory, tmp_path):
    """One run with wrongly typed event lines and one that cannot be read at all: the list
    still shows every run, the damaged ones say so."""
    ws = tmp_path / "runs"
    write_run(ws, "a-finished", training_series(end="finished"))
    bad = write_run(ws, "b-bad-lines", training_series(end="stopped"))
    with open(bad / "events.jsonl", "a") as f:
        f.write('{"type": "step_logged", "step": "4", "loss": null}\n')
    (ws / "c-unreadable" / "events.jsonl").mkdir(parents=True)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(pilot)
        await wait_for(pilot, lambda: len(screen.runs) == 3)
        statuses = {run.name: run.status for run in screen.runs}
        assert statuses == {"a-finished": "finished", "b-bad-lines": "stopped",
                            "c-unreadable": "damaged"}
        table = screen.query_one(DataTable)
        assert str(table.get_row(str(ws / "c-unreadable"))[1]) == "damaged"
        table.move_cursor(row=[run.name for run in screen.runs].index("b-bad-lines"))
        await pilot.pause()
        detail = str(screen.query_one("#runs-detail").render())
        assert "1 damaged event line skipped" in detail
