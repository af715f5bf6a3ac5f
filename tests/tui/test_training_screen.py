"""Pilot tests of the training screen against the scripted engine."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from fakes import (
    ScriptedEngine,
    engine_factory,
    loss_curve,
    nonfinite_series,
    overfit_series,
    run_started,
    step,
    training_series,
)
import time
from dataclasses import replace

from textual.geometry import Region
from textual.widgets import ContentSwitcher

from helpers import wait_for
from core.config import RunConfig
from core.events import CheckpointSaved, EvalLogged, EvalProgressed, Event, PhaseChanged, RunFinished
from core.handle import RunState
from tui.screens.training import TrainingScreen
from tui.widgets.confirm import Confirm
from tui.widgets.alerts import AlertsPanel
from tui.widgets.loss_plot import LossPlot
from tui.widgets.lr_plot import LrGradPlot
from tui.widgets.run_figures import RunFigures, figure_rows
from tui.widgets.run_log import RunLog


async def open_training(pilot) -> TrainingScreen:
    await pilot.press("3")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, TrainingScreen)
    return screen


async def start_run(pilot, until: str | Callable[[TrainingScreen], bool], timeout: float = 10.0) -> TrainingScreen:
    """Open the training screen, start a run with ``s`` and wait until it reaches ``until``: a
    run state (``"finished"``), or a test on the screen."""
    screen = await open_training(pilot)
    await pilot.press("s")
    reached = (lambda s: s.run_state == until) if isinstance(until, str) else until
    await wait_for(pilot, lambda: reached(screen), timeout=timeout)
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
        screen = await start_run(pilot, "finished")
        bridge = screen.bridge
        assert bridge.received == len(series)
        non_steps = sum(1 for e in series if type(e).__name__ != "StepLogged")
        assert bridge.posted - non_steps < 200  # 2000 steps arrive in far fewer messages
        assert len(screen.query_one(LossPlot).train) == 2000


async def test_stop_asks_for_confirmation_then_stops_after_the_step(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=3))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step == 15)
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
        screen = await start_run(pilot, lambda s: s.progress.step == 10)
        await pilot.press("c")
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        assert screen.progress.checkpoints[0].endswith("checkpoint-10")


async def test_chart_key_switches_to_learning_rate_and_grad_norm(app_factory):
    app = app_factory(engine_factory=engine_factory())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, "finished")
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
        screen = await start_run(pilot, "failed")
        await pilot.pause()
        alerts = screen.query_one(AlertsPanel).alerts
        assert [a.key for a in alerts] == ["nonfinite"]
        assert "run stopped" in alerts[0].title
        assert ScriptedEngine.instances[-1]._stop.is_set()  # the UI asked the engine to stop


async def test_rising_validation_loss_and_early_stop_alerts(app_factory):
    app = app_factory(engine_factory=engine_factory(script=overfit_series()))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, "finished")
        await pilot.pause()
        keys = [a.key for a in screen.query_one(AlertsPanel).alerts]
        assert keys == ["early-stop", "overfit@40"]  # newest first
        assert screen.query_one(LossPlot).best == (40, 1.1)


async def test_engine_failure_is_shown_with_its_reason(app_factory):
    def broken_factory(config, sink, **kwargs):
        raise RuntimeError("CUDA driver too old")

    app = app_factory(engine_factory=broken_factory)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, "failed")
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


async def press_during_and_after_a_run(pilot, key: str) -> TrainingScreen:
    """Start a run held at step 5 (build the engine with ``hold_after=1``), press ``key``, which
    is not offered while training, let the run finish and press ``key`` again."""
    screen = await start_run(pilot, lambda s: s.progress.step == 5)
    await pilot.press(key)
    assert pilot.app.current_mode == "training"
    ScriptedEngine.instances[-1].release()
    await wait_for(pilot, lambda: screen.run_state == "finished")
    await pilot.press(key)
    return screen


async def test_review_key_opens_review_after_the_run(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        await press_during_and_after_a_run(pilot, "r")
        await pilot.pause()
        assert app.current_mode == "review"


async def test_chat_key_opens_the_chat_on_the_run_after_it_ended(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await press_during_and_after_a_run(pilot, "t")
        await wait_for(pilot, lambda: app.current_mode == "chat")
        chat = app.screen
        await wait_for(pilot, lambda: chat.scan is not None and chat._preselect is None)
        # The scripted engine writes no final output: the chat says so, naming the run.
        assert any(screen.run_dir.name in str(n.message) and "final output" in str(n.message)
                   for n in app._notifications)


async def test_quit_while_training_stops_the_run_then_exits(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=2, hold_stop=True))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step == 10)
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


def shown_lines(widget) -> list[str]:
    """The widget's lines as drawn on screen (scrolled where it is scrolled)."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.outer_size))]


