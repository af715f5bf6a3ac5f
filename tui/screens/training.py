"""The live training screen: charts, figures, GPU gauge, alerts and log of one run.

The screen holds one run through a :class:`~core.handle.RunHandle` and one
:class:`~core.handle.RunState`. A run started here (``s``) trains in its own process
(:class:`~core.handle.DetachedRun`), so closing the terminal or quitting does not stop it;
a run opened from the runs screen or by ``tunetop attach`` is followed the same way. Tests
train in this process with fake engines (``AppServices.in_process``,
:class:`~core.handle.InProcessRun`). Either way the events come through
:class:`~tui.bridge.EventBridge`; the screen folds them into a :class:`~core.runs.RunProgress`
and an :class:`~core.alerts.AlertTracker`, and the widgets render those.

``core.engine`` (and with it torch) is imported only by the worker process, or inside the
thread that builds an in-process engine, so ``import tui.app`` stays light.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header
from textual.worker import Worker, WorkerState, get_current_worker

from core.alerts import Alert, AlertTracker
from core.config import RunConfig
from core.events import (
    SAVE_PHASES,
    TERMINAL_EVENTS,
    CheckpointSaved,
    EvalLogged,
    Event,
    MessageLogged,
    PhaseChanged,
    RunStarted,
    StepLogged,
    TerminalEvent,
    describe_event,
    read_events,
)
from core.handle import DetachedRun, InProcessRun, RunHandle, RunState, state_after
from core.rundir import CONFIG_FILE, EVENTS_FILE
from core.runs import RunProgress, resume_dir_of
from tui.bridge import EventBridge
from tui.messages import ChatRun, EventReceived, FollowRun, ReviewRun, StartRun, StepsLogged
from tui.widgets.alerts import AlertsPanel
from tui.widgets.confirm import Confirm
from tui.widgets.drift_plot import DriftPlot
from tui.widgets.loss_plot import ChartBase, LossPlot
from tui.widgets.lr_plot import LrGradPlot
from tui.widgets.reward_plot import RewardPlot
from tui.widgets.run_figures import RunFigures
from tui.widgets.run_log import RunLog
from tui.widgets.vram_gauge import VramGauge

ENDING_LEVELS = {"finished": "event", "stopped": "warning", "failed": "error"}
"""The log level of the line for each way a run ends."""


def ending_line(event: TerminalEvent) -> str:
    """The log line for the event that ended a run, with what to do next."""
    line = describe_event(event)
    if event.status == "finished":
        return f"{line}. Press r to review."
    if event.status == "stopped" and event.checkpoint:
        return f"{line}; resume from {event.checkpoint} (runs screen, key r)"
    return line


class RunStartError(RuntimeError):
    """The run could not be started (its worker not launched, its engine not built)."""


FLUSH_SECONDS = 0.25
"""How often the screen flushes steps the bridge's throttle held back."""
LOG_STYLES = {"info": "", "warning": "yellow", "error": "bold red", "event": "cyan", "ui": "dim"}


CHART_IDS = {"loss": "loss-plot", "lr": "lr-plot", "drift": "drift-plot", "rewards": "reward-plot"}
"""The widget id of each chart the ``g`` key cycles through."""


