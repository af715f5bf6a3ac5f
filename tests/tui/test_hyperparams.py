"""Pilot tests of the hyperparams screen: editing, validation, presets, save/load, start."""

from __future__ import annotations

import dataclasses
import io
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fakes import engine_factory, run_started
from rich.console import Console
from textual.pilot import Pilot
from transformers import LlamaConfig

from core.config import RunConfig
from core.machine import GIB
from core.memory import AvailableMemory
from tui.screens.hyperparams import EstimateServices, HyperparamsScreen
from tui.widgets.config_form import GROUPS, SPECS, ConfigForm, field_docs
from tui.widgets.memory_panel import MemoryPanel

NO_DRIVER = "no GPU: no NVIDIA driver (libnvidia-ml not found); compared with available system memory"
"""The note ``core.memory.available_memory`` gives on a machine without the NVIDIA driver."""

TINY = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


def estimate_services(available_gib: float = 16, source: str = "gpu",
                      bitsandbytes: bool = True) -> EstimateServices:
    """The real estimate on a tiny model, with fixed memory and rows (no model download)."""
    note = "" if source == "gpu" else NO_DRIVER
    available = AvailableMemory(int(available_gib * GIB), source,
                                "Fake GPU 16GB" if source == "gpu" else "system memory", note)
    return EstimateServices(
        model_config=lambda config: TINY,
        available=lambda: available,
        longest_tokens=lambda config: (config.data.max_length, "test rows at max_length"),
        has_bitsandbytes=lambda: bitsandbytes,
    )


def recording_app(app_factory, estimate: EstimateServices):
    """An app with these estimate services whose engine factory keeps each config it starts
    in ``app.started``."""
    started: list[RunConfig] = []
    inner = engine_factory(script=[run_started()])

    def factory(config, sink, **kwargs):
        started.append(config)
        return inner(config, sink, **kwargs)

    app = app_factory(engine_factory=factory)
    app.services.estimate = estimate
    app.started = started
    return app


@pytest.fixture
def make(app_factory):
    """Call with :func:`estimate_services` options for an app with a recording engine."""

    def build(**options: Any):
        return recording_app(app_factory, estimate_services(**options))

    return build


async def open_screen(app, pilot) -> HyperparamsScreen:
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, HyperparamsScreen)
    await settle(app, pilot)
    return screen


@asynccontextmanager
async def config_screen(app, size: tuple[int, int] = (120, 40)) -> AsyncIterator[tuple[Pilot, HyperparamsScreen]]:
    """Run ``app`` headless at ``size`` with the config screen open and settled."""
    async with app.run_test(size=size) as pilot:
        yield pilot, await open_screen(app, pilot)


