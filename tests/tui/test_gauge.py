"""The VRAM gauge with fake NVML devices: full GPU, MIG, no per-process figures, no GPU."""

from __future__ import annotations

import os

from fakes import FakeNVMLError, StubGpuMonitor, container_gpu, full_gpu, h100_sample, mig_gpu, no_gpu
from textual.app import App, ComposeResult

from core.gpu import GIB, GpuMonitor, GpuSample
from core.machine import format_bytes
from tui.widgets.vram_gauge import VramGauge, gauge_lines

PID = os.getpid()


class GaugeApp(App[None]):
    """Just the gauge."""

    def __init__(self, factory) -> None:
        super().__init__()
        self.factory = factory

    def compose(self) -> ComposeResult:
        yield VramGauge(self.factory, interval=0.05)


async def first_sample(factory, size=(100, 4)):
    app = GaugeApp(factory)
    async with app.run_test(size=size) as pilot:
        gauge = app.query_one(VramGauge)
        for _ in range(100):
            if gauge.samples:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        return gauge.sample, set(gauge.classes), gauge.render()


def rendered_text(renderable) -> str:
    return "\n".join(r.plain for r in renderable.renderables)


async def test_full_gpu_shows_bar_share_and_warning_colour():
    sample, classes, out = await first_sample(lambda: GpuMonitor(nvml=full_gpu(PID, 72.0, 70.0), environ={}))
    text = rendered_text(out)
    assert "VRAM █" in text and "72.0 / 80.0 GiB (90%)" in text
    assert "this run 70.0 GiB" in text and "util 93%" in text and "61°C" in text and "450/700 W" in text
    assert "-warning" in classes and "-critical" not in classes


async def test_critical_level_near_the_limit():
    sample, classes, _ = await first_sample(lambda: GpuMonitor(nvml=full_gpu(PID, 78.0, 76.0), environ={}))
    assert sample.level == "critical" and "-critical" in classes


async def test_mig_slice():
    sample, classes, out = await first_sample(lambda: GpuMonitor(nvml=mig_gpu(PID), environ={}))
    text = rendered_text(out)
    assert "A100" in text and "MIG 3g.40gb" in text and "12.0 / 40.0 GiB" in text
    assert "this run n/a" in text and "util" not in text
    assert not classes & {"-warning", "-critical", "-unavailable"}


async def test_no_per_process_figures_in_a_container():
    _, _, out = await first_sample(lambda: GpuMonitor(nvml=container_gpu(), environ={}))
    assert "this run n/a" in rendered_text(out)


async def test_no_gpu_draws_process_memory_against_the_machine():
    sample, classes, out = await first_sample(lambda: GpuMonitor(nvml=no_gpu(), environ={}))
    text = rendered_text(out)
    bar, details = text.splitlines()
    share = sample.process_rss_bytes / sample.system_total_bytes
    assert bar.startswith("RAM  ") and "█" in bar and f"({share:.0%})" in bar
    assert f"/ {format_bytes(sample.system_total_bytes)}" in bar
    assert details.startswith("GPU unavailable: no NVIDIA driver")
    assert "-unavailable" in classes


def test_no_gpu_and_no_memory_figures_say_so_in_words():
    sample = GpuSample(available=False, reason="no NVIDIA driver", process_rss_bytes=None,
                       system_total_bytes=None)
    assert gauge_lines(sample) == ("No NVIDIA GPU — process memory n/a / system n/a",
                                   "GPU unavailable: no NVIDIA driver")


async def test_no_gpu_bar_fills_with_the_process_share():
    sample = GpuSample(available=False, reason="no NVIDIA driver", process_rss_bytes=int(25.6 * GIB),
                       system_total_bytes=64 * GIB)
    _, _, out = await first_sample(lambda: StubGpuMonitor(sample), size=(60, 4))
    bar = rendered_text(out).splitlines()[0]
    assert bar.startswith("RAM  ") and bar.endswith("25.6 GiB / 64.0 GiB (40%)")
    cells = bar.count("█") + bar.count("░")
    assert bar.count("█") == round(0.4 * cells)


async def test_gauge_keeps_sampling_on_its_timer_chain():
    monitor = StubGpuMonitor(h100_sample())
    app = GaugeApp(lambda: monitor)
    async with app.run_test(size=(100, 4)) as pilot:
        await pilot.pause(0.6)
        assert monitor.calls >= 3
        gauge = app.query_one(VramGauge)
        assert gauge.samples == monitor.calls or gauge.samples == monitor.calls - 1


async def test_a_raising_monitor_becomes_unavailable_not_a_crash():
    class Broken:
        pid = 0

        def sample(self):
            raise FakeNVMLError("boom")

    sample, classes, _ = await first_sample(lambda: Broken())
    assert sample is not None and not sample.available and "boom" in sample.reason


def test_gauge_lines_before_the_first_sample():
    assert gauge_lines(None) == ("GPU: sampling…", "")


async def test_training_screen_gauge_uses_the_app_service(app_factory):
    app = app_factory(monitor_factory=lambda: GpuMonitor(nvml=no_gpu(), environ={}))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        gauge = app.screen.query_one(VramGauge)
        for _ in range(100):
            if gauge.samples:
                break
            await pilot.pause(0.02)
        assert gauge.sample is not None and not gauge.sample.available
