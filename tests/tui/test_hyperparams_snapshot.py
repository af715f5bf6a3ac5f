"""SVG snapshot of the hyperparams screen: a full fine-tune of SmolLM2 too big for an 8 GB GPU.

Run as a script to rewrite ``screenshots/hyperparams.svg`` from the real app in the same
state: ``.venv/bin/python tests/tui/test_hyperparams_snapshot.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # run as a script too

from fakes import StubGpuMonitor, h100_sample  # noqa: E402
from transformers import LlamaConfig  # noqa: E402

from core.config import RunConfig  # noqa: E402
from core.machine import GIB  # noqa: E402
from core.memory import AvailableMemory  # noqa: E402
from core.timing import Throughput, estimate_time, plan_run  # noqa: E402
from tui.app import AppServices, make_app  # noqa: E402
from tui.screens.hyperparams import EstimateServices  # noqa: E402
from tui.widgets.config_form import ConfigForm  # noqa: E402

SMOLLM2 = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                      num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                      tie_word_embeddings=True, max_position_embeddings=8192)
"""The bundled model's shape, so the figures are the real ones without converting it."""


def demo_time(config, probe, progress):
    """A fixed time estimate (a machine's real one would move the snapshot): 2.4 s a step
    measured, 0.3 s a validation row."""
    figures = Throughput(step_seconds=2.4, eval_row_seconds=0.3, save_seconds=4.0, setup_seconds=20.0,
                         source="cached probe", spread=0.12, device="cuda")
    return estimate_time(plan_run(config, train_rows=900, val_rows=100), figures)


def demo_app():
    """The app with the bundled model's shape, an 8 GB GPU and rows at max_length."""
    gpu = AvailableMemory(8 * GIB, "gpu", "NVIDIA GeForce RTX 4060")
    estimate = EstimateServices(
        model_config=lambda config: SMOLLM2,
        available=lambda: gpu,
        longest_tokens=lambda config: (config.data.max_length, "rows at data.max_length"),
        has_bitsandbytes=lambda: True,
        time_estimate=demo_time,
    )
    services = AppServices(gpu_monitor_factory=lambda: StubGpuMonitor(h100_sample()),
                           estimate=estimate)
    return make_app(config=RunConfig(run_name="demo"), services=services)


async def demo_before(pilot) -> None:
    """Open the screen, pick the full fine-tune preset, then 32 rows of 2048 tokens."""
    app = pilot.app
    await pilot.press("2", "f4")
    form = app.screen.query_one(ConfigForm)
    for path, text in (("data.max_length", "2048"), ("optim.per_device_train_batch_size", "32")):
        form.highlight(path)
        await pilot.press("enter", *text, "enter")
    form.highlight("method")
    await pilot.pause(0.6)
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)
    app.clear_notifications()
    await pilot.pause(0.2)


def test_hyperparams_snapshot(snap_compare):
    """Full fine-tune, 32 x 2048 tokens on 8 GB: the verdict and three fixes that fit."""
    assert snap_compare(demo_app(), terminal_size=(120, 40), run_before=demo_before)


def test_hyperparams_snapshot_at_80x24(snap_compare):
    """The same at 80x24: the highlighted field with its help, figures whole, the footer with
    ``? Keys``."""
    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=demo_before)


async def _write_screenshot(out: Path) -> None:
    app = demo_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await demo_before(pilot)
        app.save_screenshot(str(out))


if __name__ == "__main__":
    asyncio.run(_write_screenshot(HERE.parents[1] / "screenshots" / "hyperparams.svg"))
