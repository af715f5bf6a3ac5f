"""The live training screen: charts, figures, GPU gauge, alerts and log of one run.

A run shown here is either in this process (an engine built through
``app.services.engine_factory``, started with ``s``) or followed from its ``events.jsonl``
(a detached run started with ``d``, a run opened from the runs screen, ``tunetop attach``).
Both feed the same messages through :class:`~tui.bridge.EventBridge`; the screen folds them
into a :class:`~core.runs.RunProgress` and an :class:`~core.alerts.AlertTracker` and the
widgets render those.

``core.engine`` (and with it torch) is imported only inside the thread that builds the
engine, so ``import tui.app`` stays light.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, RichLog
from textual.worker import Worker, WorkerState, get_current_worker

from core.alerts import Alert, AlertTracker
from core.config import RunConfig
from core.detach import launch_detached, request_checkpoint, request_stop
from core.events import (
    CheckpointSaved,
    EvalLogged,
    Event,
    RunFailed,
    RunFinished,
    RunStopped,
    StepLogged,
    describe_event,
    read_events,
)
from core.machine import ensure_pci_bus_order
from core.rundir import CONFIG_FILE, EVENTS_FILE
from core.runs import RunProgress, read_pid, resume_dir_of
from tui.bridge import EventBridge, capture_library_logs, follow_into
from tui.messages import (
    CheckpointReceived,
    EvalReceived,
    FollowRun,
    LogReceived,
    ReviewRun,
    RunEnded,
    RunOpened,
    StartRun,
    StepsLogged,
)
from tui.widgets.alerts import AlertsPanel
from tui.widgets.confirm import Confirm
from tui.widgets.loss_plot import ChartBase, LossPlot
from tui.widgets.lr_plot import LrGradPlot
from tui.widgets.reward_plot import RewardPlot
from tui.widgets.run_figures import RunFigures
from tui.widgets.vram_gauge import VramGauge

LIVE_STATES = ("starting", "running", "following", "stopping")
"""Run states in which events are still expected."""
ENDED_STATES = ("finished", "stopped", "failed")
"""Run states after a final event."""
FLUSH_SECONDS = 0.25
"""How often the screen flushes steps the bridge's throttle held back."""
LOG_STYLES = {"info": "", "warning": "yellow", "error": "bold red", "event": "cyan", "ui": "dim"}


CHART_IDS = {"loss": "loss-plot", "lr": "lr-plot", "rewards": "reward-plot"}
"""The widget id of each chart the ``g`` key cycles through."""


RUN_COMMANDS = (
    ("run: Start training here", "start_run", "Train with the current config in this process."),
    ("run: Start training detached", "start_detached", "Train in its own process; survives a dropped SSH session."),
    ("run: Stop training", "stop_run", "Stop after the current step and save a checkpoint."),
    ("run: Save a checkpoint now", "checkpoint", "Write a checkpoint at the end of this step."),
    ("run: Switch chart", "toggle_chart",
     "Loss; learning rate and gradient norm; reward margin and accuracy (DPO/ORPO)."),
    ("run: Review the run", "open_review", "Compare the fine-tuned model with the base model."),
)
"""Command-palette entries of the training screen: (title, action, help)."""


class TrainingCommands(Provider):
    """Offers the run commands that fit the current state ("Stop" only while a run is live)."""

    def _available(self) -> list[tuple[str, str, str]]:
        screen = self.screen
        if not isinstance(screen, TrainingScreen):
            return []
        return [cmd for cmd in RUN_COMMANDS if screen.check_action(cmd[1], ()) is True]

    async def discover(self) -> Hits:
        """Every available command, for the empty palette."""
        for title, action, help_text in self._available():
            yield DiscoveryHit(title, self._runner(action), help=help_text)

    async def search(self, query: str) -> Hits:
        """Available commands matching ``query``."""
        matcher = self.matcher(query)
        for title, action, help_text in self._available():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._runner(action), help=help_text)

    def _runner(self, action: str) -> Callable[[], Any]:
        screen = self.screen

        async def run() -> None:
            await screen.run_action(action)

        return run


