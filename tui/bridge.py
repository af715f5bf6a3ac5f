"""From engine events to Textual messages, without ever blocking the trainer.

:class:`EventBridge` is the engine's sink. It runs on the engine's thread and only calls
``post_message`` (thread-safe, non-blocking); it never uses ``call_from_thread``, which waits
for the UI and costs the trainer about half its throughput. Step metrics are batched so at
most ~10 messages a second reach the UI, each carrying every step since the last one;
evaluations, checkpoints, log lines and final events are always posted at once, after the
steps before them.

Library warnings and log records never come this way: the engine keeps them in the run's
``debug.log`` (``core.noise``); the log pane shows the engine's own messages.

:class:`core.handle.DetachedRun` feeds a detached run's ``events.jsonl`` through the same
bridge, from a thread worker, so an attached screen receives exactly the messages of an
in-app run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Protocol

from textual.message import Message

from core.events import Event, StepLogged
from tui.messages import EventReceived, StepsLogged

STEP_INTERVAL = 0.1
"""Seconds between two step-metric messages (~10 per second)."""


class Target(Protocol):
    """Anything with Textual's thread-safe ``post_message`` (an App, a Screen)."""

    def post_message(self, message: Message) -> bool: ...


class EventBridge:
    """Engine sink that posts messages to ``target``; callable from any thread.

    Messages carry ``origin`` (this bridge) so a screen can ignore a previous run's stragglers.
    Call :meth:`flush` from the UI now and then (the training screen does at 4 Hz) so the last
    steps before a quiet spell are not held back.
    """

    def __init__(
        self,
        target: Target,
        step_interval: float = STEP_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.step_interval = step_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[StepLogged] = []
        self._last_post = float("-inf")
        self._closed = False
        self.posted = 0
        """Messages posted so far (for tests and the benchmark)."""
        self.received = 0
        """Events received so far."""

    def __call__(self, event: Event) -> None:
        """The sink: batch steps, post everything else at once."""
        with self._lock:
            if self._closed:
                return
            self.received += 1
            if isinstance(event, StepLogged):
                self._pending.append(event)
                if self._clock() - self._last_post >= self.step_interval:
                    self._post_pending()
                return
            self._post_pending()  # keep order: the steps before this event go first
            self._post(EventReceived(event))

    def flush(self) -> None:
        """Post the steps held back by the throttle, if any."""
        with self._lock:
            if not self._closed:
                self._post_pending()

    def close(self) -> None:
        """Drop everything from now on (the screen moved to another run)."""
        with self._lock:
            self._closed = True
            self._pending.clear()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _post_pending(self) -> None:
        if self._pending:
            batch, self._pending = tuple(self._pending), []
            self._last_post = self._clock()
            self._post(StepsLogged(batch))

    def _post(self, message: Message) -> None:
        message.origin = self  # type: ignore[attr-defined]
        self.posted += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Another thread: post_message hands the message over with call_soon_threadsafe.
            self.target.post_message(message)
        else:
            # On the UI thread post_message would queue at once, overtaking messages other
            # threads have handed over but the loop has not queued yet; call_soon keeps order.
            loop.call_soon(self.target.post_message, message)
