"""Several processes: the accelerate launch command, and a real two-process run on CPU (gloo)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_run_config

from core.config import RunConfig
from core.detach import follow_run, launch_detached, request_stop, worker_command
from core.events import EvalLogged, RunFinished, RunStarted, RunStopped, StepLogged, read_events
from core.rundir import RunLocked, complete_checkpoints, lock_holder
from tui.cli import main


def test_one_process_runs_the_worker_directly(tmp_path):
    command = worker_command(tmp_path, RunConfig(), python="py", gpus=8)
    assert command == ["py", "-m", "core.worker", str(tmp_path.resolve())]


def test_several_processes_launch_through_accelerate(tmp_path):
    cfg = RunConfig(num_processes=2)
    on_cpu = worker_command(tmp_path, cfg, python="py", gpus=0, resume=True)
    assert on_cpu[:4] == ["py", "-m", "accelerate.commands.launch", "--multi_gpu"]
    assert on_cpu[on_cpu.index("--num_processes") + 1] == "2"
    assert on_cpu[-4:] == ["-m", "core.worker", str(tmp_path.resolve()), "--resume"]
    on_gpus = worker_command(tmp_path, cfg, python="py", gpus=4)
    assert "--multi_gpu" in on_gpus and "--cpu" not in on_gpus + on_cpu
    # Two launches at once must not share a rendezvous port.
    port = on_gpus.index("--main_process_port") + 1
    assert int(on_gpus[port]) > 0


def test_more_processes_than_gpus_is_refused_before_a_run_directory_exists(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    cfg = RunConfig(num_processes=4, run_name="too-many")
    with pytest.raises(ValueError, match="only 2 GPU"):
        launch_detached(cfg, tmp_path / "runs")
    assert not (tmp_path / "runs" / "too-many").exists()


def test_two_processes_on_cpu_train_one_adapter(tmp_path, tiny_model_dir, small_data, monkeypatch, capsys):
    """`tunetop train` of a 2-process config: a real gloo run, one event stream, one adapter."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=12)
    cfg.num_processes = 2
    cfg.run_name = "ddp"
    cfg.save(tmp_path / "ddp.yaml")
    code = main(["train", str(tmp_path / "ddp.yaml"), "--workspace", str(tmp_path / "runs")])
    run_dir = tmp_path / "runs" / "ddp"
    err = capsys.readouterr().err
    assert code == 0, err + (run_dir / "worker.log").read_text()[-3000:]
    assert "2 processes through accelerate launch" in err and "Finished at step 12" in err
    on_file, _ = read_events(str(run_dir / "events.jsonl"))
    started = [e for e in on_file if isinstance(e, RunStarted)]
    assert len(started) == 1 and started[0].device == "cpu x2 processes", started
    finished = [e for e in on_file if isinstance(e, RunFinished)]
    assert [e.step for e in finished] == [12]
    steps = [e.step for e in on_file if isinstance(e, StepLogged)]
    assert steps == sorted(set(steps)), "each step is logged once, by the main process"
    evals = [e.eval_loss for e in on_file if isinstance(e, EvalLogged)]
    assert len(evals) == 2 and evals[-1] < evals[0]
    final = Path(finished[0].output_path)
    adapters = [p for p in run_dir.rglob("adapter_model.safetensors") if "checkpoint-" not in str(p)]
    assert adapters == [final / "adapter_model.safetensors"]
    assert [c.name for c in complete_checkpoints(run_dir)] == ["checkpoint-6", "checkpoint-12"]


def test_a_stop_file_stops_every_process_on_the_same_step(tmp_path, tiny_model_dir, small_data):
    """Each process sees STOP; the all-reduce agrees, rank 0 saves, and the launch exits."""
    cfg = tiny_run_config(tiny_model_dir, small_data, max_steps=200)
    cfg.num_processes = 2
    cfg.run_name = "ddp-stop"
    cfg.eval.eval_steps = cfg.eval.save_steps = 100
    run_dir = launch_detached(cfg, tmp_path / "runs", env={"CUDA_VISIBLE_DEVICES": ""})
    session = os.getsid(int((run_dir / "worker.pid").read_text()))  # launcher and ranks share it
    deadline = time.time() + 600
    events = []
    for event in follow_run(run_dir, poll_interval=0.2, should_stop=lambda: time.time() > deadline):
        events.append(event)
        if isinstance(event, StepLogged) and event.step == 2:
            # The launching process holds the run's lock for every rank: no second trainer.
            assert lock_holder(run_dir) == session
            with pytest.raises(RunLocked, match=f"process {session}"):
                launch_detached(cfg, tmp_path / "runs", resume_dir=run_dir)
            request_stop(run_dir)
    log = (run_dir / "worker.log").read_text()
    assert isinstance(events[-1], RunStopped), log[-3000:]
    assert 2 <= events[-1].step < 200
    assert [c.name for c in complete_checkpoints(run_dir)] == [f"checkpoint-{events[-1].step}"]
    # The launcher exits once both processes have; under load that takes a while, so wait on
    # the session emptying itself, with a generous ceiling only against a hang.
    exit_deadline = time.monotonic() + 300
    while in_session(session) and time.monotonic() < exit_deadline:
        time.sleep(0.2)
    assert not in_session(session), log[-3000:]
    assert lock_holder(run_dir) is None


def in_session(session: int) -> list[int]:
    """Live processes of a session (zombies of this test's own children excepted)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive
