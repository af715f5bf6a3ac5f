"""Attaching to a run that another process writes (``tunetop attach`` and detached runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fakes import StubGpuMonitor, build_app, h100_sample, retime, run_started, step, training_series, write_events_slowly

from helpers import wait_for
from test_training_screen import start_run
from core.config import RunConfig
from core.events import RunStopped
from tui.app import AppServices
from tui.cli.attach import attach_main, make_attach_app
from tui.screens.training import TrainingScreen
from tui.widgets.loss_plot import LossPlot
from tui.widgets.vram_gauge import VramGauge

TUI_TESTS = Path(__file__).parent


def detached_dir(tmp_path: Path, name: str = "detached-run", pid: int | None = None) -> Path:
    run_dir = tmp_path / "runs" / name
    run_dir.mkdir(parents=True)
    (run_dir / "worker.pid").write_text(str(pid or os.getpid()))
    return run_dir


def detach_with_fake_engine(app, **env: str) -> None:
    """Detached runs of ``app`` start the scripted engine in their worker, with ``env`` set."""
    app.services.detach_options = {
        "engine": "fakes:ScriptedEngine", "env": {"PYTHONPATH": str(TUI_TESTS), **env},
    }


def services() -> AppServices:
    return AppServices(gpu_monitor_factory=lambda: StubGpuMonitor(h100_sample()))


async def test_attach_follows_a_run_written_by_another_thread(tmp_path):
    run_dir = detached_dir(tmp_path)
    events = training_series(total=100, run_dir=str(run_dir), end="none", pid=os.getpid())
    head, tail = events[:8], events[8:]
    writer = write_events_slowly(run_dir / "events.jsonl", head, delay=0.005)
    app = make_attach_app(run_dir, services=services())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainingScreen) and app.current_mode == "training"
        await wait_for(pilot, lambda: screen.progress.step == 25)
        assert screen.run_state == "running" and screen.run.detached
        writer.join()
        write_events_slowly(run_dir / "events.jsonl", tail, delay=0.002).join()
        await wait_for(pilot, lambda: screen.progress.step == 100)
        await pilot.pause(0.3)
        assert len(screen.query_one(LossPlot).train) == 20
        assert screen.query_one(VramGauge)._pid == os.getpid()
        # Stop: the screen writes the STOP file the worker watches.
        await pilot.press("x")
        await pilot.press("y")
        await wait_for(pilot, lambda: (run_dir / "STOP").exists())
        assert screen.run_state == "stopping"
        with open(run_dir / "events.jsonl", "a") as f:
            f.write(RunStopped(step=100, reason="Stopped on request.", checkpoint="c").to_json() + "\n")
        await wait_for(pilot, lambda: screen.run_state == "stopped")
        # Quitting an attached view leaves the run alone: no stop, immediate exit.
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=2)


async def test_attach_to_a_finished_run_replays_it(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = detached_dir(tmp_path, "old", pid=gone.pid)  # its worker has exited
    write_events_slowly(run_dir / "events.jsonl", training_series(run_dir=str(run_dir)), delay=0).join()
    app = make_attach_app(run_dir, services=services())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert screen.progress.step == 100 and len(screen.progress.checkpoints) == 5
        await app.workers.wait_for_complete()


async def test_attached_run_whose_process_died_shows_failed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run_dir = detached_dir(tmp_path, "dead", pid=proc.pid)
    write_events_slowly(run_dir / "events.jsonl", [run_started(str(run_dir)), step(5, 2.0)], delay=0).join()
    app = make_attach_app(run_dir, services=services())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.run_state == "failed")
        assert screen.alert_tracker.raised["failed"].detail.startswith("The training process")


async def test_start_key_launches_a_detached_worker_and_follows_it(tmp_path):
    app = build_app(tmp_path)
    detach_with_fake_engine(app, FAKE_ENGINE_DELAY="0.005")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, "finished", timeout=60)
        assert screen.run.detached and (screen.run_dir / "worker.log").exists()
        assert screen.progress.step == 100
        assert "keeps going if you quit or disconnect" in " ".join(screen.query_one("#log").texts)


async def test_several_processes_start_detached_through_accelerate(tmp_path):
    """Start (s) with num_processes 2 launches both ranks; the screen follows one event stream."""
    config = RunConfig(run_name="two-ranks", num_processes=2)
    app = build_app(tmp_path, config=config)
    detach_with_fake_engine(app, FAKE_ENGINE_DELAY="0.005", CUDA_VISIBLE_DEVICES="")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, "finished", timeout=120)
        assert not screen.trains_in_process and screen.run.detached
        assert screen.progress.step == 100
        shown = " ".join(screen.query_one("#log").texts)
        assert "2 processes" in shown
        events = (screen.run_dir / "events.jsonl").read_text()
        log = (screen.run_dir / "worker.log").read_text()
    assert "process 0 of 2 started" in log and "process 1 of 2 started" in log, log
    assert events.count('"run_started"') == 1, "only rank 0 writes events"


def test_attach_main_rejects_a_non_run_directory(tmp_path, capsys):
    assert attach_main(str(tmp_path)) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_retime_keeps_spacing():
    events = retime(training_series(total=10, log_every=5, eval_every=10), start=time.time())
    assert events[1].time - events[0].time == 5


def threads_in(function: str) -> list[str]:
    """Names of the threads whose current stack runs ``function``."""
    import sys
    import threading
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    return [names.get(ident, str(ident)) for ident, frame in sys._current_frames().items()
            if any(f.name == function for f in traceback.extract_stack(frame))]


async def test_quitting_while_following_leaves_no_follower_and_the_run_goes_on(tmp_path):
    """(How fast the real app quits is tests/tui/test_quit_in_a_terminal.py.)"""
    from core.detach import follow_run, request_stop
    from core.runs import pid_alive

    app = build_app(tmp_path)
    detach_with_fake_engine(app, FAKE_ENGINE_DELAY="0.01", FAKE_ENGINE_HOLD="2")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step >= 10, timeout=60)
        run_dir = screen.run_dir
        assert threads_in("_drive_run")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=5)
    assert app.farewell == f"The run keeps training; attach with: tunetop attach {run_dir}"
    for _ in range(40):  # the follower sees the closed bridge within one poll
        if not threads_in("_drive_run"):
            break
        time.sleep(0.05)
    assert not threads_in("_drive_run")
    pid = int((run_dir / "worker.pid").read_text())
    assert pid_alive(pid), "the detached run keeps training after the app quit"
    request_stop(run_dir)
    assert type(list(follow_run(run_dir, poll_interval=0.05))[-1]).__name__ == "RunStopped"


async def test_attach_skips_damaged_lines_and_says_so(tmp_path):
    """A line with a string step or a null loss used to kill `tunetop attach`."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_dir = detached_dir(tmp_path, "damaged", pid=gone.pid)
    events = training_series(total=20, run_dir=str(run_dir))
    with open(run_dir / "events.jsonl", "w") as f:
        for n, event in enumerate(events):
            f.write(event.to_json() + "\n")
            if n == 2:
                f.write('{"type": "step_logged", "step": "4", "total_steps": 20, "epoch": 0.1, '
                        '"loss": null, "learning_rate": 0.001, "grad_norm": 1.0, '
                        '"tokens_per_second": 1.0, "samples_per_second": 1.0, '
                        '"elapsed_seconds": 1.0, "eta_seconds": 1.0}\n')
    app = make_attach_app(run_dir, services=services())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert screen.progress.step == 20
        shown = " ".join(strip.text for strip in screen.query_one("#log").lines)
        assert "1 damaged event line skipped" in shown
        await app.workers.wait_for_complete()


def test_attach_to_a_workspace_names_its_newest_run(tmp_path, capsys):
    ws = tmp_path / "runs"
    old = detached_dir(tmp_path, "old")
    new = detached_dir(tmp_path, "new")
    for run_dir, t in ((old, 1000.0), (new, 2000.0)):
        (run_dir / "events.jsonl").write_text(run_started(str(run_dir), t=t).to_json() + "\n")
    assert attach_main(str(ws)) == 2
    err = capsys.readouterr().err
    assert f"{ws} is a workspace; follow its newest run with `tunetop attach {new}`" in err
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert attach_main(str(loop)) == 2
    assert "symbolic link that loops back on itself" in capsys.readouterr().err
