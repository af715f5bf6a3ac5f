"""Run progress, statuses, listing, resuming, following and detached workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TUI_TESTS = Path(__file__).parents[1] / "tui"

from dataclasses import replace  # noqa: E402

from fakes import T0, loss_curve, run_started, step, training_series, write_events_slowly  # noqa: E402

from helpers import write_run
from core.config import RunConfig  # noqa: E402
from core.detach import follow_run, launch_detached, request_stop  # noqa: E402
from core.events import (  # noqa: E402
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    PhaseChanged,
    RunFailed,
    RunStopped,
)
from core.rundir import RunLocked, RunRefused  # noqa: E402
from core.runs import (  # noqa: E402
    RunIndex,
    RunProgress,
    delete_run,
    derive_status,
    list_runs,
    loss_history,
    pid_alive,
    resume_config,
    resume_dir_of,
)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- progress -----------------------------------------------------------------------------


def test_progress_folds_a_recorded_run():
    progress = RunProgress()
    for event in training_series(total=100, eval_every=20):
        progress.update(event)
    assert progress.status == "finished"
    assert progress.step == 100 and progress.total_steps == 100
    assert progress.best_eval_step == 100 and progress.best_eval_loss == pytest.approx(0.7 + 1.5 * 2.718281828 ** (-100 / 30), rel=1e-3)
    assert len(progress.checkpoints) == 5
    assert progress.elapsed_seconds() == pytest.approx(102.0)
    assert progress.fraction == 1.0


def test_eta_excludes_eval_and_save_pauses():
    progress = RunProgress()
    progress.update(run_started(total_steps=100))
    # One second per step, but a 30-second evaluation between steps 10 and 15.
    for n in (5, 10):
        progress.update(step(n, 1.0, t=T0 + n, eta=0.0))  # eta 0: the engine sent none
    progress.update(EvalLogged(step=10, eval_loss=1.0, best_eval_loss=1.0, is_best=True, time=T0 + 40))
    progress.update(CheckpointSaved(step=10, path="c", time=T0 + 41))
    progress.update(step(15, 1.0, t=T0 + 46, eta=0.0))
    assert progress.seconds_per_step == pytest.approx(1.0)
    assert progress.eta_seconds() == pytest.approx(85.0)
    progress.update(step(20, 1.0, t=T0 + 51, eta=0.0))
    assert progress.seconds_per_step == pytest.approx(1.0)


def test_engine_eta_is_preferred_when_sent():
    progress = RunProgress()
    progress.update(run_started(total_steps=100))
    progress.update(step(10, 1.0))
    assert progress.eta_seconds() == 90.0


def started_with_evals(total: int = 100, eval_steps: int = 20, val_rows: int = 80):
    return replace(run_started(total_steps=total), eval_steps=eval_steps, num_val_rows=val_rows)


def test_eta_counts_the_evaluations_still_due():
    progress = RunProgress()
    progress.update(started_with_evals())
    progress.update(step(10, 1.0))  # the engine says 90 s of steps; 12.5 training rows/s
    guess = 80 / 12.5 / 3  # no evaluation measured yet: a third of a training row's time per row
    assert progress.evals_left() == 5  # at 20, 40, 60, 80 and 100
    assert progress.eta_seconds() == pytest.approx(90 + 5 * guess)
    # The evaluation at step 20 is announced, then half its batches take 30 s: it lasts 60 s.
    progress.update(EvalProgressed(step=20, done=0, total=10, elapsed_seconds=0.0, time=T0 + 20))
    progress.update(step(20, 1.0, t=T0 + 20))  # logged just before the first batch
    progress.update(EvalProgressed(step=20, done=5, total=10, elapsed_seconds=30.0, time=T0 + 50))
    assert progress.evaluating and progress.evals_left() == 4
    assert progress.eta_seconds(now=T0 + 50) == pytest.approx(80 + 30 + 4 * 60)
    assert progress.eta_seconds(now=T0 + 60) == pytest.approx(80 + 20 + 4 * 60)  # counts down
    progress.update(EvalLogged(step=20, eval_loss=1.0, best_eval_loss=1.0, is_best=True, time=T0 + 80))
    assert progress.eval_seconds == pytest.approx(60) and not progress.evaluating
    assert progress.eta_seconds() == pytest.approx(80 + 4 * 60)


def test_the_last_step_leaves_the_final_evaluation():
    progress = RunProgress()
    progress.update(started_with_evals(total=50, eval_steps=20))  # evaluations at 20, 40 and 50
    progress.update(EvalLogged(step=40, eval_loss=1.0, best_eval_loss=1.0, is_best=True, time=T0 + 40))
    progress.update(step(50, 1.0, total=50, eta=0.0, t=T0 + 50))
    assert progress.evals_left() == 1
    progress.update(EvalProgressed(step=50, done=2, total=4, elapsed_seconds=10.0, time=T0 + 60))
    assert progress.evals_left() == 0 and progress.eta_seconds(now=T0 + 60) == pytest.approx(10.0)
    assert progress.eta_seconds(now=T0 + 90) == 0.0


def test_phases_show_until_training_goes_on():
    progress = RunProgress()
    progress.update(PhaseChanged(phase="tokenize", message="Tokenizing training rows", done=64, total=86))
    assert (progress.phase, progress.phase_done, progress.phase_total) == ("tokenize", 64, 86)
    progress.update(run_started())
    assert progress.phase == ""
    progress.update(PhaseChanged(phase="checkpoint", message="Saving checkpoint-5"))
    progress.update(CheckpointSaved(step=5, path="c"))
    assert progress.phase == ""


def test_loss_history_and_delete(tmp_path):
    ws = tmp_path / "runs"
    done = write_run(ws, "done", training_series(total=20, log_every=5) + [step(25, float("nan"))])
    assert loss_history(done) == [(n, pytest.approx(loss_curve(n))) for n in (5, 10, 15, 20)]
    live = write_run(ws, "live", [run_started(), step(5, 2.0)], pid=os.getpid())
    with pytest.raises(ValueError, match="still running"):
        delete_run(live)
    with pytest.raises(ValueError, match="not a run directory"):
        delete_run(tmp_path)
    delete_run(done)
    assert not done.exists() and live.exists()


# --- status and listing ---------------------------------------------------------------------


def test_a_preference_run_is_marked_in_the_list(tmp_path):
    """A DPO run lists as ``dpo·lora`` (from its events, or its config before any event)."""
    write_run(tmp_path, "sft", training_series())
    write_run(tmp_path, "dpo", [replace(run_started(), objective="dpo")] + training_series()[1:])
    dpo_only_config = write_run(tmp_path, "orpo", [])
    config = RunConfig.load(dpo_only_config / "config.yaml")
    config.objective = "orpo"
    config.save(dpo_only_config / "config.yaml")
    kinds = {run.name: run.kind for run in list_runs(tmp_path)}
    assert kinds == {"sft": "lora", "dpo": "dpo·lora", "orpo": "orpo·lora"}


def test_status_from_events_and_process(tmp_path):
    ws = tmp_path / "runs"
    write_run(ws, "done", training_series(end="finished"))
    write_run(ws, "halted", training_series(end="stopped"), checkpoint=100)
    write_run(ws, "broken", [run_started(), RunFailed(step=0, phase="model", reason="Out of memory during model.")])
    write_run(ws, "live", [run_started(), step(5, 2.0)], pid=os.getpid())
    write_run(ws, "crashed", [run_started(), step(5, 2.0)], pid=dead_pid())
    runs = {r.name: r for r in list_runs(ws)}
    assert runs["done"].status == "finished"
    assert runs["halted"].status == "stopped" and runs["halted"].resumable
    assert runs["broken"].status == "failed" and "Out of memory" in runs["broken"].detail
    assert runs["live"].status == "running" and runs["live"].detached
    assert runs["crashed"].status == "failed" and "without a final event" in runs["crashed"].detail
    assert runs["done"].best_eval_loss is not None
    assert runs["done"].model == "bundled:smollm2-135m-instruct"


def test_run_without_pid_counts_as_starting_then_interrupted():
    progress = RunProgress()
    assert derive_status(progress, None, updated_at=time.time())[0] == "running"
    assert derive_status(progress, None, updated_at=time.time() - 3600)[0] == "failed"


def test_index_reads_only_new_lines(tmp_path):
    ws = tmp_path / "runs"
    run_dir = write_run(ws, "growing", [run_started(), step(5, 2.0)], pid=os.getpid())
    index = RunIndex(ws)
    assert index.refresh()[0].step == 5
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(step(10, 1.5).to_json() + "\n")
    assert index.refresh()[0].step == 10


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(None) and not pid_alive(0)


def test_resume_config_points_at_the_run(tmp_path):
    ws = tmp_path / "runs"
    halted = write_run(ws, "halted", training_series(end="stopped"), checkpoint=100)
    config = resume_config(halted)
    assert resume_dir_of(config) == str(halted) and config.run_name == "halted"
    no_ckpt = write_run(ws, "early", training_series(end="stopped"))
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resume_config(no_ckpt)
    live = write_run(ws, "live", [run_started()], pid=os.getpid(), checkpoint=5)
    with pytest.raises(RunLocked, match=f"being trained right now by process {os.getpid()}"):
        resume_config(live)
    done = write_run(ws, "done", training_series(end="finished"), checkpoint=100)
    with pytest.raises(RunRefused, match="finished all its 100 steps") as refused:
        resume_config(done)
    assert f"tunetop train --from {done}" in refused.value.fix


# --- damaged runs ---------------------------------------------------------------------------


BAD_STEP = ('{"type": "step_logged", "step": "4", "total_steps": 100, "epoch": 0.4, "loss": null, '
            '"learning_rate": 1e-4, "grad_norm": 1.0, "tokens_per_second": 1.0, '
            '"samples_per_second": 1.0, "elapsed_seconds": 1.0, "eta_seconds": 1.0}')
"""A step line with a string step and a null loss (written by hand, or by another tool)."""


def test_a_damaged_run_never_hides_the_healthy_ones(tmp_path):
    ws = tmp_path / "runs"
    write_run(ws, "healthy", training_series(end="finished"))
    damaged = write_run(ws, "bad-lines", training_series(end="stopped"), checkpoint=100)
    with open(damaged / "events.jsonl", "a") as f:
        f.write(BAD_STEP + "\n" + BAD_STEP.replace('"4"', "4") + "\n")
    unreadable = ws / "unreadable"
    (unreadable / "events.jsonl").mkdir(parents=True)  # a directory where the file should be
    index = RunIndex(ws)
    runs = {run.name: run for run in index.refresh()}
    assert set(runs) == {"healthy", "bad-lines", "unreadable"}
    assert runs["healthy"].status == "finished" and runs["healthy"].damaged_lines == 0
    bad = runs["bad-lines"]
    assert bad.status == "stopped" and bad.step == 100 and bad.resumable
    assert bad.damaged_lines == 2 and bad.detail.endswith("; 2 damaged event lines skipped")
    assert runs["unreadable"].status == "damaged"
    assert "IsADirectoryError" in runs["unreadable"].detail
    with open(damaged / "events.jsonl", "a") as f:  # the count carries across refreshes
        f.write(BAD_STEP + "\n")
    again = {run.name: run for run in index.refresh()}
    assert again["bad-lines"].damaged_lines == 3


def test_follow_run_says_how_many_lines_it_skipped(tmp_path):
    from core.events import MessageLogged

    run_dir = write_run(tmp_path / "runs", "bad-lines", training_series(total=20, end="none")[:3])
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(BAD_STEP + "\n" + "{not json\n" + training_series(total=20)[-1].to_json() + "\n")
    got = list(follow_run(run_dir, poll_interval=0.01))
    warnings = [e for e in got if isinstance(e, MessageLogged) and e.level == "warning"]
    assert [w.message.split(" skipped")[0] for w in warnings] == ["2 damaged event lines"]
    assert type(got[-1]).__name__ == "RunFinished"


# --- following ------------------------------------------------------------------------------


def test_follow_run_tails_a_growing_file_until_the_end(tmp_path):
    run_dir = tmp_path / "runs" / "tail"
    run_dir.mkdir(parents=True)
    (run_dir / "worker.pid").write_text(str(os.getpid()))
    events = training_series(total=40, eval_every=20, end="finished", pid=os.getpid())
    writer = write_events_slowly(run_dir / "events.jsonl", events, delay=0.005)
    got = list(follow_run(run_dir, poll_interval=0.01))
    writer.join()
    assert [type(e) for e in got] == [type(e) for e in events]


def test_follow_run_reports_a_dead_worker(tmp_path):
    run_dir = write_run(tmp_path / "runs", "dead", [run_started(), step(5, 2.0)], pid=dead_pid())
    (run_dir / "worker.log").write_text("Traceback …\nKilled\n")
    got = list(follow_run(run_dir, poll_interval=0.01))
    assert isinstance(got[-1], RunFailed) and "Killed" in got[-1].reason and got[-1].step == 5


def test_follow_run_stops_when_asked(tmp_path):
    run_dir = write_run(tmp_path / "runs", "quiet", [run_started()], pid=os.getpid())
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    got = list(follow_run(run_dir, poll_interval=0.01, should_stop=stop.is_set))
    assert len(got) == 1


# --- detached workers -----------------------------------------------------------------------


def launch_fake(tmp_path: Path, **env: str) -> Path:
    return launch_detached(
        RunConfig(run_name="detached"), tmp_path / "runs", engine="fakes:ScriptedEngine",
        env={"PYTHONPATH": str(TUI_TESTS), **env},
    )


def _niceness(pid: int) -> tuple[int, int | None] | None:
    """The process's nice value and its autogroup's (None without autogroup), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    nice = int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of proc(5)
    try:
        group = int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError):
        group = None
    return nice, group


