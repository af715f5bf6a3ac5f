"""A real terminal for end-to-end tests: the installed ``tunetop`` in a pseudo-terminal.

:class:`Terminal` starts the console script (this checkout's code first on the path) in a
pty of a given size with ``TERM=xterm-256color``, renders what it writes with ``pyte`` (a
VT100/xterm emulator), and sends keys as bytes, several at once the way SSH delivers a fast
typist's keys. Tests wait for text on the rendered screen, never for a fixed time.

Reuse it for any end-to-end case::

    with Terminal.start(tmp_path) as term:
        term.wait_for("tunetop · Data")
        term.send("2")
        term.wait_for("tunetop · Config")
        frames = term.watch(3.0)          # what the screen showed over 3 s
        assert term.footer().count("? Keys") == 1
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parents[2]
"""The checkout under test: first on the child's ``PYTHONPATH``."""

KEYS = {
    "enter": b"\r", "tab": b"\t", "shift+tab": b"\x1b[Z", "escape": b"\x1b", "up": b"\x1b[A",
    "down": b"\x1b[B", "right": b"\x1b[C", "left": b"\x1b[D", "home": b"\x1b[H",
    "end": b"\x1b[F", "backspace": b"\x7f", "ctrl+p": b"\x10", "ctrl+q": b"\x11",
    "ctrl+s": b"\x13", "ctrl+o": b"\x0f", "ctrl+t": b"\x14", "ctrl+f": b"\x06",
    "ctrl+l": b"\x0c",
}
"""Bytes an xterm sends for the named keys; anything else is sent as typed text."""

ESCAPE_PAUSE = 0.15
"""A lone Escape is told from the start of an escape sequence by the quiet after it: pause
this long after sending one (Textual waits about 0.1 s)."""


def tunetop_command() -> list[str]:
    """The installed console script beside this Python, or ``python -m tui.cli``."""
    script = Path(sys.executable).with_name("tunetop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]


class Terminal:
    """A pseudo-terminal running one command, rendered by pyte."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str],
                 size: tuple[int, int] = (80, 24)) -> None:
        columns, rows = size
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.fd = master
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                                        cwd=cwd, env=env, start_new_session=True)
        os.close(slave)

    @classmethod
    def start(cls, workdir: Path, *args: str, size: tuple[int, int] = (80, 24),
              env: dict[str, str] | None = None) -> Terminal:
        """``tunetop ARGS`` in ``workdir`` (workspace ``workdir/runs`` unless ARGS name one),
        offline, with this checkout's code."""
        environment = dict(os.environ, TERM="xterm-256color", COLUMNS=str(size[0]),
                           LINES=str(size[1]), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
        environment.update(env or {})
        if "--workspace" not in args and not (args and not args[0].startswith("-")):
            args = ("--workspace", str(workdir / "runs"), *args)
        return cls([*tunetop_command(), *args], workdir, environment, size)

    # --- output -----------------------------------------------------------------------------

    def pump(self, timeout: float = 0.05) -> None:
        """Feed whatever the program wrote (waiting up to ``timeout`` for the first bytes)."""
        while True:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # the program closed the terminal
                return
            if not data:
                return
            self.stream.feed(data)
            timeout = 0

    def text(self) -> str:
        """The screen as lines of text."""
        return "\n".join(line.rstrip() for line in self.screen.display)

    def line(self, index: int) -> str:
        """One line of the screen (``-1``: the last, the footer)."""
        return self.screen.display[index]

    def footer(self) -> str:
        """The bottom line: the footer's keys."""
        return self.line(-1)

    def wait_for(self, expected: str | Callable[[str], bool], timeout: float = 60.0) -> str:
        """Pump until the screen shows ``expected`` (text, or a test of the screen's text);
        the screen's text. Fails with the screen shown."""
        check = expected if callable(expected) else (lambda shown: expected in shown)
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            shown = self.text()
            if check(shown):
                return shown
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"not on screen after {timeout} s: {expected!r}\n{shown}")

    def watch(self, seconds: float, every: float = 0.1) -> list[tuple[float, str]]:
        """The screen's text every ``every`` seconds for ``seconds``: (time since start, text)
        frames, to check that a wait shows its phase and progress."""
        frames: list[tuple[float, str]] = []
        start = time.monotonic()
        while (now := time.monotonic() - start) < seconds:
            self.pump(every)
            frames.append((now, self.text()))
        return frames

    # --- input ------------------------------------------------------------------------------

    def send(self, *keys: str) -> None:
        """Send keys in one write, as one packet (named keys from :data:`KEYS`, else text)."""
        self.stream_bytes(b"".join(KEYS.get(key, key.encode()) for key in keys))

    def stream_bytes(self, data: bytes) -> None:
        """Write raw bytes to the program's terminal."""
        os.write(self.fd, data)
        if data.endswith(b"\x1b"):
            time.sleep(ESCAPE_PAUSE)

    # --- the process ------------------------------------------------------------------------

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the program to end (keeping its terminal drained); its exit status."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s\n{self.text()}")
            self.pump()
        return self.process.returncode

    def close(self) -> None:
        """End the program (its whole session) if it still runs, and close the terminal."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        os.close(self.fd)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