RUN_COMMANDS = (
    ("run: Start training", "start_run",
     "Train with the current config in its own process: it keeps going if you quit or disconnect."),
    ("run: Stop training", "stop_run", "Stop after the current step and save a checkpoint."),
    ("run: Save a checkpoint now", "checkpoint", "Write a checkpoint at the end of this step."),
    ("run: Switch chart", "toggle_chart",
     "Loss; learning rate and gradient norm; task vs general drift; reward margin and "
     "accuracy (DPO/ORPO)."),
    ("run: Enlarge or shrink the log", "toggle_log", "Give the log pane most of the screen, or not."),
    ("run: Review the run", "open_review", "Compare the fine-tuned model with the base model."),
    ("run: Chat with the fine-tune", "open_chat", "Talk to the run's model beside its base."),
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
    """Live view of one run: start it, stop it, save a checkpoint, and watch it train."""

    CSS_PATH = "../styles/training.tcss"
    COMMANDS = Screen.COMMANDS | {TrainingCommands}

    BINDINGS = [
        Binding("s", "start_run", "Start", id="training.start"),
        Binding("x", "stop_run", "Stop", id="training.stop"),
        Binding("c", "checkpoint", "Checkpoint", id="training.checkpoint"),
        Binding("g", "toggle_chart", "Chart", id="training.chart"),
        Binding("l", "toggle_log", "Log", id="training.log"),
        Binding("r", "open_review", "Review", id="training.review"),
        Binding("t", "open_chat", "Chat", id="training.chat"),
    ]
    """Start (``s``), stop (``x``), checkpoint (``c``), switch chart (``g``), enlarge the
    log (``l``), open the review screen (``r``) or the chat (``t``) once the run ended."""

    run_state: reactive[RunState] = reactive(RunState.IDLE)
    """What the shown run is doing (see :class:`~core.handle.RunState`)."""
    chart: reactive[str] = reactive("loss")
    """Which chart is shown: ``loss``, ``lr``, ``drift`` (runs that measure general drift) or
    ``rewards`` (preference runs); see :data:`CHART_IDS`."""
    log_large: reactive[bool] = reactive(False)
    """Whether the log pane takes most of the screen."""

    @dataclass
    class Launched(Message):
        """The run's worker was launched (or its engine built): its directory and pid are known."""

        handle: RunHandle
        announce: bool
        """Whether to tell the user the run now trains on its own (a new detached run)."""

    def __init__(
        self,
        follow_dir: str | Path | None = None,
        name: str | None = None,
        id: str | None = None,  # noqa: A002
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._follow_on_mount: Path | None = Path(follow_dir) if follow_dir else None
        self.run: RunHandle | None = None
        """The shown run, once one was started or opened here."""
        self.run_dir: Path | None = None
        """Directory of the shown run (known once it started)."""
        self.progress = RunProgress()
        self.alert_tracker = AlertTracker()
        self.bridge: EventBridge | None = None
        self.clock: Callable[[], float] = time.time
        """Wall clock for elapsed time; snapshot tests freeze it."""
        self.quitting = False
        """Set when the app asked to quit while a run was training in this process."""
        self._run_worker: Worker | None = None

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Figures beside the charts; alerts, gauge and log below."""
        yield Header()
        with Horizontal(id="training-main"):
            yield RunFigures(id="figures")
            with ContentSwitcher(initial="loss-plot", id="charts"):
                yield LossPlot(id="loss-plot")
                yield LrGradPlot(id="lr-plot")
                yield DriftPlot(id="drift-plot")
                yield RewardPlot(id="reward-plot")
        yield AlertsPanel(id="alerts")
        yield VramGauge(self._gpu_monitor_factory(), id="gauge")
        yield RunLog(id="log")
        yield Footer()

    def _gpu_monitor_factory(self) -> Callable[[], Any] | None:
        return self.app.services.gpu_monitor_factory

    def on_mount(self) -> None:
        """Show the idle hint, start the flush tick, and follow a run if one was given."""
        self.clock = self.app.services.clock  # snapshots freeze it
        figures = self.query_one(RunFigures)
        figures.clock = lambda: self.clock()
        figures.border_title = "Run"
        self.query_one("#log", RunLog).border_title = "Log"
        self.set_interval(FLUSH_SECONDS, self._flush_bridge)
        follow_dir = self._follow_on_mount or self.app.attach_dir  # tunetop attach
        if follow_dir is not None:
            self.follow_run(follow_dir)
        else:
            config = self.app.config
            if isinstance(config, RunConfig):
                where = ("here, in this process" if self.app.services.in_process else
                         "in its own process: it keeps going if you quit or disconnect")
                self.log_line(
                    f"Ready: {config.method} on {config.model.name_or_path} with {config.data.path}. "
                    f"Press s to train {where}.",
                    "ui",
                )
        self._show_figures()

    def on_resize(self) -> None:
        """On short terminals (80x24) the panes pack tighter so every figure keeps its line."""
        self.set_class(self.size.height < 30, "-compact")

    def on_screen_resume(self) -> None:
        """Shown again: the log may have grown while hidden; show its newest line."""
        self.query_one("#log", RunLog).show_newest()

    # --- state ----------------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        """Whether the shown run may still send events."""
        return self.run_state.live

    @property
    def trains_in_process(self) -> bool:
        """Whether a run is training inside this process (quitting must stop it first)."""
        if self.run is None or self.run.detached:
            return False
        # After its final event the engine still closes files and frees memory: until its
        # worker has joined it, the run is not over.
        worker = self._run_worker
        return self.run_state.live or (worker is not None and not worker.is_finished)

    @property
    def detached_live(self) -> bool:
        """Whether the shown run trains in its own process and is not over."""
        return self.run is not None and self.run.detached and self.run_state.live

    def watch_run_state(self, state: RunState) -> None:
        """Keys and figures follow the run state."""
        self.refresh_bindings()
        self._show_figures()
        self._show_title()

    def _show_title(self) -> None:
        name = self.progress.run_name or (self.run_dir.name if self.run_dir is not None else "no run")
        where = " · detached" if self.run is not None and self.run.detached else ""
        self.sub_title = f"{name} · {self.run_state.value}{where}"

    def watch_chart(self, chart: str) -> None:
        """Show the chosen chart and draw it at once."""
        plot_id = CHART_IDS[chart]
        self.query_one("#charts", ContentSwitcher).current = plot_id
        self.query_one(f"#{plot_id}", ChartBase).show_now()

    def watch_log_large(self, large: bool) -> None:
        """Give the log most of the screen (or its usual share) and keep its end in view."""
        self.set_class(large, "-log-large")
        self.query_one("#log", RunLog).show_newest()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only the keys that make sense in the current run state."""
        state = self.run_state
        if action == "start_run":
            return not state.live
        if action == "stop_run":
            return None if state is RunState.STOPPING else state.live
        if action == "checkpoint":
            return state in (RunState.RUNNING, RunState.EVALUATING)
        if action in ("open_review", "open_chat"):
            return state.ended
        return True

    def _show_figures(self) -> None:
        if self.is_mounted:
            detached = self.run is not None and self.run.detached
            self.query_one(RunFigures).show(self.progress, self.run_state, detached)

    def _reset_view(self) -> EventBridge:
        """Reset the view for a new run and return the bridge for its events."""
        if self.bridge is not None:
            self.bridge.close()  # the previous run's follower sees it and ends
        self.bridge = EventBridge(self)
        self.progress = RunProgress()
        self.alert_tracker = AlertTracker()
        self.run = None
        self.run_dir = None
        self.query_one(LossPlot).reset()
        self.query_one(LrGradPlot).reset()
        self.query_one(DriftPlot).reset()
        self.query_one(RewardPlot).reset()
        self.query_one(AlertsPanel).clear_alerts()
        self.query_one(VramGauge).set_pid(os.getpid())
        return self.bridge

    def log_line(self, text: str, level: str = "info", at: float | None = None) -> None:
        """Append a line to the log pane, stamped with ``at`` (an event's time) or now."""
        line = Text(time.strftime("%H:%M:%S ", time.localtime(self.clock() if at is None else at)), style="dim")
        line.append(text, style=LOG_STYLES.get(level, ""))
        self.query_one("#log", RunLog).write_line(line)

    def _raise_alerts(self, alerts: list[Alert]) -> None:
        panel = self.query_one(AlertsPanel)
        for alert in alerts:
            panel.add_alert(alert)
            self.log_line(f"{alert.title}: {alert.detail}", "error" if alert.level == "error" else "warning")
            if alert.stop_run and self.run_state.live and self.run_state is not RunState.STOPPING:
                self._request_stop("non-finite values")

    def _fold(self, event: Event) -> None:
        self.progress.update(event)
        self.run_state = state_after(self.run_state, event)
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
        """Start a run with ``config`` (default: the app's current config).

        It trains in its own process unless the app's services ask for this one (tests).
        """
        config = self._config_to_start(config)
        if config is None:
            return
        bridge = self._reset_view()
        self._flag_remote_code(config)
        resume = resume_dir_of(config)
        if resume:
            self._preload_history(Path(resume))
        services = self.app.services
        workspace = str(self.app.workspace)
        if services.in_process and config.num_processes <= 1:
            handle: RunHandle = InProcessRun(config, bridge, workspace, services.engine_factory, resume)
            where = "in this process"
        else:
            handle = DetachedRun.launch(config, workspace, bridge, resume_dir=resume,
                                        **services.detach_options)
            where = "in its own process"
            if config.num_processes > 1:
                where += f" ({config.num_processes} processes, through accelerate launch)"
        self.log_line(
            f"Starting {config.method} on {config.model.name_or_path}"
            + (f", resuming {resume}" if resume else "") + f", {where}…",
            "ui",
        )
        self._hold(handle, announce=handle.detached)

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
                self.query_one(DriftPlot).add_eval(event)
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

    def _hold(self, handle: RunHandle, announce: bool = False) -> None:
        """Make ``handle`` the shown run and drive it from a thread."""
        self.run = handle
        self.run_state = RunState.STARTING
        self._run_worker = self._drive_run(handle, self.bridge, announce)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _drive_run(self, handle: RunHandle, bridge: EventBridge, announce: bool) -> RunHandle:
        """Start the run (spawn its worker, or build its engine: seconds), then deliver its
        events until it ends, or until the screen moves on to another run."""
        worker = get_current_worker()
        try:
            handle.start()
        except Exception as exc:
            raise RunStartError(f"{type(exc).__name__}: {exc}") from exc
        self.post_message(self.Launched(handle, announce))
        handle.follow(lambda: worker.is_cancelled or bridge.closed)
        bridge.flush()
        return handle

    @on(Launched)
    def show_launched(self, message: Launched) -> None:
        """The run's directory and process are known: sample its memory, say where it is."""
        handle = message.handle
        if handle is not self.run:
            return
        if handle.run_dir is not None:
            self.run_dir = handle.run_dir
            self._show_title()
        if handle.pid:
            self.query_one(VramGauge).set_pid(handle.pid)
        if message.announce and handle.run_dir is not None:
            self.log_line(f"The run trains in its own process in {handle.run_dir}: it keeps going "
                          f"if you quit or disconnect (tunetop attach {handle.run_dir}).", "ui")

    @on(StartRun)
    def start_requested(self, message: StartRun) -> None:
        """Another screen asked for a run (the config screen starts one, the runs screen
        resumes one)."""
        self.action_start_run(message.config)

    # --- following runs -------------------------------------------------------------------

    @on(FollowRun)
    def follow_requested(self, message: FollowRun) -> None:
        """Another screen (or ``tunetop attach``) asked to show a run from its files."""
        target = message.run_dir.resolve()
        if self.run_dir is not None and self.run_dir.resolve() == target:
            return  # already shown
        if self.trains_in_process:
            self.notify("A run is training here; stop it before opening another.", severity="warning")
            return
        self.follow_run(message.run_dir)

    def follow_run(self, run_dir: str | Path) -> None:
        """Show the run in ``run_dir`` by tailing its ``events.jsonl`` (attach)."""
        bridge = self._reset_view()
        run_dir = Path(run_dir)
        self.log_line(f"Following {run_dir}", "ui")
        try:
            self._flag_remote_code(RunConfig.load(run_dir / CONFIG_FILE))
        except (OSError, ValueError):
            pass  # no readable config: the run's own events still say what they can
        self._hold(DetachedRun.attach(run_dir, bridge))
        self.run_dir = run_dir

    def _flag_remote_code(self, config: RunConfig) -> None:
        """A standing warning while a run executes the model repository's own code."""
        if config.model.trust_remote_code:
            self.query_one(AlertsPanel).add_alert(Alert(
                "remote-code", "warning", "trust_remote_code is ON",
                f"{config.model.name_or_path} runs its own Python code in the training process. "
                "Turn model.trust_remote_code off (key 2) unless you trust that repository."))

    # --- run control ----------------------------------------------------------------------

    def action_stop_run(self) -> None:
        """Ask for confirmation, then stop the run after its current step."""
        if not self.is_live or self.run_state is RunState.STOPPING:
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self._request_stop("on request")

        question = ("Stop training? The run stops after the current step and saves a checkpoint "
                    "you can resume from (runs screen, key r).")
        self.app.push_screen(Confirm(question, "Stop", "Keep training", yes_variant="error"),
                             answered)

    def _request_stop(self, why: str) -> None:
        if self.run is None:
            return
        before = self.run_state
        self.run.stop()
        if before is RunState.STARTING:
            self.log_line(f"Stopping ({why}) before training begins…", "ui")
        else:
            self.log_line(f"Stopping ({why}) after this step…", "ui")
        self.run_state = RunState.STOPPING

    def action_checkpoint(self) -> None:
        """Save a checkpoint at the end of the current step."""
        if self.run is None or self.run_state not in (RunState.RUNNING, RunState.EVALUATING):
            return
        self.run.save_now()
        self.log_line("Checkpoint requested: it is written at the end of this step.", "ui")

    def action_toggle_chart(self) -> None:
        """Cycle the charts: loss, learning rate / grad norm, task vs general drift when the run
        measures it, and for a preference run the reward margin / preference accuracy."""
        charts = ["loss", "lr"]
        if self.progress.general_prompts or self.query_one(DriftPlot).drifts:
            charts.append("drift")
        if self.progress.objective != "sft" or self.query_one(RewardPlot).has_data:
            charts.append("rewards")
        self.chart = charts[(charts.index(self.chart) + 1) % len(charts)] if self.chart in charts else "loss"

    def action_toggle_log(self) -> None:
        """Enlarge the log pane (or give the charts their room back)."""
        self.log_large = not self.log_large

    def action_open_review(self) -> None:
        """Open the review screen on the run that ended (the app forwards a ``ReviewRun``)."""
        if not self.run_state.ended:
            return
        self.app.post_message(ReviewRun(self.run_dir))

    def action_open_chat(self) -> None:
        """Open the chat on the run that ended, beside its base (the app forwards a
        ``ChatRun``)."""
        if not self.run_state.ended or self.run_dir is None:
            return
        self.app.post_message(ChatRun(self.run_dir))

    def stop_then_quit(self) -> None:
        """The app quits while a run trains in this process: stop it, exit once it ended."""
        self.quitting = True
        self.notify("Stopping after this step… (press ctrl+q again to quit at once)", timeout=10)
        if self.run_state is not RunState.STOPPING:
            self._request_stop("quitting")
        elif self.run is not None:
            self.run.stop()
        if self._run_worker is None or self._run_worker.is_finished:
            self.app.exit()

    # --- messages from the bridge ---------------------------------------------------------

    @on(EventReceived)
    def show_event(self, message: EventReceived) -> None:
        """One event of the run: fold it into the state, the figures and the alerts, then show
        it in the charts and the log."""
        if not self._is_current(message):
            return
        event = message.event
        self._fold(event)
        match event:
            case RunStarted():
                self._show_opened(event)
            case PhaseChanged(done=0) if event.phase not in SAVE_PHASES:
                self.log_line(f"{event.message}…", "info", at=event.time)
            case EvalLogged():
                self.query_one(LossPlot).add_eval(event.step, event.eval_loss)
                self.query_one(DriftPlot).add_eval(event)
                self.query_one(RewardPlot).add_eval(event.step, event.reward_margin)
                self.log_line(describe_event(event), "event", at=event.time)
            case CheckpointSaved():
                self.log_line(describe_event(event), "event", at=event.time)
            case MessageLogged():
                self.log_line(describe_event(event), event.level, at=event.time)
            case _ if isinstance(event, TERMINAL_EVENTS):
                self.log_line(ending_line(event), ENDING_LEVELS[event.status], at=event.time)
        self._show_figures()

    def _show_opened(self, event: RunStarted) -> None:
        """Training begins: show what runs where."""
        self.query_one(AlertsPanel).show_rules_for(event.objective != "sft", event.drift_threshold)
        self.query_one(DriftPlot).set_threshold(event.drift_threshold)
        # The handle knows where the files are (a run directory may have been moved since).
        known = self.run.run_dir if self.run is not None else None
        self.run_dir = known or Path(event.run_dir)
        if event.pid and self.run is not None and self.run.detached and not self.run.pid:
            self.query_one(VramGauge).set_pid(event.pid)
        self.log_line(describe_event(event), "event", at=event.time)

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

    # --- workers --------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def handle_worker_state(self, event: Worker.StateChanged) -> None:
        """The run's worker ended: quit if the app waits for it, or show why it failed (one
        handler, catch-all last)."""
        worker, state = event.worker, event.state
        if worker is not self._run_worker:
            return  # an earlier run's worker, or another group
        if state == WorkerState.SUCCESS:
            if self.quitting:
                self.app.exit()  # the in-process run ended and its thread is joined
        elif state == WorkerState.ERROR:
            error = worker.error
            if isinstance(error, RunStartError):
                self.run_state = RunState.FAILED
                self._raise_alerts([Alert("start", "error", "Could not start the run", str(error))])
            else:
                self.log_line(f"Following the run failed: {type(error).__name__}: {error}", "error")
            if self.quitting:
                self.app.exit()
        else:
            pass  # PENDING, RUNNING, CANCELLED: nothing to show

    def on_unmount(self) -> None:
        """Stop delivering events, and ask a run training in this process to stop."""
        if self.bridge is not None:
            self.bridge.close()
        if self.trains_in_process and self.run is not None:
            self.run.stop()


def training_screen(app: App) -> TrainingScreen | None:
    """The app's training screen, if the training mode was opened."""
    try:
        stack = app.get_screen_stack("training")
    except KeyError:
        return None
    return next((screen for screen in stack if isinstance(screen, TrainingScreen)), None)