async def test_works_at_80x24(app_factory):
    app = app_factory(engine_factory=engine_factory(hold_after=10))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step == 50)
        await pilot.pause(0.3)
        figures = screen.query_one(RunFigures)
        chart = screen.query_one(LossPlot)
        assert figures.region.height >= 12 and chart.region.width >= 40 and chart.region.height >= 10
        assert screen.query_one("#gauge").region.height >= 2
        log = screen.query_one("#log", RunLog)
        assert log.region.height >= 6  # four lines inside the border
        # Every figure has its line, LR, grad norm, trainable parameters and rows included.
        shown = "\n".join(shown_lines(figures))
        for label, value in (("LR · grad", "1.01e-04 · 0.800"), ("Trainable", "921.6K (0.68%)"),
                             ("Rows", "800 train · 80 val"), ("Best val", "1.0954 @ 40"),
                             ("Speed/s", "4,200 tok · 12.5 rows"),
                             ("Time", "· ETA 0:00:5"), ("Step", "50/100 (50%) · ep 1.50")):
            assert any(label in line and value in line for line in shown.splitlines()), shown.replace("\n", " | ")
        ScriptedEngine.instances[-1].stop()
        await wait_for(pilot, lambda: screen.run_state == "stopped")
        await pilot.pause(0.3)
        # The log shows its newest line (the stop and how to resume), not older ones.
        assert log.texts[-1].endswith("(runs screen, key r)")
        assert "(runs screen, key r)" in " ".join(shown_lines(log)[-3:])
        # l enlarges the log and keeps its end in view; l again gives the charts their room.
        await pilot.press("l")
        await pilot.pause(0.3)
        assert log.region.height >= 12 and chart.region.height >= 4
        assert "(runs screen, key r)" in " ".join(shown_lines(log)[-3:])
        await pilot.press("l")
        await pilot.pause()
        assert log.region.height == 6


def eval_series(total: int = 40) -> list:
    """Setup phases, then a run that evaluates every 20 steps with its batches reported."""
    events = [
        PhaseChanged(phase="data", message="Loading data from tickets.jsonl"),
        PhaseChanged(phase="tokenize", message="Tokenizing training rows", done=0, total=800),
        PhaseChanged(phase="tokenize", message="Tokenizing training rows", done=400, total=800),
        PhaseChanged(phase="model", message="Loading the model m (lora, bf16 on cuda)"),
        replace(run_started(total_steps=total), eval_steps=20),
    ]
    for n in range(5, total + 1, 5):
        if n % 20:
            events.append(step(n, loss_curve(n), total))
            continue
        events += [EvalProgressed(step=n, done=0, total=10, elapsed_seconds=0.0),
                   step(n, loss_curve(n), total),
                   EvalProgressed(step=n, done=3, total=10, elapsed_seconds=6.0),
                   EvalProgressed(step=n, done=10, total=10, elapsed_seconds=20.0),
                   EvalLogged(step=n, eval_loss=1.0, best_eval_loss=1.0, is_best=True),
                   PhaseChanged(phase="checkpoint", message=f"Saving checkpoint-{n}"),
                   CheckpointSaved(step=n, path=f"runs/test-run/checkpoints/checkpoint-{n}")]
    events.append(RunFinished(step=total, output_path="runs/test-run/final", final_eval_loss=1.0,
                              best_eval_loss=1.0, elapsed_seconds=60.0))
    return events


@contextlib.asynccontextmanager
async def held_at(app_factory, hold_when: Callable[[Event], bool],
                  until: Callable[[TrainingScreen], bool]
                  ) -> AsyncIterator[tuple[TrainingScreen, Callable[[], Awaitable[None]]]]:
    """A run of :func:`eval_series` at 80x24, held after the first event ``hold_when`` accepts:
    the screen once ``until`` holds, and what lets the run go on to its end."""
    app = app_factory(engine_factory=engine_factory(script=eval_series(), hold_when=hold_when))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, until)
        await pilot.pause(0.2)

        async def finish() -> None:
            ScriptedEngine.instances[-1].release()
            await wait_for(pilot, lambda: screen.run_state == "finished")

        yield screen, finish


