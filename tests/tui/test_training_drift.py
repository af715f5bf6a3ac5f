"""The forgetting guard on the Train screen at 80x24: the drift figure, the task vs general
chart (``g``) and the drift alert, against the scripted engine; and drift in the Runs list."""

from __future__ import annotations

import io

from fakes import drift_series, engine_factory, training_series
from rich.console import Console
from test_training_screen import figures_text, start_run, wait_for
from textual.widgets import ContentSwitcher

from tui.widgets.alerts import AlertRules, AlertsPanel
from tui.widgets.drift_plot import DriftPlot
from tui.widgets.run_figures import RunFigures


def shown_figures(screen) -> str:
    """The figures panel as drawn, in the rows it has room for."""
    panel = screen.query_one(RunFigures)
    console = Console(file=io.StringIO(), width=panel.content_size.width)
    console.print(panel.render())
    return console.file.getvalue()


async def test_drift_shows_in_figures_chart_and_alert_at_80x24(app_factory):
    app = app_factory(engine_factory=engine_factory(script=drift_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, "finished")
        # the alert: raised once, at the evaluation where drift passed 0.3 having risen twice
        alerts = [a for a in screen.query_one(AlertsPanel).alerts if a.key == "drift"]
        assert len(alerts) == 1 and alerts[0].detail.startswith("Step 60:")
        assert "optim.learning_rate" in alerts[0].detail and "data.replay" in alerts[0].detail
        # the rules line of a run that measures drift names its threshold
        assert "drift > 0.3 rising" in str(screen.query_one(AlertRules).render())
        # the figure, among the rows the short 80x24 panel draws (compact rows)
        assert figures_text(screen)["Drift"] == "+0.600"
        drawn = [line.split() for line in shown_figures(screen).splitlines()]
        assert ["Drift", "+0.600"] in drawn, drawn
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
        await pilot.press("g")
        assert screen.chart == "loss"


async def test_a_run_without_drift_keeps_its_figures_and_two_charts(app_factory):
    app = app_factory(engine_factory=engine_factory(script=training_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, "finished")
        assert "Drift" not in figures_text(screen) and "Drift" not in shown_figures(screen)
        assert not [a for a in screen.query_one(AlertsPanel).alerts if a.key == "drift"]
        await pilot.press("g", "g")  # loss, learning rate, loss: no drift chart to show
        assert screen.chart == "loss" and not screen.query_one(DriftPlot).drifts


async def test_runs_list_shows_each_runs_drift(app_factory, tmp_path):
    from test_runs_screen import open_runs, write_run
    from textual.widgets import DataTable, Static

    ws = tmp_path / "runs"
    write_run(ws, "forgets", drift_series())
    write_run(ws, "no-drift", training_series())
    app = app_factory(workspace=ws)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(pilot)
        table = screen.query_one(DataTable)
        # at 80 columns the detail line says the selected run's drift (no room for a column)
        keys = [c.key.value for c in table.ordered_columns]
        assert "drift" not in keys
        row = [r.path.name for r in screen.runs].index("forgets")
        table.move_cursor(row=row)
        await pilot.pause()
        detail = str(screen.query_one("#runs-detail", Static).render())
        assert "general drift +0.600" in detail
        # wider, a Drift column beside the best validation loss
        await pilot.resize_terminal(100, 30)
        await wait_for(pilot, lambda: "drift" in [c.key.value for c in table.ordered_columns])
        keys = [c.key.value for c in table.ordered_columns]
        assert keys.index("drift") == keys.index("best") + 1
        drift = keys.index("drift")
        assert table.get_row(str(ws / "forgets"))[drift] == "+0.600"
        assert table.get_row(str(ws / "no-drift"))[drift] == "—"
        end = sum(c.get_render_width(table) for c in table.ordered_columns[:drift + 1])
        assert end <= table.size.width
        detail = str(screen.query_one("#runs-detail", Static).render())
        assert "general drift" not in detail  # the column says it
