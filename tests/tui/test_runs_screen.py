"""The runs screen lists statuses, opens a run on the training screen and resumes runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakes import ScriptedEngine, engine_factory, run_started, step, training_series
from textual.widgets import DataTable

from helpers import wait_for, write_run
from core.config import RunConfig
from core.events import RunFailed
from tui.screens.runs import ExportChoice, LossOverlay, RunsScreen, format_age
from tui.screens.training import TrainingScreen
from tui.widgets.confirm import Confirm
from tui.widgets.loss_plot import LossPlot
from tui.widgets.runs_plot import RunsLossPlot


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
        key = str(ws / "a-finished")
        assert table.get_cell(key, "name") == "a-finished" and str(table.get_cell(key, "status")) == "finished"
        assert table.get_cell(key, "best") != "—" and table.get_cell(key, "started").endswith(" ago")
        assert str(table.get_cell(str(ws / "d-running"), "status")) == "running ⇱"
        legend = str(screen.query_one("#runs-legend").render())
        assert "⇱ trains in its own process" in legend and "Started" in legend


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
        assert training.run_dir == ws / "a-finished" and training.progress.step == 100
        assert training.run.detached


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


def finished_lora(ws: Path, name: str = "a-finished") -> Path:
    """A finished run with a (small, fake-weight) adapter in final/."""
    run_dir = write_run(ws, name, training_series(end="finished"))
    final = run_dir / "final"
    final.mkdir()
    (final / "adapter_config.json").write_text('{"r": 16}')
    (final / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (final / "training_args.bin").write_bytes(b"pickle")
    return run_dir


async def select(pilot, screen: RunsScreen, name: str) -> None:
    screen.query_one(DataTable).move_cursor(row=[r.name for r in screen.runs].index(name))
    await pilot.pause()


async def test_export_writes_the_adapter_in_a_worker(app_factory, tmp_path):
    ws = tmp_path / "runs"
    run_dir = finished_lora(ws)
    write_run(ws, "b-stopped", training_series(end="stopped"), checkpoint=100)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await select(pilot, screen, "a-finished")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportChoice))
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await wait_for(pilot, lambda: screen.export_started is None)
        out = run_dir / "export-adapter"
        assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter_config.json",
                                                         "adapter_model.safetensors"]
        assert "Exported" in str(screen.query_one("#runs-status").render())
        # A run that never finished says why it cannot be exported, in words.
        await select(pilot, screen, "b-stopped")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportChoice))
        await pilot.press("m")
        await wait_for(pilot, lambda: screen.export_started is None)
        assert "has no final model" in str(screen.query_one("#runs-status").render())
        # Escape leaves without exporting.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportChoice))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and not (ws / "b-stopped" / "export-merged").exists()


async def test_delete_asks_first_and_refuses_a_running_run(app_factory, tmp_path):
    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await select(pilot, screen, "d-running")
        await pilot.press("d")
        await pilot.pause()
        assert app.screen is screen and (ws / "d-running").exists()
        assert any("still running" in str(n.message) for n in app._notifications)
        await select(pilot, screen, "c-failed")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")
        await pilot.pause()
        assert (ws / "c-failed").exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: "c-failed" not in [r.name for r in screen.runs])
        assert not (ws / "c-failed").exists() and len(screen.runs) == 4


async def test_clone_opens_the_runs_config_on_the_config_screen(app_factory, tmp_path):
    ws = tmp_path / "runs"
    run_dir = write_run(ws, "tuned", training_series(end="finished"))
    config = RunConfig(run_name="tuned", method="qlora")
    config.optim.learning_rate = 5e-5
    config.save(run_dir / "config.yaml")
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await select(pilot, screen, "tuned")
        await pilot.press("c")
        await wait_for(pilot, lambda: app.current_mode == "hyperparams")
        assert app.config.method == "qlora" and app.config.optim.learning_rate == 5e-5
        assert app.config.run_name is None  # a new run, with a name of its own
        assert any("Editing a copy of tuned" in str(n.message) for n in app._notifications)


async def test_marked_runs_loss_curves_overlay(app_factory, tmp_path):
    ws = tmp_path / "runs"
    write_run(ws, "short", training_series(total=40, end="finished"))
    write_run(ws, "long", training_series(total=100, end="finished"))
    write_run(ws, "empty", [run_started()])
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        await select(pilot, screen, "short")
        await pilot.press("space")
        await select(pilot, screen, "long")
        await pilot.press("space")
        assert screen.marked == {ws / "short", ws / "long"}
        assert screen.query_one(DataTable).get_cell(str(ws / "long"), "mark") == "●"
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, LossOverlay))
        plot = app.screen.query_one(RunsLossPlot)
        await wait_for(pilot, lambda: plot.replots >= 1)
        assert {name: len(points) for name, points in plot.curves.items()} == {"long": 20, "short": 8}
        assert "short" in str(plot.border_subtitle) and "long" in str(plot.border_subtitle)
        assert "┤" in plot.render().plain
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_command_palette_offers_the_run_commands(app_factory, tmp_path):
    from tui.commands import TunetopCommands

    ws = workspace_with_runs(tmp_path)
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        provider = TunetopCommands(screen)
        titles = [str(hit.text) async for hit in provider.discover()]
        assert {"Runs: Export the adapter or a merged model", "Runs: Delete after asking",
                "Runs: Clone its config to the Config screen",
                "Runs: Compare the marked runs' loss curves"} <= set(titles)
        hits = [hit async for hit in provider.search("clone")]
        assert [str(hit.text) for hit in hits] == ["Runs: Clone its config to the Config screen"]
        await select(pilot, screen, "a-finished")
        await hits[0].command()
        await wait_for(pilot, lambda: app.current_mode == "hyperparams")
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
        assert str(table.get_cell(str(ws / "c-unreadable"), "status")) == "damaged"
        table.move_cursor(row=[run.name for run in screen.runs].index("b-bad-lines"))
        await pilot.pause()
        detail = str(screen.query_one("#runs-detail").render())
        assert "1 damaged event line skipped" in detail
