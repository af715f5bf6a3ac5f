"""The control side of an engine: its run goes on in a background thread and takes stop and
save-now requests from any other thread.

:class:`core.engine.Engine` is one; the UI tests' scripted engine is another, so both keep
the same contract by sharing this code.
"""

from __future__ import annotations

import threading
from typing import Any


class RunThread:
    """Runs :meth:`run` in a daemon thread; :meth:`stop` and :meth:`save_now` set flags that
    ``run`` honours at the end of the current optimizer step."""

    thread_name = "tunetop-engine"
    """Name of the background thread (it shows in thread dumps)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._save = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> Any:
        """The whole run, in the calling thread (subclasses define it)."""
        raise NotImplementedError

    def start(self) -> None:
        """Call :meth:`run` in a background daemon thread."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to stop after the current optimizer step, saving a checkpoint."""
        self._stop.set()

    def save_now(self) -> None:
        """Ask for a checkpoint at the end of the current optimizer step."""
        self._save.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()