def test_detached_run_trains_and_stops_on_stop_file(tmp_path):
    run_dir = launch_fake(tmp_path, FAKE_ENGINE_DELAY="0.01", FAKE_ENGINE_HOLD="3")
    assert (run_dir / "config.yaml").is_file() and (run_dir / "worker.pid").is_file()
    seen = []
    deadline = time.time() + 60
    for event in follow_run(run_dir, poll_interval=0.05, should_stop=lambda: time.time() > deadline):
        seen.append(event)
        if len([e for e in seen if type(e).__name__ == "StepLogged"]) == 3:
            niceness = _niceness(int((run_dir / "worker.pid").read_text()))
            request_stop(run_dir)
    assert isinstance(seen[-1], RunStopped), (run_dir / "worker.log").read_text()
    assert seen[-1].step == 15
    if niceness is not None:  # Linux: the run yields the CPU to the terminal following it
        assert niceness[0] == 10 and niceness[1] in (None, 10) and os.nice(0) == 0
    assert isinstance(seen[-2], CheckpointSaved)
    pid = int((run_dir / "worker.pid").read_text())
    for _ in range(100):
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    assert not pid_alive(pid)
    assert "STOP file found" in (run_dir / "worker.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_detached_run_stops_on_sigterm_and_sighup(tmp_path, signum):
    run_dir = launch_fake(tmp_path, FAKE_ENGINE_DELAY="0.01", FAKE_ENGINE_HOLD="2")
    deadline = time.time() + 60
    seen = []
    for event in follow_run(run_dir, poll_interval=0.05, should_stop=lambda: time.time() > deadline):
        seen.append(event)
        if len([e for e in seen if type(e).__name__ == "StepLogged"]) == 2:
            os.kill(int((run_dir / "worker.pid").read_text()), signum)
    assert isinstance(seen[-1], RunStopped), (run_dir / "worker.log").read_text()


def test_worker_that_cannot_build_its_engine_writes_run_failed(tmp_path):
    run_dir = launch_detached(RunConfig(run_name="bad"), tmp_path / "runs", engine="no_such_module:Engine")
    got = list(follow_run(run_dir, poll_interval=0.05))
    assert isinstance(got[-1], RunFailed)
    assert "ModuleNotFoundError" in got[-1].reason


def test_detached_resume_continues_in_the_same_directory(tmp_path):
    run_dir = launch_fake(tmp_path, FAKE_ENGINE_DELAY="0.005", FAKE_ENGINE_HOLD="2")
    for event in follow_run(run_dir, poll_interval=0.05):
        if type(event).__name__ == "StepLogged":
            request_stop(run_dir)
    first_pid = int((run_dir / "worker.pid").read_text())
    for _ in range(100):  # the first worker exits after its final event
        if not pid_alive(first_pid):
            break
        time.sleep(0.05)
    (run_dir / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-10" / "COMPLETE").write_text("10")
    config = resume_config(run_dir)
    again = launch_detached(config, tmp_path / "runs", resume_dir=resume_dir_of(config),
                            engine="fakes:ScriptedEngine",
                            env={"PYTHONPATH": str(TUI_TESTS), "FAKE_ENGINE_DELAY": "0.002"})
    assert again == run_dir
    events = list(follow_run(run_dir, poll_interval=0.05))
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("RunStarted") == 2 and kinds[-1] == "RunFinished", (run_dir / "worker.log").read_text()
    second_start = kinds.index("RunStarted", kinds.index("RunStarted") + 1)
    assert "RunStopped" in kinds[:second_start]
