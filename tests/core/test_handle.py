"""Run handles and run states: one way to hold a run, in this process or detached."""

from __future__ import annotations

import threading
import time
from pathlib import Path

TUI_TESTS = Path(__file__).parents[1] / "tui"

from fakes import ScriptedEngine, run_started, step, training_series  # noqa: E402

from core.config import RunConfig  # noqa: E402
from core.events import (  # noqa: E402
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    MessageLogged,
    PhaseChanged,
    RunFailed,
    RunFinished,
    RunStopped,
)
from core.handle import DetachedRun, InProcessRun, RunState, state_after  # noqa: E402
from core.runs import pid_alive, read_pid  # noqa: E402


def fold(events, state=RunState.STARTING) -> list[RunState]:
    states = []
    for event in events:
        state = state_after(state, event)
        states.append(state)
    return states


def test_states_follow_a_run_through_setup_steps_evaluation_saves_and_its_end():
    events = [
        PhaseChanged(phase="data", message="Loading data"),
        PhaseChanged(phase="tokenize", message="Tokenizing", done=3, total=8),
        MessageLogged(level="info", message="Data: x"),
        run_started(),
        step(5, 2.0),
        EvalProgressed(step=10, done=0, total=4, elapsed_seconds=0.0),
        step(10, 1.9),  # logged after the evaluation was announced, before its first batch
        EvalProgressed(step=10, done=2, total=4, elapsed_seconds=3.0),
        EvalLogged(step=10, eval_loss=1.5, best_eval_loss=1.5, is_best=True),
        PhaseChanged(phase="checkpoint", message="Saving checkpoint-10"),
        CheckpointSaved(step=10, path="c"),
        step(15, 1.8),
        PhaseChanged(phase="final", message="Writing the final adapter"),
        RunFinished(step=15, output_path="f", final_eval_loss=1.5, best_eval_loss=1.5, elapsed_seconds=9),
    ]
    S = RunState
    assert fold(events) == [
        S.STARTING, S.STARTING, S.STARTING, S.RUNNING, S.RUNNING, S.EVALUATING, S.EVALUATING,
        S.EVALUATING, S.RUNNING, S.SAVING, S.RUNNING, S.RUNNING, S.SAVING, S.FINISHED,
    ]
    assert S.EVALUATING.live and S.SAVING.live and not S.FINISHED.live and S.FAILED.ended
    assert not S.IDLE.live and not S.IDLE.ended


def test_stopping_holds_until_the_final_event_and_a_resume_starts_again():
    after_stop = fold([step(5, 2.0), EvalProgressed(step=5, done=1, total=2, elapsed_seconds=1.0),
                       RunStopped(step=5, reason="Stopped on request.", checkpoint="c")],
                      state=RunState.STOPPING)
    assert after_stop == [RunState.STOPPING, RunState.STOPPING, RunState.STOPPED]
    resumed = fold([PhaseChanged(phase="data", message="Loading data"), run_started()],
                   state=RunState.STOPPED)
    assert resumed == [RunState.STARTING, RunState.RUNNING]
    assert state_after(RunState.RUNNING, RunFailed(step=3, phase="train", reason="x")) is RunState.FAILED


def test_in_process_run_delivers_the_engines_events_and_joins_it(tmp_path):
    events = []
    run = InProcessRun(RunConfig(run_name="here"), events.append, tmp_path,
                       factory=lambda cfg, sink, **kw: ScriptedEngine(cfg, sink, **kw))
    assert run.run_dir is None and not run.detached
    run.start()
    run.follow(lambda: False)
    assert not run.running and isinstance(events[-1], RunFinished)
    assert run.run_dir == tmp_path / "here"


def test_a_stop_asked_before_the_engine_exists_reaches_it(tmp_path):
    built = threading.Event()

    def slow_factory(cfg, sink, **kw):
        built.wait(5)  # the stop arrives while the engine is being built (torch imports)
        return ScriptedEngine(cfg, sink, **kw)

    events = []
    run = InProcessRun(RunConfig(run_name="early"), events.append, tmp_path, factory=slow_factory)
    starter = threading.Thread(target=run.start)
    starter.start()
    run.stop()
    built.set()
    starter.join(5)
    run.follow(lambda: False)
    assert isinstance(events[-1], RunStopped) and events[-1].step == 5


def test_following_an_ended_run_replays_it_and_returns(tmp_path):
    run_dir = tmp_path / "runs" / "over"
    run_dir.mkdir(parents=True)
    with open(run_dir / "events.jsonl", "w") as f:
        f.writelines(e.to_json() + "\n" for e in training_series(total=20, run_dir=str(run_dir)))
    events = []
    run = DetachedRun.attach(run_dir, events.append)
    run.start()  # nothing to launch
    run.follow(lambda: False)
    assert run.detached and run.run_dir == run_dir
    assert isinstance(events[-1], RunFinished) and len(events) == len(training_series(total=20))


def test_detached_run_launches_a_worker_that_stops_on_request(tmp_path):
    events = []
    run = DetachedRun.launch(RunConfig(run_name="away"), tmp_path / "runs", events.append,
                             engine="fakes:ScriptedEngine",
                             env={"PYTHONPATH": str(TUI_TESTS), "FAKE_ENGINE_DELAY": "0.01",
                                  "FAKE_ENGINE_HOLD": "2"})
    run.stop()  # before the launch: written once the worker exists, again if it clears it
    run.start()
    assert run.run_dir == tmp_path / "runs" / "away" and run.pid == read_pid(run.run_dir)
    deadline = time.monotonic() + 60
    run.follow(lambda: time.monotonic() > deadline)
    assert isinstance(events[-1], RunStopped), (run.run_dir / "worker.log").read_text()
    for _ in range(100):
        if not pid_alive(run.pid):
            break
        time.sleep(0.05)
    assert not pid_alive(run.pid)