async def test_setup_phases_show_what_happens_before_the_first_step(app_factory):
    async with held_at(app_factory, lambda e: isinstance(e, PhaseChanged) and e.done == 400,
                       lambda s: s.progress.phase_done == 400) as (screen, finish):
        assert screen.run_state == RunState.STARTING
        shown = shown_lines(screen.query_one(RunFigures))
        assert any("Phase" in line and "tokenizing" in line and "400/800" in line for line in shown), shown
        log = screen.query_one("#log", RunLog).texts
        assert any(line.endswith("Loading data from tickets.jsonl…") for line in log)
        assert sum("Tokenizing training rows" in line for line in log) == 1  # one line per phase
        await finish()
        assert not any(line for line in shown_lines(screen.query_one(RunFigures)) if "Phase" in line)


async def test_evaluation_shows_its_own_progress_and_counts_in_the_eta(app_factory):
    async with held_at(app_factory, lambda e: isinstance(e, EvalProgressed) and e.done == 3,
                       lambda s: s.progress.eval_done == 3) as (screen, finish):
        assert screen.run_state == RunState.EVALUATING and screen.progress.step == 20
        shown = shown_lines(screen.query_one(RunFigures))
        assert any("Status" in line and "evaluating 3/10" in line for line in shown), shown
        assert any(line.startswith("│ Eval ") and "━" in line and "3/10" in line for line in shown), shown
        # 6 s for 3 of 10 batches: this one lasts 20 s, and so will the one due at step 40.
        progress = screen.progress
        assert progress.evals_left() == 1 and progress.seconds_per_eval() == 20.0
        now = time.time()
        assert progress.eta_seconds(now) == progress.engine_eta + progress.eval_eta_seconds(now)
        assert progress.eval_eta_seconds(now) > 20.0
        assert screen.check_action("checkpoint", ()) is True
        await finish()
        assert progress.eval_seconds is not None and not progress.evaluating


def test_imports_stay_light():
    """The UI modules must not load torch; the core modules must not load textual."""
    code = (
        "import sys, tui.app, tui.cli.attach, tui.screens.training, tui.screens.runs, tui.bridge\n"
        "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (
        "import sys, core.gpu, core.runs, core.alerts, core.detach, core.worker, core.handle, core.noise\n"
        "bad = [m for m in ('textual', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_library_warnings_stay_out_of_the_log_pane(app_factory):
    """Library warnings during a run never reach the pane (the engine keeps them in the
    run's debug.log: tests/core/test_noise.py and the real runs check that)."""
    import logging
    import warnings

    from tui.widgets.run_log import RunLog

    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step == 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("transformers.trainer").warning("gradient accumulation looks off")
            warnings.warn("torch.jit.script_method is deprecated", FutureWarning, stacklevel=1)
        ScriptedEngine.instances[-1].release()
        await wait_for(pilot, lambda: screen.run_state == "finished")
        text = "\n".join(screen.query_one("#log", RunLog).texts)
        assert "Finished at step 100" in text
        assert "gradient accumulation" not in text and "deprecated" not in text


async def test_command_palette_offers_only_fitting_run_commands(app_factory):
    from tui.screens.training import TrainingCommands

    app = app_factory(engine_factory=engine_factory(hold_after=1))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_training(pilot)
        provider = TrainingCommands(screen)
        idle = [hit.text for hit in [h async for h in provider.discover()]]
        assert "run: Start training" in idle and "run: Stop training" not in idle
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
        screen = await start_run(pilot, "finished")
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


async def test_a_budgeted_run_shows_time_left_against_its_budget_at_80x24(app_factory):
    """The run says it has a budget of 8 min, started 100 s ago: the Run panel shows the time
    left beside the ETA, every figure still on screen at 80x24."""
    began = time.time() - 100
    script = [replace(run_started(total_steps=40), budget_seconds=480.0, budget_started_at=began),
              *[step(n, 2.0 - n / 40, total=40) for n in range(1, 11)]]
    app = app_factory(engine_factory=engine_factory(script=script, hold_after=10))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await start_run(pilot, lambda s: s.progress.step == 10)
        await pilot.pause(0.3)
        assert screen.progress.budget_seconds == 480
        now = time.time()
        assert abs(screen.progress.budget_left(now) - (480 - (now - began))) < 1
        shown = "\n".join(shown_lines(screen.query_one(RunFigures)))
        assert "Budget" in shown and "left of 8:00 " in shown
        assert "Rows" in shown and "Trainable" in shown  # the budget line pushed nothing out
        ScriptedEngine.instances[-1].release()
