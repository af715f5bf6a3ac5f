"""The VRAM gauge: GPU memory of the run's device, sampled through NVML about once a second.

Sampling runs in a thread worker on its own timer chain: the next poll is scheduled only
after the last sample arrived, so polls never overlap, and samples are posted with
``can_replace`` so a busy UI only ever sees the newest. Without an NVIDIA GPU the bar is the
training process's memory against the machine's instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import RenderResult
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from core.gpu import GpuMonitor, GpuSample, format_gib
from core.machine import format_bytes

SAMPLE_SECONDS = 1.0
"""Seconds between the end of one sample and the start of the next (about 1 Hz)."""


def gauge_lines(sample: GpuSample | None) -> tuple[str, str]:
    """The two lines of the gauge as plain text: headline and details (the bar goes first)."""
    if sample is None:
        return "GPU: sampling…", ""
    if not sample.available:
        why = f"GPU unavailable: {sample.reason}"
        fraction = ram_fraction(sample)
        if fraction is None:
            return (f"No NVIDIA GPU — process memory {format_bytes(sample.process_rss_bytes)} / system "
                    f"{format_bytes(sample.system_total_bytes)}"), why
        head = (f"{format_bytes(sample.process_rss_bytes)} / {format_bytes(sample.system_total_bytes)}"
                f" ({fraction:.0%})")
        return head, f"{why} · the bar is this run's share of the machine's memory"
    head = (
        f"{format_gib(sample.used_bytes)} / {format_gib(sample.total_bytes)} GiB"
        f" ({sample.used_fraction:.0%})"
    )
    details = [sample.name or "GPU", f"this run {format_bytes(sample.process_bytes)}"]
    if sample.utilization_percent is not None:
        details.append(f"util {sample.utilization_percent}%")
    if sample.temperature_c is not None:
        details.append(f"{sample.temperature_c}°C")
    if sample.power_watts is not None:
        limit = f"/{sample.power_limit_watts:.0f}" if sample.power_limit_watts else ""
        details.append(f"{sample.power_watts:.0f}{limit} W")
    details.append(f"RAM {format_bytes(sample.process_rss_bytes)}")
    return head, " · ".join(details)


def ram_fraction(sample: GpuSample) -> float | None:
    """The training process's share of the machine's memory, when both are known."""
    if sample.process_rss_bytes is None or not sample.system_total_bytes:
        return None
    return min(sample.process_rss_bytes / sample.system_total_bytes, 1.0)


class VramGauge(Widget):
    """GPU memory bar with the run's share, utilisation, temperature and power."""

    DEFAULT_CSS = """
    VramGauge {
        height: 2;
        padding: 0 1;
    }
    VramGauge > .vram-gauge--bar { color: $success; }
    VramGauge > .vram-gauge--empty { color: $panel-lighten-2; }
    VramGauge > .vram-gauge--label { text-style: bold; }
    VramGauge > .vram-gauge--details { color: $text-muted; }
    VramGauge.-warning > .vram-gauge--bar { color: $warning; }
    VramGauge.-critical > .vram-gauge--bar { color: $error; }
    VramGauge.-critical > .vram-gauge--label { color: $error; }
    VramGauge.-unavailable > .vram-gauge--label { color: $text-muted; text-style: none; }
    """

    COMPONENT_CLASSES = {
        "vram-gauge--bar",
        "vram-gauge--empty",
        "vram-gauge--label",
        "vram-gauge--details",
    }

    sample: reactive[GpuSample | None] = reactive(None)
    """The newest sample; ``None`` until the first arrives."""

    class Sampled(Message):
        """A new GPU sample; replaces an older one still waiting in the queue."""

        def __init__(self, sample: GpuSample) -> None:
            super().__init__()
            self.sample = sample

        def can_replace(self, message: Message) -> bool:
            """Only the newest sample matters."""
            return isinstance(message, VramGauge.Sampled)

    def __init__(
        self,
        monitor_factory: Callable[[], Any] | None = None,
        interval: float = SAMPLE_SECONDS,
        *,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._monitor_factory = monitor_factory
        self._monitor: Any = None
        self.interval = interval
        self.samples = 0
        """Samples received (tests use it)."""
        self._pid: int | None = None

    def on_mount(self) -> None:
        """Take the first sample at once; each sample schedules the next."""
        self._poll()

    def watch_sample(self, sample: GpuSample | None) -> None:
        """Set the level classes used by the CSS for the new sample."""
        level = sample.level if sample is not None and sample.available else "ok"
        self.set_class(level == "warning", "-warning")
        self.set_class(level == "critical", "-critical")
        self.set_class(sample is not None and not sample.available, "-unavailable")

    def set_pid(self, pid: int | None) -> None:
        """Sample the memory of process ``pid`` (the detached worker) instead of this one."""
        self._pid = pid or None
        if self._monitor is not None and hasattr(self._monitor, "pid") and pid:
            self._monitor.pid = pid

    def _poll(self) -> None:
        self._sample_gpu()

    @work(thread=True, exclusive=True, group="gpu-sample", exit_on_error=False)
    def _sample_gpu(self) -> None:
        """Read one sample off the UI thread (NVML calls can take milliseconds)."""
        if self._monitor is None:
            self._monitor = (self._monitor_factory or GpuMonitor)()
            if self._pid and hasattr(self._monitor, "pid"):
                self._monitor.pid = self._pid
        self.post_message(self.Sampled(self._monitor.sample()))

    @on(Sampled)
    def show_sample(self, message: Sampled) -> None:
        """Show the sample and schedule the next poll."""
        self.samples += 1
        self.sample = message.sample
        self.refresh()
        self.set_timer(self.interval, self._poll)

    @on(Worker.StateChanged)
    def handle_worker_state(self, event: Worker.StateChanged) -> None:
        """A failed sample (should not happen: the monitor never raises) shows as unavailable."""
        if event.worker.group != "gpu-sample":
            return
        event.stop()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.sample = GpuSample(available=False, reason=f"{type(error).__name__}: {error}")
            self.set_timer(self.interval * 5, self._poll)
        # SUCCESS, CANCELLED, PENDING, RUNNING: nothing to do (Sampled carries the result).

    def render(self) -> RenderResult:
        """Bar and headline on the first line, details on the second.

        The bar is GPU memory (``VRAM``), or without a GPU the process's memory (``RAM``).
        """
        sample = self.sample
        head, details = gauge_lines(sample)
        label_style = self.get_component_rich_style("vram-gauge--label")
        details_text = Text(details, style=self.get_component_rich_style("vram-gauge--details"),
                            no_wrap=True, overflow="ellipsis")
        if sample is None:
            return Group(Text(head, style=label_style, no_wrap=True, overflow="ellipsis"), details_text)
        if sample.available:
            label, fraction = "VRAM ", sample.used_fraction
        else:
            label, fraction = "RAM  ", ram_fraction(sample)
            if fraction is None:
                return Group(Text(head, style=label_style, no_wrap=True, overflow="ellipsis"), details_text)
        width = max(self.content_size.width - len(head) - len(label) - 2, 4)
        filled = max(round(fraction * width), 1 if fraction > 0 else 0)  # a small run still shows
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(label, style=label_style)
        line.append("█" * filled, style=self.get_component_rich_style("vram-gauge--bar"))
        line.append("░" * (width - filled), style=self.get_component_rich_style("vram-gauge--empty"))
        line.append(f" {head}", style=label_style)
        return Group(line, details_text)
