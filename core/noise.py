"""Library output kept away from the user and written to the run's ``debug.log``.

transformers, peft, trl, accelerate, bitsandbytes and datasets warn about deprecations, kernel
fallbacks and the like, and draw progress bars while they load; none of it helps someone
watching a run (tunetop reports what matters as events), and on a terminal it lands in the
middle of the UI or the progress bar. While :func:`hold_library_output` is held, the records of
those loggers, every ``warnings.warn`` and the libraries' progress bars stay off the terminal:
records are buffered until :meth:`LibraryOutput.write_to` names the file (the run directory is
made only during setup), then written there. Problems the engine itself detects are events.
transformers' own stderr handler and the progress bars are switched off for the libraries
already imported when the hold begins or a file is named.

The hold is process-wide and counted: the detached worker holds it from its first line, the
engine holds it during its run, and the output is restored once the last holder lets go.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from pathlib import Path

LIBRARY_LOGGERS = (
    "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "huggingface_hub",
    "torch", "py.warnings",
)
"""Loggers whose records go to ``debug.log`` instead of the terminal (``py.warnings`` carries
``warnings.warn``). Anything else reaching the root logger goes there too."""
BUFFER_RECORDS = 5_000
"""Records kept while no file is named yet; older ones are dropped."""
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d]: %(message)s"


class _Router(logging.Handler):
    """Buffers records until a file is named, then writes them there."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(FORMAT))
        self.buffer: deque[logging.LogRecord] = deque(maxlen=BUFFER_RECORDS)
        self.file: logging.FileHandler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """To the file once there is one, else to the buffer."""
        if self.file is not None:
            self.file.handle(record)
        else:
            self.buffer.append(record)

    def open(self, path: Path) -> None:
        """Write to ``path`` (appending) from now on, buffered records first."""
        with self.lock:
            if self.file is not None and Path(self.file.baseFilename) == path.resolve():
                return
            if self.file is not None:
                self.file.close()
            self.file = logging.FileHandler(path, mode="a", encoding="utf-8")
            self.file.setFormatter(self.formatter)
            while self.buffer:
                self.file.handle(self.buffer.popleft())

    def close(self) -> None:
        """Close the file and forget the buffer."""
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None
            self.buffer.clear()
        super().close()


class LibraryOutput:
    """The process-wide hold on library output; get it with :func:`hold_library_output`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._router: _Router | None = None
        self._restore: list = []

    @property
    def held(self) -> bool:
        """Whether library output is kept off the terminal now."""
        return self._holders > 0

    @property
    def path(self) -> Path | None:
        """The file records go to, once named."""
        router = self._router
        return Path(router.file.baseFilename) if router is not None and router.file is not None else None

    def hold(self) -> LibraryOutput:
        """Take one hold (the first one reroutes the libraries); returns self."""
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._install()
        return self

    def write_to(self, path: str | Path) -> None:
        """Write held records to ``path`` from now on (the run's ``debug.log``).

        Call it again once torch and transformers are imported (the engine does, in its
        setup): their own stderr handler and progress bars are switched off then.
        """
        with self._lock:
            if self._router is None:
                return
            self._router.open(Path(path))
            self._quiet_imported()

    def release(self) -> None:
        """Give back one hold; the last one restores the libraries' own output."""
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                self._uninstall()

    # --- rerouting ------------------------------------------------------------------------

    def _install(self) -> None:
        router = self._router = _Router()
        for name in ("", *LIBRARY_LOGGERS):
            logger = logging.getLogger(name)
            logger.addHandler(router)
            if name:
                self._restore.append(lambda lg=logger, p=logger.propagate: setattr(lg, "propagate", p))
                logger.propagate = False  # not to the root logger too: once is enough
            self._restore.append(lambda lg=logger: lg.removeHandler(router))
        # warnings.warn -> the py.warnings logger (logging's own switch, restored on release).
        captured = getattr(logging, "_warnings_showwarning", None) is not None
        if not captured:
            logging.captureWarnings(True)
            self._restore.append(lambda: logging.captureWarnings(False))
        self._quiet_imported()

    def _quiet_imported(self) -> None:
        """Switch off the stderr handler and progress bars of the libraries imported so far
        (importing them here would cost seconds in processes that never use them)."""
        tf_logging = sys.modules.get("transformers.utils.logging")
        if tf_logging is not None:
            # transformers writes to stderr through a handler of its own.
            default = getattr(tf_logging, "_default_handler", None)
            if default is not None and default in logging.getLogger("transformers").handlers:
                tf_logging.disable_default_handler()
                self._restore.append(tf_logging.enable_default_handler)
            if tf_logging.is_progress_bar_enabled():
                tf_logging.disable_progress_bar()
                self._restore.append(tf_logging.enable_progress_bar)
        hub = sys.modules.get("huggingface_hub.utils")
        if hub is not None and not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
            self._restore.append(hub.enable_progress_bars)
        datasets = sys.modules.get("datasets")
        if datasets is not None and datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            self._restore.append(datasets.enable_progress_bars)

    def _uninstall(self) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()
        if self._router is not None:
            self._router.close()
            self._router = None


_OUTPUT = LibraryOutput()


def hold_library_output() -> LibraryOutput:
    """Keep library output off the terminal until :meth:`LibraryOutput.release`.

    Hold it before importing torch or transformers, so their import-time warnings are caught
    too; then :meth:`LibraryOutput.write_to` the run's ``debug.log`` once it exists.
    """
    return _OUTPUT.hold()


def quiet_libraries() -> None:
    """Silence library progress bars; the engine reports progress through events instead.

    Log levels stay as they are: library warnings go to the run's ``debug.log`` (core.noise).
    """
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
