"""Pilot tests of the training screen against the scripted engine."""

from __future__ import annotations

import subprocess
import sys

from fakes import (
    ScriptedEngine,
    engine_factory,
    nonfinite_series,
    overfit_series,
    training_series,
)
from textual.widgets import ContentSwitcher

from core.config import RunConfig
from tui.screens.training import TrainingScreen
from tui.widgets.confirm import Confirm
from tui.widgets.alerts import AlertsPanel
from tui.widgets.loss_plot import LossPlot
from tui.widgets.lr_plot import LrGradPlot
from tui.widgets.run_figures import RunFigures, figure_rows


async def wait_for(pilot, predicate, timeout: float = 10.0) -> None:
    """Let the app run until ``predicate()`` holds (fails the test after ``timeout``)."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    assert predicate(), "condition not reached in time"


async def open_training(pilot) -> TrainingScreen:
    await pilot.press("3")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, TrainingScreen)
    return screen


def figures_text(screen: TrainingScreen) -> dict[str, str]:
    figures = screen.query_one(RunFigures)
    return dict(figure_rows(figures.progress, figures.state, figures.clock()))


async def test_start_run_updates_chart_and_figures(app_factory):
    app = app_factory(engine_factory=engine_factory(delay=0.002))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        loss = screen.query_one(LossPlot)
        assert not loss.has_data and screen.run_state == "idle"
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        await wait_for(pilot, lambda: loss.settled and loss.replots >= 1)
        assert [p[0] for p in loss.train] == list(range(5, 101, 5))
        assert len(loss.evals) == 5 and loss.best == (100, loss.evals[-1][1])
        assert "Waiting" not in str(loss.render()) and "┤" in loss.render().plain
        figures = figures_text(screen)
        assert figures["Step"] == "100 / 100 (100%)"
        assert figures["Checkpoints"].startswith("5 · checkpoint-100")
        assert figures["Tokens/s"] == "4,200"
        assert figures["Best val"].endswith("@ 100")
        await app.workers.wait_for_complete()
        assert not ScriptedEngine.instances[-1].running


async def test_step_messages_are_throttled_but_no_step_is_lost(app_factory):
    series = training_series(total=2000, log_every=1, eval_every=500)
    app = app_factory(engine_factory=engine_factory(script=series))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        bridge = screen.bridge
        assert bridge.received == len(series)
        non_steps = sum(1 for e in series if type(e).__name__ != "StepLogged")
        assert bridge.posted - non_steps < 200  # 2000 steps arrive in far fewer messages
        assert len(screen.query_one(LossPlot).train) == 2000


async def test_stop_asks_for_confirmation_then_stops_after_the_step(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=3))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 15)
        assert screen.run_state == "running"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")  # keep training
        await pilot.pause()
        assert app.screen is screen and screen.run_state == "running"
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.run_state == "stopped")
        assert screen.progress.checkpoints[-1].endswith("checkpoint-15")
        assert screen.check_action("start_run", ()) is True
        assert screen.check_action("stop_run", ()) is False


async def test_checkpoint_key_saves_at_the_next_step(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=2))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 10)
        await pilot.press("c")
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert screen.progress.checkpoints[0].endswith("checkpoint-10")


async def test_chart_key_switches_to_learning_rate_and_grad_norm(app_factory):
    app = app_factory(engine_factory=engine_factory())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        switcher = screen.query_one("#charts", ContentSwitcher)
        assert switcher.current == "loss-plot"
        await pilot.press("g")
        await pilot.pause()
        assert switcher.current == "lr-plot"
        lr = screen.query_one(LrGradPlot)
        await wait_for(pilot, lambda: lr.settled and lr.replots >= 1)
        assert len(lr.learning_rate) == 20 and len(lr.grad_norm) == 20
        assert "grad norm" in str(lr.border_subtitle)
        await pilot.press("g")
        assert switcher.current == "loss-plot"
        # No new data since: switching back and forth redraws without rebuilding either figure.
        loss = screen.query_one(LossPlot)
        await pilot.pause()
        built = (loss.builds, lr.builds)
        for _ in range(4):
            await pilot.press("g")
            await pilot.pause()
        assert switcher.current == "loss-plot" and (loss.builds, lr.builds) == built
        assert "┤" in loss.render().plain
        # Data that arrives while a chart is hidden is drawn when it is shown.
        await pilot.press("g")
        loss.add_eval(101, 0.01)
        await pilot.press("g")
        await pilot.pause()
        assert loss.settled and loss.builds == built[0] + 1 and "0.0100@101" in str(loss.border_subtitle)


async def test_nonfinite_loss_raises_alert_and_stops(app_factory):
    app = app_factory(engine_factory=engine_factory(script=nonfinite_series()))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "failed")
        await pilot.pause()
        alerts = screen.query_one(AlertsPanel).alerts
        assert [a.key for a in alerts] == ["nonfinite"]
        assert "run stopped" in alerts[0].title
        assert ScriptedEngine.instances[-1]._stop.is_set()  # the UI asked the engine to stop


async def test_rising_validation_loss_and_early_stop_alerts(app_factory):
    app = app_factory(engine_factory=engine_factory(script=overfit_series()))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        await pilot.pause()
        keys = [a.key for a in screen.query_one(AlertsPanel).alerts]
        assert keys == ["early-stop", "overfit@40"]  # newest first
        assert screen.query_one(LossPlot).best == (40, 1.1)


async def test_engine_failure_is_shown_with_its_reason(app_factory):
    def broken_factory(config, sink, **kwargs):
        raise RuntimeError("CUDA driver too old")

    app = app_factory(engine_factory=broken_factory)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "failed")
        await pilot.pause()
        alert = screen.query_one(AlertsPanel).alerts[0]
        assert alert.title == "Could not start the run" and "CUDA driver too old" in alert.detail


async def test_invalid_config_is_not_started(app_factory):
    config = RunConfig(run_name="bad")
    config.optim.learning_rate = -1.0
    app = app_factory(engine_factory=engine_factory(), config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        count = len(ScriptedEngine.instances)
        await pilot.press("s")
        await pilot.pause()
        assert screen.run_state == "idle" and len(ScriptedEngine.instances) == count
        assert "optim.learning_rate" in screen.query_one(AlertsPanel).alerts[0].detail


async def test_review_key_opens_review_after_the_run(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 5)
        await pilot.press("r")  # not offered while training
        assert app.current_mode == "training"
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        await pilot.press("r")
        await pilot.pause()
        assert app.current_mode == "review"


async def test_chat_key_opens_the_chat_on_the_run_after_it_ended(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 5)
        await pilot.press("t")  # not offered while training
        assert app.current_mode == "training"
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.current_mode == "chat")
        chat = app.screen
        await wait_for(pilot, lambda: chat.scan is not None and chat._preselect is None)
        # The scripted engine writes no final output: the chat says so, naming the run.
        assert any(screen.run_dir.name in str(n.message) and "final output" in str(n.message)
                   for n in app._notifications)


async def test_quit_while_training_stops_the_run_then_exits(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=2, hold_stop=True))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 10)
        await pilot.press("1")  # quitting from another screen works too
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.is_running  # not gone yet: the run is stopping
        assert app.current_mode == "training" and screen.run_state == "stopping"
        assert any("Stopping after this step" in str(n.message) for n in app._notifications)
        engine = ScriptedEngine.instances[-1]
        engine.stop_gate.set()  # the step ends
        await wait_for(pilot, lambda: not app.is_running)
    assert engine._stop.is_set() and not engine.running
    assert type(engine.emitted[-1]).__name__ == "RunStopped"


async def test_quit_without_a_run_exits_at_once(app_factory):
    app = app_factory()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_training(pilot)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=2)


async def test_works_at_80x24(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=10))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 50)
        await pilot.pause(0.3)
        figures = screen.query_one(RunFigures)
        chart = screen.query_one(LossPlot)
        assert figures.region.height >= 12 and chart.region.width >= 40 and chart.region.height >= 10
        assert screen.query_one("#gauge").region.height >= 2
        assert screen.query_one("#log").region.height >= 4
        ScriptedEngine.instances[-1].stop()
        await wait_for(pilot, lambda: screen.run_state == "stopped")


def test_imports_stay_light():
    """The UI modules must not load torch; the core modules must not load textual."""
    code = (
        "import sys, tui.app, tui.cli.attach, tui.screens.training, tui.screens.runs, tui.bridge\n"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (
        "import sys, core.gpu, core.runs, core.alerts, core.detach, core.worker\n"
        "bad = [m for m in ('textual', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_library_warnings_reach_the_log_pane(app_factory):
    import logging
    import warnings

    from textual.widgets import RichLog

    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 5)
        logging.getLogger("transformers.trainer").warning("gradient accumulation looks off")
        warnings.warn("torch.jit.script_method is deprecated", FutureWarning, stacklevel=1)
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        lines = [strip.text for strip in screen.query_one("#log", RichLog).lines]
        text = "\n".join(lines)
        assert "transformers.trainer: gradient accumulation looks off" in text
        assert "script_method is deprecated" in text
    assert not any(type(h).__name__ == "LogToBridge" for h in logging.getLogger().handlers)


async def test_command_palette_offers_only_fitting_run_commands(app_factory):
    from tui.screens.training import TrainingCommands

    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        provider = TrainingCommands(screen)
        idle = [hit.text for hit in [h async for h in provider.discover()]]
        assert "run: Start training here" in idle and "run: Stop training" not in idle
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.progress.step == 5)
        live = [str(hit.text) for hit in [h async for h in provider.search("stop")]]
        assert live == ["run: Stop training"]
        ScriptedEngine.instances[-1].stop()
        await wait_for(pilot, lambda: screen.run_state == "stopped")


async def test_trust_remote_code_on_is_a_standing_warning(app_factory, tmp_path):
    config = RunConfig(run_name="remote")
    config.model.trust_remote_code = True
    app = app_factory(engine_factory=engine_factory(delay=0.002), config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        alerts = {a.key: a for a in screen.query_one(AlertsPanel).alerts}
        assert alerts["remote-code"].level == "warning"
        assert "trust_remote_code is ON" in alerts["remote-code"].title
        assert "trust_remote_code is ON" in app.export_screenshot().replace("\xa0", " ").replace("&#160;", " ")
    # Following the same run from its files (attach, runs list) shows it too.
    attach = app_factory(config=RunConfig(run_name="other"))
    async with attach.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        run_dir = ScriptedEngine.instances[-1].run_dir
        config.save(run_dir / "config.yaml")  # the real engine writes it; the fake does not
        screen.follow_run(run_dir)
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert "remote-code" in [a.key for a in screen.query_one(AlertsPanel).alerts]
