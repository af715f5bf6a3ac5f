"""The forgetting guard on the Train screen at 80x24: the drift figure, the task vs general
chart (``g``) and the drift alert, against the scripted engine."""

from __future__ import annotations

from fakes import drift_series, engine_factory, training_series
from test_training_screen import figures_text, open_training, wait_for
from textual.widgets import ContentSwitcher

from tui.widgets.alerts import AlertsPanel
from tui.widgets.drift_plot import DriftPlot
from tui.widgets.run_figures import RunFigures


async def test_drift_shows_in_figures_chart_and_alert_at_80x24(app_factory):
    app = app_factory(engine_factory=engine_factory(script=drift_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        # the alert: raised once, at the evaluation where drift passed 0.3 having risen twice
        alerts = [a for a in screen.query_one(AlertsPanel).alerts if a.key == "drift"]
        assert len(alerts) == 1 and alerts[0].detail.startswith("Step 60:")
        assert "optim.learning_rate" in alerts[0].detail and "data.replay" in alerts[0].detail
        # the figure, in a row the 80x24 panel has room for (two rows of status come first)
        figures = screen.query_one(RunFigures)
        rows = list(figures_text(screen))
        assert figures_text(screen)["Drift"] == "+0.600"
        assert rows.index("Drift") + 2 < figures.content_region.height
        # g: loss, learning rate, then task vs general drift
        await pilot.press("g", "g")
        assert screen.query_one("#charts", ContentSwitcher).current == "drift-plot"
        plot = screen.query_one(DriftPlot)
        await wait_for(pilot, lambda: plot.settled and plot.replots >= 1)
        assert [s for s, _ in plot.drifts] == [0, 20, 40, 60, 80, 100]  # the base's 0 first
        assert len(plot.evals) == 5 and plot.threshold == 0.3
        assert "drift +0.600" in str(plot.border_subtitle) and "0.3" in str(plot.border_subtitle)
        drawn = plot.render().plain
        assert "┄" in drawn and "├0.30" in drawn  # the threshold, on the drift axis
        assert plot.region.right <= 80 and plot.region.bottom <= 24


async def test_a_run_without_drift_says_so_and_keeps_its_figures(app_factory):
    app = app_factory(engine_factory=engine_factory(script=training_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert "Drift" not in figures_text(screen)
        assert not [a for a in screen.query_one(AlertsPanel).alerts if a.key == "drift"]
        await pilot.press("g", "g")
        plot = screen.query_one(DriftPlot)
        await wait_for(pilot, lambda: plot.settled and plot.replots >= 1)
        assert "drift not measured" in str(plot.border_subtitle) and not plot.drifts


async def test_runs_list_shows_each_runs_drift_at_80x24(app_factory, tmp_path):
    from test_runs_screen import open_runs, write_run
    from textual.widgets import DataTable

    ws = tmp_path / "runs"
    write_run(ws, "forgets", drift_series())
    write_run(ws, "no-drift", training_series())
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(DataTable)
        drift = [c.key.value for c in table.ordered_columns].index("drift")
        assert table.get_row(str(ws / "forgets"))[drift] == "+0.600"
        assert table.get_row(str(ws / "no-drift"))[drift] == "—"
        # the drift column is on screen at 80 columns, beside the best validation loss
        end = sum(c.get_render_width(table) for c in table.ordered_columns[:drift + 1])
        assert end <= table.size.width - 20
