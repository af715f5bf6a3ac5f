"""The real app in a pseudo-terminal: ctrl+q is back at the shell within 2 s even while a
thread worker is still busy (at start-up the dataset screen imports torch for its tokenizer,
which takes seconds; here a loader that takes 60 s stands in for it)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

CHILD = """
import sys, time
from core.config import RunConfig
from tui.app import AppServices, make_app
from tui.cli.app import run_app
from tui.dataset_tasks import DatasetServices

def slow_tokenizer(ref):
    time.sleep(60)

services = AppServices(dataset=DatasetServices(load_tokenizer=slow_tokenizer))
code = run_app(make_app(config=RunConfig(), services=services, workspace=sys.argv[1]))
import os
os._exit(code)  # what the console script does after the app (tui.cli.run)
"""


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return seen


def test_ctrl_q_returns_within_two_seconds_while_a_worker_is_busy(tmp_path):
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "runs")],
                             stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        shown = read_until(master, b"Loading", timeout=60)  # "Loading the tokenizer" in the status bar
        assert b"Loading" in shown, shown[-2000:]
        read_until(master, b"\x00", timeout=0.5)
        asked = time.monotonic()
        os.write(master, b"\x11")  # ctrl+q
        while child.poll() is None and time.monotonic() - asked < 10:
            read_until(master, b"\x00", timeout=0.05)  # keep the terminal drained
        took = time.monotonic() - asked
        assert child.poll() == 0, f"exit status {child.poll()}"
        assert took < 2, f"quit took {took:.2f} s"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        os.close(master)