class TrainingScreen(Screen):
    """Live view of one run: start, stop, checkpoint, detach, and watch it train."""

    CSS_PATH = "../styles/training.tcss"
    COMMANDS = Screen.COMMANDS | {TrainingCommands}

    BINDINGS = [
        Binding("s", "start_run", "Start", id="training.start"),
        Binding("d", "start_detached", "Detached", id="training.detach"),
        Binding("x", "stop_run", "Stop", id="training.stop"),
        Binding("c", "checkpoint", "Checkpoint", id="training.checkpoint"),
        Binding("g", "toggle_chart", "Chart", id="training.chart"),
        Binding("r", "open_review", "Review", id="training.review"),
    ]
    """Start (``s``, or ``d`` detached), stop (``x``), checkpoint (``c``), switch chart
    (``g``), open the review screen once the run ended (``r``)."""

    run_state: reactive[str] = reactive("idle")
    """idle, starting, running, following, stopping, finished, stopped or failed."""
    chart: reactive[str] = reactive("loss")
    """Which chart is shown: ``loss``, ``lr`` or ``rewards`` (preference runs)."""

    def __init__(
        self,
        follow_dir: str | Path | None = None,
        name: str | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.follow_dir: Path | None = Path(follow_dir) if follow_dir else None
        """The followed run's directory (detached or attached runs)."""
        self.run_dir: Path | None = None
        """Directory of the run shown (known once it started)."""
        self.engine: Any = None
        """The in-process engine, while this screen runs one."""
        self.progress = RunProgress()
        self.alert_tracker = AlertTracker()
        self.bridge: EventBridge | None = None
        self.clock: Callable[[], float] = time.time
        """Wall clock for elapsed time; snapshot tests freeze it."""
        self.quitting = False
        """Set when the app asked to quit while a run was live here."""
        self._stop_pending = False
        self._release_logs: Callable[[], None] | None = None

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Figures beside the charts; alerts, gauge and log below."""
        yield Header()
        with Horizontal(id="training-main"):
            yield RunFigures(id="figures")
            with ContentSwitcher(initial="loss-plot", id="charts"):
                yield LossPlot(id="loss-plot")
                yield LrGradPlot(id="lr-plot")
                yield RewardPlot(id="reward-plot")
        yield AlertsPanel(id="alerts")
        yield VramGauge(self._gpu_monitor_factory(), id="gauge")
        yield RichLog(id="log", max_lines=2000, wrap=True, markup=False, auto_scroll=True)
        yield Footer()

    def _gpu_monitor_factory(self) -> Callable[[], Any] | None:
        return self.app.services.gpu_monitor_factory

    def on_mount(self) -> None:
        """Show the idle hint, start the flush tick, and follow ``follow_dir`` if given."""
        self.clock = self.app.services.clock  # snapshots freeze it
        figures = self.query_one(RunFigures)
        figures.clock = lambda: self.clock()
        figures.border_title = "Run"
        self.query_one("#log", RichLog).border_title = "Log"
        self.set_interval(FLUSH_SECONDS, self._flush_bridge)
        follow_dir = self.follow_dir or self.app.attach_dir  # tunetop attach
        if follow_dir is not None:
            self.follow_run(follow_dir)
        else:
            config = self.app.config
            if isinstance(config, RunConfig):
                self.log_line(
                    f"Ready: {config.method} on {config.model.name_or_path} with {config.data.path}. "
                    "Press s to train here, d to train detached (keeps going if you disconnect).",
                    "ui",
                )
        self._show_figures()

    def on_resize(self) -> None:
        """On short terminals (80x24) the log shrinks so the chart keeps its room."""
        self.set_class(self.size.height < 30, "-compact")

    # --- state ----------------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        """Whether the shown run may still send events."""
        return self.run_state in LIVE_STATES

    @property
    def has_live_engine(self) -> bool:
        """Whether a run is training inside this process (quitting must stop it first)."""
        if self.follow_dir is not None:
            return False
        if self.engine is not None and getattr(self.engine, "running", False):
            return True
        return self.run_state in ("starting", "running", "stopping")

    def watch_run_state(self, state: str) -> None:
        """Keys and figures follow the run state."""
        self.refresh_bindings()
        self._show_figures()
        self.sub_title = f"{self.progress.run_name or 'no run'} · {state}"

    def watch_chart(self, chart: str) -> None:
        """Show the chosen chart and draw it at once."""
        plot_id = CHART_IDS[chart]
        self.query_one("#charts", ContentSwitcher).current = plot_id
        self.query_one(f"#{plot_id}", ChartBase).show_now()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only the keys that make sense in the current run state."""
        state = self.run_state
        if action in ("start_run", "start_detached"):
            return state not in LIVE_STATES
        if action == "stop_run":
            return True if state in ("starting", "running", "following") else (None if state == "stopping" else False)
        if action == "checkpoint":
            return state in ("running", "following")
        if action == "open_review":
            return state in ENDED_STATES
        return True

    def _show_figures(self) -> None:
        if self.is_mounted:
            self.query_one(RunFigures).show(self.progress, self.run_state)

    def _begin(self) -> EventBridge:
        """Reset the view for a new run and return the bridge for its events."""
        self._stop_capturing_logs()
        if self.bridge is not None:
            self.bridge.close()
        self.bridge = EventBridge(self)
        self.progress = RunProgress()
        self.alert_tracker = AlertTracker()
        self.engine = None
        self.run_dir = None
        self._stop_pending = False
        self.query_one(LossPlot).reset()
        self.query_one(LrGradPlot).reset()
        self.query_one(RewardPlot).reset()
        self.query_one(AlertsPanel).clear_alerts()
        self.query_one(VramGauge).set_pid(os.getpid())
        return self.bridge

    def log_line(self, text: str, level: str = "info", at: float | None = None) -> None:
        """Append a line to the log pane, stamped with ``at`` (an event's time) or now."""
        line = Text(time.strftime("%H:%M:%S ", time.localtime(self.clock() if at is None else at)), style="dim")
        line.append(text, style=LOG_STYLES.get(level, ""))
        self.query_one("#log", RichLog).write(line)

    def _raise_alerts(self, alerts: list[Alert]) -> None:
        panel = self.query_one(AlertsPanel)
        for alert in alerts:
            panel.add_alert(alert)
            self.log_line(f"{alert.title}: {alert.detail}", "error" if alert.level == "error" else "warning")
            if alert.stop_run and self.run_state in ("running", "following", "starting"):
                self._request_stop("non-finite values")

    def _fold(self, event: Event) -> None:
        self.progress.update(event)
        self._raise_alerts(self.alert_tracker.update(event))

    def _flush_bridge(self) -> None:
        if self.bridge is not None and self.is_live:
            self.bridge.flush()

    def _is_current(self, message: Any) -> bool:
        return getattr(message, "origin", None) is self.bridge and self.bridge is not None

    # --- starting runs --------------------------------------------------------------------

    def _config_to_start(self, config: RunConfig | None) -> RunConfig | None:
        """A private copy of ``config`` (default: the app's) when a run may start, else None."""
        if self.is_live:
            self.notify("A run is already live on this screen.", severity="warning")
            return None
        config = copy.deepcopy(config if config is not None else self.app.config)
        return config if self._config_ok(config) else None

    def action_start_run(self, config: RunConfig | None = None) -> None:
        """Start a run in this process with ``config`` (default: the app's current config)."""
        config = self._config_to_start(config)
        if config is None:
            return
        if config.num_processes > 1:
            self.log_line(f"{config.num_processes} processes: the run starts detached, through "
                          "accelerate launch.", "ui")
            self.action_start_detached(config)
            return
        bridge = self._begin()
        self._flag_remote_code(config)
        self.follow_dir = None
        self.run_state = "starting"
        resume = resume_dir_of(config)
        if resume:
            self._preload_history(Path(resume))
        self.log_line(
            f"Starting {config.method} on {config.model.name_or_path}"
            + (f", resuming {resume}" if resume else "")
            + ": loading data and model…",
            "ui",
        )
        factory = self.app.services.engine_factory
        self._release_logs = capture_library_logs(bridge)
        self._launch_engine(config, bridge, factory, str(self.app.workspace))

    def _preload_history(self, run_dir: Path) -> None:
        """Show a resumed run's earlier steps, evaluations and checkpoints before it goes on."""
        try:
            events, _ = read_events(str(run_dir / EVENTS_FILE))
        except OSError:
            return
        steps = [e for e in events if isinstance(e, StepLogged)]
        for event in events:
            if isinstance(event, (StepLogged, EvalLogged, CheckpointSaved)):
                self.progress.update(event)
            if isinstance(event, EvalLogged):
                self.query_one(LossPlot).add_eval(event.step, event.eval_loss)
                self.query_one(RewardPlot).add_eval(event.step, event.reward_margin)
        self.query_one(LossPlot).add_steps(steps)
        self.query_one(LrGradPlot).add_steps(steps)
        self.query_one(RewardPlot).add_steps(steps)
        self.log_line(f"Loaded {len(steps)} logged steps of {run_dir.name} from before the stop.", "ui")

    def _config_ok(self, config: RunConfig) -> bool:
        problems = config.errors()
        if not problems:
            return True
        panel = self.query_one(AlertsPanel)
        panel.clear_alerts()
        detail = " ".join(str(p) for p in problems)
        panel.add_alert(Alert("config", "error", f"Config has {len(problems)} problem(s)", detail))
        self.log_line(f"Not started: {detail}", "error")
        self.notify("Fix the config first (key 2).", severity="error")
        return False

    @work(thread=True, exclusive=True, group="engine-start", exit_on_error=False)
    def _launch_engine(
        self, config: RunConfig, bridge: EventBridge, factory: Callable[..., Any] | None, workspace: str
    ) -> tuple[EventBridge, Any]:
        """Build and start the engine off the UI thread (importing torch takes seconds)."""
        ensure_pci_bus_order()
        if factory is None:
            from core.engine import Engine as factory  # lazy: `import tui.app` must not load torch
        kwargs: dict[str, Any] = {"workspace": workspace}
        resume = resume_dir_of(config)
        if resume:
            kwargs["resume_dir"] = resume
        engine = factory(config, bridge, **kwargs)
        engine.start()
        return bridge, engine

    def action_start_detached(self, config: RunConfig | None = None) -> None:
        """Start a run in its own process (it survives a dropped SSH session) and follow it."""
        config = self._config_to_start(config)
        if config is None:
            return
        self.run_state = "starting"
        self.log_line("Launching a detached run…", "ui")
        options = dict(self.app.services.detach_options)
        self._launch_detached(config, str(self.app.workspace), options)

    @work(thread=True, exclusive=True, group="detach", exit_on_error=False)
    def _launch_detached(self, config: RunConfig, workspace: str, options: dict[str, Any]) -> Path:
        """Write the run directory and spawn the worker process."""
        return launch_detached(config, workspace, resume_dir=resume_dir_of(config), **options)

    @on(StartRun)
    def start_requested(self, message: StartRun) -> None:
        """Another screen asked for a run (the runs screen resumes one)."""
        if message.detached:
            self.action_start_detached(message.config)
        else:
            self.action_start_run(message.config)

    # --- following runs -------------------------------------------------------------------

    @on(FollowRun)
    def follow_requested(self, message: FollowRun) -> None:
        """Another screen (or ``tunetop attach``) asked to show a run from its files."""
        target = message.run_dir.resolve()
        if self.run_dir is not None and self.run_dir.resolve() == target:
            return  # already shown
        if self.has_live_engine:
            self.notify("A run is training here; stop it before opening another.", severity="warning")
            return
        self.follow_run(message.run_dir)

    def follow_run(self, run_dir: str | Path) -> None:
        """Show the run in ``run_dir`` by tailing its ``events.jsonl`` (attach)."""
        bridge = self._begin()
        self.follow_dir = self.run_dir = Path(run_dir)
        self.run_state = "following"
        pid = read_pid(self.follow_dir)
        if pid:
            self.query_one(VramGauge).set_pid(pid)
        self.log_line(f"Following {self.follow_dir}", "ui")
        try:
            self._flag_remote_code(RunConfig.load(self.follow_dir / CONFIG_FILE))
        except (OSError, ValueError):
            pass  # no readable config: the run's own events still say what they can
        self._follow(self.follow_dir, bridge)

    def _flag_remote_code(self, config: RunConfig) -> None:
        """A standing warning while a run executes the model repository's own code."""
        if config.model.trust_remote_code:
            self.query_one(AlertsPanel).add_alert(Alert(
                "remote-code", "warning", "trust_remote_code is ON",
                f"{config.model.name_or_path} runs its own Python code in the training process. "
                "Turn model.trust_remote_code off (key 2) unless you trust that repository."))

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self, run_dir: Path, bridge: EventBridge) -> int:
        """Tail the run's events into the bridge until its end or until cancelled."""
        worker = get_current_worker()
        return follow_into(bridge, run_dir, lambda: worker.is_cancelled or bridge.closed)

    # --- run control ----------------------------------------------------------------------

    def action_stop_run(self) -> None:
        """Ask for confirmation, then stop the run after its current step."""
        if not self.is_live or self.run_state == "stopping":
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self._request_stop("on request")

        where = "The detached run" if self.follow_dir is not None else "The run"
        question = (f"Stop training? {where} stops after the current step and saves a checkpoint "
                    "you can resume from (runs screen, key r).")
        self.app.push_screen(Confirm(question, "Stop", "Keep training", yes_variant="error"),
                             answered)

    def _request_stop(self, why: str) -> None:
        if self.follow_dir is not None:
            request_stop(self.follow_dir)
            self.log_line(f"Asked the detached run to stop ({why}) after this step…", "ui")
        elif self.engine is not None:
            self.engine.stop()
            self.log_line(f"Stopping ({why}) after this step…", "ui")
        else:
            self._stop_pending = True  # the engine is still being built
            self.log_line(f"Stopping ({why}) as soon as the run has started…", "ui")
        self.run_state = "stopping"

    def action_checkpoint(self) -> None:
        """Save a checkpoint at the end of the current step."""
        if self.run_state not in ("running", "following"):
            return
        if self.follow_dir is not None:
            request_checkpoint(self.follow_dir)
        elif self.engine is not None:
            self.engine.save_now()
        else:
            return
        self.log_line("Checkpoint requested: it is written at the end of this step.", "ui")

    def action_toggle_chart(self) -> None:
        """Cycle the charts: loss, learning rate / grad norm, and for a preference run the
        reward margin / preference accuracy."""
        charts = ["loss", "lr"]
        if self.progress.objective != "sft" or self.query_one(RewardPlot).has_data:
            charts.append("rewards")
        self.chart = charts[(charts.index(self.chart) + 1) % len(charts)] if self.chart in charts else "loss"

    def action_open_review(self) -> None:
        """Open the review screen on the run that ended (the app forwards a ``ReviewRun``)."""
        if self.run_state not in ENDED_STATES:
            return
        self.app.post_message(ReviewRun(self.run_dir))

    def stop_then_quit(self) -> None:
        """Quit requested while a run trains here: stop it, then exit once it has ended."""
        self.quitting = True
        self.notify("Stopping after this step… (press ctrl+q again to quit at once)", timeout=10)
        if self.run_state != "stopping":
            self._request_stop("quitting")
        elif self.engine is not None:
            self.engine.stop()

    # --- messages from the bridge ---------------------------------------------------------

    @on(RunOpened)
    def show_run_opened(self, message: RunOpened) -> None:
        """Training begins: show what runs where."""
        if not self._is_current(message):
            return
        event = message.event
        self._fold(event)
        self.query_one(AlertsPanel).show_rules_for(event.objective != "sft")
        self.run_dir = Path(event.run_dir)
        if self.follow_dir is None:
            self.run_state = "stopping" if self.run_state == "stopping" else "running"
        elif self.run_state not in ("stopping",):
            self.run_state = "following"
            if event.pid and not read_pid(self.follow_dir):
                self.query_one(VramGauge).set_pid(event.pid)
        self.log_line(describe_event(event), "event", at=event.time)
        self._show_figures()

    @on(StepsLogged)
    def show_steps(self, message: StepsLogged) -> None:
        """New training steps: charts, figures and step-based alerts."""
        if not self._is_current(message):
            return
        for event in message.events:
            self._fold(event)
        self.query_one(LossPlot).add_steps(message.events)
        self.query_one(LrGradPlot).add_steps(message.events)
        self.query_one(RewardPlot).add_steps(message.events)
        self._show_figures()

    @on(EvalReceived)
    def show_eval(self, message: EvalReceived) -> None:
        """A validation loss: chart point, figures, overfitting check."""
        if not self._is_current(message):
            return
        event = message.event
        self._fold(event)
        self.query_one(LossPlot).add_eval(event.step, event.eval_loss)
        self.query_one(RewardPlot).add_eval(event.step, event.reward_margin)
        self.log_line(describe_event(event), "event", at=event.time)
        self._show_figures()

    @on(CheckpointReceived)
    def show_checkpoint(self, message: CheckpointReceived) -> None:
        """A checkpoint was written."""
        if not self._is_current(message):
            return
        self._fold(message.event)
        self.log_line(describe_event(message.event), "event", at=message.event.time)
        self._show_figures()

    @on(LogReceived)
    def show_log(self, message: LogReceived) -> None:
        """A log line from the engine (early stopping is one)."""
        if not self._is_current(message):
            return
        self._fold(message.event)
        self.log_line(describe_event(message.event), message.event.level, at=message.event.time)

    @on(RunEnded)
    def show_run_ended(self, message: RunEnded) -> None:
        """The run finished, stopped or failed."""
        if not self._is_current(message):
            return
        event = message.event
        self._fold(event)
        line = describe_event(event)
        if isinstance(event, RunFinished):
            self.log_line(f"{line}. Press r to review.", "event", at=event.time)
            self.run_state = "finished"
        elif isinstance(event, RunStopped):
            where = f"; resume from {event.checkpoint} (runs screen, key r)" if event.checkpoint else ""
            self.log_line(f"{line}{where}", "warning", at=event.time)
            self.run_state = "stopped"
        elif isinstance(event, RunFailed):
            self.log_line(line, "error", at=event.time)
            self.run_state = "failed"
        self._stop_capturing_logs()
        if self.engine is not None or self.quitting:
            self._join_engine(self.engine)

    @work(thread=True, exclusive=True, group="engine-join", exit_on_error=False)
    def _join_engine(self, engine: Any) -> bool:
        """Wait for the engine thread to end (it closes files and frees memory after its last event)."""
        if engine is None:
            return True
        return bool(engine.join(timeout=120))

    # --- workers --------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def handle_worker_state(self, event: Worker.StateChanged) -> None:
        """Results and errors of the screen's workers (one handler, catch-all last)."""
        worker, state = event.worker, event.state
        group = worker.group
        if state == WorkerState.SUCCESS and group == "engine-start":
            bridge, engine = worker.result
            if bridge is not self.bridge:
                engine.stop()  # a newer run replaced this one before it started
                return
            self.engine = engine
            if self._stop_pending or self.quitting:
                engine.stop()
            if not self.is_live:  # it already ended (a fast failure) before we got the engine
                self._join_engine(engine)
        elif state == WorkerState.SUCCESS and group == "detach":
            run_dir = worker.result
            self.notify(f"Detached run in {run_dir}: it keeps training if you quit or disconnect. "
                        f"Reattach with: tunetop attach {run_dir}", timeout=8)
            self.follow_run(run_dir)
        elif state == WorkerState.SUCCESS and group == "engine-join":
            self.engine = None
            if self.quitting:
                self.app.exit()
        elif state == WorkerState.ERROR:
            error = worker.error
            reason = f"{type(error).__name__}: {error}"
            if group in ("engine-start", "detach"):
                self._stop_capturing_logs()
                self.run_state = "failed"
                self._raise_alerts([Alert("start", "error", "Could not start the run", reason)])
                if self.quitting:
                    self.app.exit()
            else:
                self.log_line(f"{group or 'worker'} failed: {reason}", "error")
                if group == "engine-join" and self.quitting:
                    self.app.exit()
        else:
            pass  # PENDING, RUNNING, CANCELLED and other groups' results need nothing here

    def _stop_capturing_logs(self) -> None:
        if self._release_logs is not None:
            self._release_logs()
            self._release_logs = None

    def on_unmount(self) -> None:
        """Stop following and ask an in-app run to stop if the screen goes away."""
        self._stop_capturing_logs()
        if self.bridge is not None:
            self.bridge.close()
        if self.engine is not None and getattr(self.engine, "running", False):
            self.engine.stop()


def training_screens(app: App) -> list[TrainingScreen]:
    """The training screens of ``app`` (the training mode's stack, if it was opened)."""
    try:
        stack = app.get_screen_stack("training")
    except KeyError:
        return []
    return [screen for screen in stack if isinstance(screen, TrainingScreen)]


async def quit_app(app: App) -> None:
    """Quit, but let a run training in this process stop cleanly first.

    The app's quit action calls this. With a live in-app run it switches to the training
    screen, asks the engine to stop, shows "Stopping after this step…" and exits once the run
    has ended and its thread joined. A second quit exits at once. Detached and followed runs
    keep training.
    """
    live = [screen for screen in training_screens(app) if screen.has_live_engine]
    if not live:
        app.exit()
        return
    screen = live[0]
    if screen.quitting:
        app.exit()
        return
    if app.current_mode != "training":
        await app.switch_mode("training")
    screen.stop_then_quit()
