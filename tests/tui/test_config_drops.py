"""The config screen says before a run how many rows training will drop (they teach nothing at
the max length in force), in its figures, and asks before starting such a run."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console
from test_hyperparams import config_screen, estimate_services, recording_app, settle

from core.config import RunConfig
from core.data import load_examples, training_outcome
from core.estimate import RowsMeasured
from tui.screens.hyperparams import HyperparamsScreen
from tui.widgets.config_form import ConfigForm
from tui.widgets.confirm import Confirm
from tui.widgets.memory_panel import MemoryPanel


@pytest.fixture
def make(app_factory, tokenizer):
    """An app with the real row rendering on 40 sample rows and a recording engine."""
    examples = load_examples("sample:support-tickets").examples[:40]

    def measure_rows(config: RunConfig) -> RowsMeasured:
        outcome = training_outcome(tokenizer, examples, config.data.max_length)
        return RowsMeasured(min(outcome.tokens().max, config.data.max_length), "40 rows",
                            outcome)

    def build():
        # the rows rendered as training will, not a fixed longest row
        estimate = dataclasses.replace(estimate_services(), longest_tokens=None,
                                       measure_rows=measure_rows)
        return recording_app(app_factory, estimate)

    return build


def figures(screen: HyperparamsScreen) -> str:
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(screen.query_one(MemoryPanel).render())
    return console.export_text()


async def test_rows_dropped_are_in_the_figures_and_starting_asks_first(make):
    app = make()
    async with config_screen(app) as (pilot, screen):
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
    async with config_screen(app) as (pilot, screen):
        assert screen._outcome is not None and screen._outcome.dropped == 0
        assert "Dropped" not in figures(screen)
        await pilot.press("ctrl+t")
        await pilot.pause(0.3)
        await app.workers.wait_for_complete()
        assert app.current_mode == "training" and len(app.started) == 1, [str(n.message) for n in app._notifications]
