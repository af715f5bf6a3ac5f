"""A run started in the app survives the app: the terminal goes away (SIGHUP), the run
trains on to its end (the real engine on a tiny model, in a pseudo-terminal at 80x24)."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_quit_in_a_terminal import read_until
from test_training_real_engine import tiny_config

from core.detach import follow_run
from core.events import RunFinished
from core.runs import pid_alive, read_pid

pytestmark = pytest.mark.slow

CHILD = """
import os, sys
from core.config import RunConfig
from tui.app import make_app
from tui.cli.app import run_app

code = run_app(make_app(config=RunConfig.load(sys.argv[1]), workspace=sys.argv[2]))
os._exit(code)
"""


def wait_for_file(path: Path, timeout: float, fd: int) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        read_until(fd, b"\x00", timeout=0.2)  # keep the terminal drained
    return path.exists()


def test_a_run_started_in_the_app_survives_the_app_being_hung_up(tiny_model_dir, small_data, tmp_path):
    config = tiny_config(tiny_model_dir, small_data, steps=4)
    config.save(tmp_path / "run.yaml")
    workspace = tmp_path / "runs"
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    app = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "run.yaml"), str(workspace)],
                           stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        assert b"Data" in read_until(master, b"Data", timeout=120)  # the app is up
        os.write(master, b"3")
        assert b"Press s to train" in read_until(master, b"Press s to train", timeout=30)
        os.write(master, b"s")
        run_dir = workspace / "tiny"
        assert wait_for_file(run_dir / "events.jsonl", 300, master), "the run did not start"
        worker = read_pid(run_dir)
        assert worker and worker != app.pid
        app.send_signal(signal.SIGHUP)  # the SSH connection dropped
        app.wait(timeout=30)
        assert pid_alive(worker), "the run died with the app"
    finally:
        if app.poll() is None:
            app.kill()
        app.wait()
        os.close(master)
    deadline = time.monotonic() + 600
    events = list(follow_run(run_dir, poll_interval=0.2, should_stop=lambda: time.monotonic() > deadline))
    assert isinstance(events[-1], RunFinished), (run_dir / "worker.log").read_text()
    assert events[-1].step == 4 and (run_dir / "final").is_dir()