async def settle(app, pilot) -> None:
    """Wait out the debounce and the estimate worker."""
    await pilot.pause(0.5)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def until(pilot, predicate, timeout: float = 5.0) -> None:
    """Pause until ``predicate()`` holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    assert predicate(), "condition not reached in time"


async def type_into(pilot, screen: HyperparamsScreen, path: str, text: str) -> None:
    """Highlight a field, edit it (Enter selects its text), type ``text`` over it, Enter."""
    form = screen.query_one(ConfigForm)
    form.stop_editing()
    form.highlight(path)
    await pilot.press("enter", *list(text), "enter")


def test_form_covers_every_config_field():
    listed = [path for _, paths in GROUPS for path in paths]
    assert sorted(listed) == sorted(SPECS) and len(listed) == len(set(listed))
    assert all(spec.help for spec in SPECS.values()), "every field needs a help line"
    assert field_docs(type(RunConfig().lora))["r"].startswith("Adapter rank: 8-16")


async def test_typing_updates_config_and_marks_modified(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "optim.learning_rate", "1e-4")
        await settle(app, pilot)
        assert app.config.optim.learning_rate == pytest.approx(1e-4)
        field = screen.query_one(ConfigForm).field("optim.learning_rate")
        assert field.has_class("-modified") and not field.has_class("-invalid")
        assert screen.estimate is not None


async def test_validation_errors_as_you_type_and_start_refuses(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        form = screen.query_one(ConfigForm)
        await type_into(pilot, screen, "lora.r", "x")
        await pilot.pause()
        assert form.field("lora.r").has_class("-invalid")
        assert "is not a whole number" in str(form.field("lora.r").query_one(".field-error").render())
        await type_into(pilot, screen, "lora.r", "0")
        await pilot.pause()
        error = str(form.field("lora.r").query_one(".field-error").render())
        assert "rank 0 must be at least 1" in error and "Start with 8 or 16" in error

        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, HyperparamsScreen) and app.started == []
        assert any("Cannot start: lora.r" in n.message for n in app._notifications)

        await type_into(pilot, screen, "lora.r", "8")
        await settle(app, pilot)
        assert not form.field("lora.r").has_class("-invalid")


async def test_unknown_target_module_is_named_with_the_alternatives(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "lora.target_modules", "q_proj, qkv")
        await settle(app, pilot)
        field = screen.query_one(ConfigForm).field("lora.target_modules")
        error = str(field.query_one(".field-error").render())
        assert "'qkv' is not in this model" in error
        assert "q_proj, k_proj, v_proj, o_proj" in error
        assert app.config.lora.target_modules == ["q_proj", "qkv"]


async def test_qlora_without_bitsandbytes_is_an_error(make):
    app = make(bitsandbytes=False)
    async with config_screen(app) as (pilot, screen):
        await pilot.press("f2")  # QLoRA preset
        await settle(app, pilot)
        field = screen.query_one(ConfigForm).field("method")
        assert "needs bitsandbytes" in str(field.query_one(".field-error").render())


async def test_presets_set_their_fields(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await pilot.press("f4")
        await settle(app, pilot)
        assert app.config.method == "full"
        assert app.config.optim.learning_rate == pytest.approx(2e-5)
        assert screen.estimate is not None and screen.estimate.method == "full"
        assert screen.estimate.params.trainable == screen.estimate.params.total
        await pilot.press("f2")
        await settle(app, pilot)
        assert app.config.method == "qlora" and app.config.optim.gradient_checkpointing
        assert screen.query_one(ConfigForm).field("method").control.value == "qlora"


async def test_save_and_load_a_config(make, tmp_path):
    app = make()
    path = tmp_path / "configs" / "mine.yaml"
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "optim.per_device_train_batch_size", "2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        path_input = screen.query_one("#path-input")
        assert path_input.has_focus
        path_input.value = ""
        await pilot.press(*list(str(path)), "enter")
        await pilot.pause()
        assert RunConfig.load(path).optim.per_device_train_batch_size == 2

        await type_into(pilot, screen, "optim.per_device_train_batch_size", "16")
        await pilot.pause()
        assert app.config.optim.per_device_train_batch_size == 16
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert screen.query_one("#path-input").value == str(path)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.config.optim.per_device_train_batch_size == 2
        control = screen.query_one(ConfigForm).field("optim.per_device_train_batch_size").control
        assert control.value == "2"


async def test_loading_a_bad_config_keeps_the_current_one(make, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rat: 1\n")
    app = make()
    async with config_screen(app) as (pilot, screen):
        before = dataclasses.asdict(app.config)
        await pilot.press("ctrl+o")
        screen.query_one("#path-input").value = str(bad)
        await pilot.press("enter")
        await pilot.pause()
        assert dataclasses.asdict(app.config) == before
        assert any("learning_rat" in n.message for n in app._notifications)
        await pilot.press("escape")
        assert not screen.query_one("#path-bar").has_class("-open")


async def test_reset_field_to_default(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "data.max_length", "64")
        await pilot.pause()
        assert app.config.data.max_length == 64
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.config.data.max_length == 512
        field = screen.query_one(ConfigForm).field("data.max_length")
        assert not field.has_class("-modified")


async def test_start_training_switches_and_starts_the_run(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "optim.seed", "7")
        await settle(app, pilot)
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert app.current_mode == "training"
        assert len(app.started) == 1 and app.started[0].optim.seed == 7


async def test_train_pressed_during_the_check_starts_when_it_ends_unless_an_edit_follows(app_factory):
    for edit_after in (None, "8"):
        checked = threading.Event()  # the check of the edited config waits for this
        services = estimate_services()
        plain = services.model_config

        def model_config(config, plain=plain, checked=checked):
            if config.optim.seed != 42:  # an edited config: its check waits
                checked.wait(10)
            return plain(config)

        services.model_config = model_config
        app = recording_app(app_factory, services)
        async with config_screen(app) as (pilot, screen):
            await type_into(pilot, screen, "optim.seed", "7")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: any("the run starts when the check ends" in n.message
                                           for n in app._notifications))
            if edit_after:
                await type_into(pilot, screen, "optim.seed", edit_after)  # not done editing
            checked.set()
            await settle(app, pilot)
            await pilot.pause(0.3)
            await app.workers.wait_for_complete()
            if edit_after:
                assert app.current_mode == "hyperparams" and app.started == []
            else:
                assert app.current_mode == "training"
                assert len(app.started) == 1 and app.started[0].optim.seed == 7


async def test_no_gpu_says_it_compares_with_system_memory(make):
    app = make(source="system", available_gib=0.001)
    async with config_screen(app) as (pilot, screen):
        est = screen.estimate
        assert est is not None and est.device == "cpu" and est.verdict == "will not fit"
        assert est.available.note == NO_DRIVER
        assert est.suggestions
        svg = app.export_screenshot()
        assert "NVIDIA" in svg and "WILL" in svg


async def test_small_terminal_scrolls_to_the_highlighted_field(make):
    app = make()
    async with config_screen(app, (80, 24)) as (pilot, screen):
        form = screen.query_one(ConfigForm)
        await pilot.press("end", "enter")  # the last field, edited
        control = screen.query_one(f"#{SPECS[GROUPS[-1][1][-1]].widget_id}")
        assert control.has_focus
        # Scrolling to the field lands after a refresh; give a loaded machine time.
        await until(pilot, lambda: form.scroll_y > 0 and form.region.contains_region(control.region))
        assert control.region.height > 0


async def test_effective_batch_counts_the_processes(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "optim.gradient_accumulation_steps", "2")
        await type_into(pilot, screen, "num_processes", "4")
        await settle(app, pilot)
        micro = app.config.optim.per_device_train_batch_size
        assert app.config.num_processes == 4
        assert screen.estimate.effective_batch == micro * 2 * 4
        panel = screen.query_one(MemoryPanel)
        console = Console(width=40, record=True, file=io.StringIO())
        console.print(panel.render())
        shown = console.export_text()
        rows = {line.split("  ")[0].strip(): line.split()[-1] for line in shown.splitlines() if "  " in line}
        assert rows["Effective batch"] == str(micro * 2 * 4) and rows["processes"] == "4", shown


async def test_a_warning_is_shown_but_does_not_stop_the_start(make):
    """A learning rate far above the usual range is a warning: listed, and the run starts."""
    app = make()
    async with config_screen(app) as (pilot, screen):
        await type_into(pilot, screen, "optim.learning_rate", "0.05")
        await settle(app, pilot)
        (problem,) = screen.problems()
        assert problem.field == "optim.learning_rate" and problem.severity == "warning"
        summary = str(screen.query_one("#problems").render())
        assert summary.startswith("⚠ warning: optim.learning_rate: 0.05 is far above the usual range")
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert app.current_mode == "training"
        assert len(app.started) == 1 and app.started[0].optim.learning_rate == pytest.approx(0.05)


async def test_time_estimate_sits_beside_the_verdict_and_ctrl_e_measures_it_at_80x24(make):
    """The FLOPs model's figure shows at once under the memory verdict, with how sure it is;
    ctrl+e runs the probe (its progress in the panel) and shows the measured figures."""
    from core.timing import Throughput, estimate_time, plan_run

    calls: list[bool] = []

    def fake_time(config, probe, progress):
        calls.append(probe)
        if probe:
            progress("measuring step 2/4")
        figures = Throughput(step_seconds=3.0 if probe else 2.0, eval_row_seconds=0.2, save_seconds=2.0,
                             setup_seconds=10.0, source="probe" if probe else "FLOPs model",
                             spread=0.1 if probe else 0.5, device="cpu")
        return estimate_time(plan_run(config, train_rows=900, val_rows=100), figures)

    app = make()
    app.services.estimate = dataclasses.replace(estimate_services(), time_estimate=fake_time)
    async with config_screen(app, (80, 24)) as (pilot, screen):
        panel = screen.query_one(MemoryPanel)
        await until(pilot, lambda: panel.time_estimate is not None)
        shown = "\n".join(strip.text for strip in panel.render_lines(panel.region.reset_offset))
        flat = " ".join(shown.split())  # the source line wraps in the narrow panel
        assert "Time" in shown and "FLOPs model, rough, ±50%; ctrl+e measures" in flat
        assert shown.index("FITS") < shown.index("Time")  # right under the verdict
        await pilot.press("ctrl+e")
        await until(pilot, lambda: panel.time_estimate.throughput.source == "probe")
        assert calls == [False, True]
        shown = "\n".join(strip.text for strip in panel.render_lines(panel.region.reset_offset))
        assert "probe, ±10%" in shown and "339 train steps" in shown
        assert panel.time_status == ""  # the progress line is gone
