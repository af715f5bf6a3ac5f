"""The config screen says before a run how many rows training will drop (they teach nothing at
the max length in force), in its figures, and asks before starting such a run."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fakes import engine_factory, run_started
from rich.console import Console
from transformers import LlamaConfig

from core.config import RunConfig
from core.data import load_examples, training_outcome
from core.estimate import RowsMeasured
from core.machine import GIB
from core.memory import AvailableMemory
from tui.screens.hyperparams import EstimateServices, HyperparamsScreen
from tui.widgets.config_form import ConfigForm
from tui.widgets.confirm import Confirm
from tui.widgets.memory_panel import MemoryPanel

TINY = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tokenizer(bundled_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_dir)


@pytest.fixture
def make(app_factory, tokenizer):
    """An app with the real row rendering on 40 sample rows and a recording engine."""
    examples = load_examples("sample:support-tickets").examples[:40]

    def measure_rows(config: RunConfig) -> RowsMeasured:
        outcome = training_outcome(tokenizer, examples, config.data.max_length)
        return RowsMeasured(min(outcome.tokens().max, config.data.max_length), "40 rows",
                            outcome)

    def build():
        started: list[RunConfig] = []
        inner = engine_factory(script=[run_started()])

        def factory(config: RunConfig, sink: Any, **kwargs: Any):
            started.append(config)
            return inner(config, sink, **kwargs)

        built = app_factory(engine_factory=factory)
        built.services.estimate = EstimateServices(
            model_config=lambda config: TINY,
            available=lambda: AvailableMemory(16 * GIB, "gpu", "Fake GPU 16GB", ""),
            measure_rows=measure_rows, has_bitsandbytes=lambda: True)
        built.started = started
        return built

    return build


async def settle(app, pilot) -> None:
    await pilot.pause(0.5)
    await app.workers.wait_for_complete()
    await pilot.pause()


def figures(screen: HyperparamsScreen) -> str:
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(screen.query_one(MemoryPanel).render())
    return console.export_text()


async def test_rows_dropped_are_in_the_figures_and_starting_asks_first(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, HyperparamsScreen)
        await settle(app, pilot)
        form = screen.query_one(ConfigForm)
        form.highlight("data.max_length")
        await pilot.press("enter", *"128", "enter")  # Enter selects the value: typing replaces it
        await settle(app, pilot)
        assert app.config.data.max_length == 128
        outcome = screen._outcome
        assert outcome is not None and 0 < outcome.dropped < 40
        summary = f"{outcome.dropped} of 40 rows teach nothing at max_length 128"
        assert f"Dropped: {summary}" in figures(screen).replace("\n", " ")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, Confirm)
        assert app.screen.question == f"{summary} and will be dropped. Start anyway?"
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and not app.started
        await pilot.press("ctrl+t")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert app.current_mode == "training" and len(app.started) == 1, [str(n.message) for n in app._notifications]


async def test_no_question_when_every_row_trains(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        screen = app.screen
        await settle(app, pilot)
        assert screen._outcome is not None and screen._outcome.dropped == 0
        assert "Dropped" not in figures(screen)
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert app.current_mode == "training" and len(app.started) == 1, [str(n.message) for n in app._notifications]
