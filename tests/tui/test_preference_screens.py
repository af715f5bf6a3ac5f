"""Preference tuning in the app at 80x24: the review's ``d`` starts a DPO run of model B on
the votes, the Train screen shows the DPO metrics and charts them, the Config screen edits the
new fields."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from rich.console import Console
from textual.widgets._footer import FooterKey

from fakes import T0, ScriptedEngine, engine_factory, run_started, step
from test_review_screen import (FakeGenerator, NoTokenizer, key_for, open_review,
                                start_generation, wait_for, write_prompts)
from test_training_screen import start_run

from core.config import RunConfig
from core.events import EvalLogged, RunFinished
from tui.app import AppServices, make_app
from tui.dataset_tasks import DatasetServices
from tui.widgets.confirm import Confirm
from tui.widgets.reward_plot import RewardPlot
from tui.widgets.run_figures import RunFigures, figure_rows


async def test_d_on_the_results_starts_a_dpo_run_of_b_on_the_votes(tmp_path):
    workspace = tmp_path / "runs"
    sft = workspace / "sft-run"
    (sft / "final").mkdir(parents=True)
    RunConfig(run_name="sft-run").save(sft / "config.yaml")
    (sft / "final" / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "bundled:smollm2-135m-instruct", "r": 16}))
    prompts = write_prompts(tmp_path / "prompts.jsonl", 6)
    services = AppServices(review_generator=FakeGenerator(), engine_factory=engine_factory(), in_process=True,
                           dataset=DatasetServices(load_tokenizer=NoTokenizer()))
    app = make_app(config=RunConfig(run_name="test"), services=services, workspace=str(workspace))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot)
        review = await start_generation(pilot, screen, prompts, b=str(sft))
        await wait_for(pilot, lambda: review.complete and not screen.generating)
        await pilot.press(key_for(review, 0, "b"), key_for(review, 1, "b"), key_for(review, 2, "a"),
                          key_for(review, 3, "b"), "t", "s")
        await pilot.press("o")
        assert screen.view == "results"
        await pilot.pause()
        keys = {k.description: k for k in screen.query(FooterKey)}
        assert "Train DPO" in keys and keys["Train DPO"].region.right <= 80  # not cut off
        count = len(ScriptedEngine.instances)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        question = app.screen.question
        assert "Train sft-run-dpo by DPO on 4 preference pairs; left out: 1 tie, 1 skipped" in question
        await pilot.press("n")  # nothing starts
        await pilot.pause()
        assert len(ScriptedEngine.instances) == count and app.current_mode == "review"
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.current_mode == "training")
        await wait_for(pilot, lambda: len(ScriptedEngine.instances) > count)
        config = ScriptedEngine.instances[-1].config
        assert config.objective == "dpo" and config.run_name == "sft-run-dpo"
        assert config.model.adapter == str(sft / "final")
        assert config.data.path == str(review.path / "preferences.jsonl")
        rows = [json.loads(line) for line in (review.path / "preferences.jsonl").read_text().splitlines()]
        assert [r["chosen"][0]["content"] for r in rows] == ["B says 1", "B says 2",
                                                             json.dumps({"n": 3}), "B says 4"]


def dpo_series(run_dir: str = "runs/dpo-run"):
    """A short DPO run: the margin and accuracy grow, one validation on held-out pairs."""
    events = [replace(run_started(run_dir, 20), objective="dpo")]
    for n in range(2, 21, 2):
        events.append(replace(step(n, 0.69 - 0.02 * n, total=20), reward_margin=0.05 * n,
                              reward_accuracy=min(1.0, 0.5 + 0.05 * n),
                              reward_chosen=0.01 * n, reward_rejected=-0.04 * n))
    events.append(EvalLogged(step=20, eval_loss=0.31, best_eval_loss=0.31, is_best=True,
                             reward_margin=0.8, reward_accuracy=0.9, time=T0 + 20.5))
    events.append(RunFinished(step=20, output_path=f"{run_dir}/final", final_eval_loss=0.31,
                              best_eval_loss=0.31, elapsed_seconds=20.0, time=T0 + 22))
    return events


async def test_train_screen_shows_and_charts_the_dpo_metrics(app_factory):
    app = app_factory(engine_factory=engine_factory(script=dpo_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, "finished")
        rows = dict(figure_rows(screen.progress, screen.run_state, T0 + 30))
        assert rows["Margin"] == "1.000 · val 0.800" and rows["Pref acc"] == "100% · val 90%"
        assert rows["Rewards"] == "chosen +0.200 · rejected -0.800"
        panel = screen.query_one(RunFigures)
        console = Console(file=io.StringIO(), width=panel.content_size.width)
        console.print(panel.render())  # the rows that fit the panel at 80x24
        figures = console.file.getvalue()
        assert "Margin" in figures and "Pref acc" in figures, figures
        assert panel.border_title == "Run · dpo · lora"  # the Method row gives way at 24 lines
        plot = screen.query_one(RewardPlot)
        assert [m for _, m in plot.margin][-1] == 1.0 and list(plot.eval_margin) == [(20, 0.8)]
        for chart in ("lr", "rewards", "loss"):  # g cycles through three charts in a DPO run
            await pilot.press("g")
            assert screen.chart == chart
        await pilot.press("g", "g")
        await pilot.pause(0.4)
        assert "Reward margin" in str(plot.border_title) and "1.000" in str(plot.border_subtitle)


async def test_sft_runs_keep_two_charts(app_factory):
    app = app_factory(engine_factory=engine_factory())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, "finished")
        assert "Margin" not in dict(figure_rows(screen.progress, "finished", T0))
        await pilot.press("g", "g")
        assert screen.chart == "loss"


async def test_config_screen_edits_the_preference_fields_at_80x24(app_factory):
    from test_hyperparams import estimate_services, open_screen, settle, type_into

    from tui.widgets.config_form import ConfigForm

    app = app_factory(engine_factory=engine_factory())
    app.services.estimate = estimate_services()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot)
        await pilot.press("f5")  # the DPO preset
        await settle(app, pilot)
        assert (app.config.objective, app.config.optim.learning_rate) == ("dpo", 5e-5)
        form = screen.query_one(ConfigForm)
        assert form.field("objective").control.value == "dpo"
        await type_into(pilot, screen, "preference.beta", "0")
        await settle(app, pilot)
        error = str(form.field("preference.beta").query_one(".field-error").render())
        assert "must be positive" in error and "Use 0.1" in error
        await type_into(pilot, screen, "preference.beta", "0.2")
        await settle(app, pilot)
        assert app.config.preference.beta == 0.2
        # The DPO activations (both answers of each pair) are in the estimate.
        assert "pairs x 2 answers" in " ".join(p.detail for p in screen.estimate.parts)
