"""The hyperparams screen: edit the whole run config and see what it will cost.

Left, a list of every ``RunConfig`` field with help, defaults and per-field errors as you
type: nothing has the keyboard until ``Enter`` edits the highlighted field (see
:class:`~tui.widgets.config_form.ConfigForm`); right, the live figures: trainable parameters
and the memory estimate against the GPU (or system memory) with its verdict and the change
that would make it fit. The heavy part (the model's config, a meta-device model, the
estimate) runs in a debounced thread worker. Edits go straight into ``app.config``; one key
starts training with it. Save and load default to the workspace, with path completion.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Static
from textual.worker import Worker, WorkerState

from core.config import ConfigError, ConfigProblem, RunConfig
from core.data import TrainingOutcome
from core.estimate import RowsMeasured
from core.memory import AvailableMemory, MemoryEstimate, apply_changes
from core.timing import TimeEstimate
from tui.messages import CloneConfig, StartRun
from tui.widgets.config_form import SPECS, ConfigForm, get_value, set_value
from tui.widgets.confirm import Confirm
from tui.widgets.memory_panel import MemoryPanel
from tui.widgets.path_suggester import PathSuggester

DEBOUNCE_SECONDS = 0.4
"""Quiet time after the last keystroke before the estimate is recomputed."""
CONFIG_FILE = "tunetop.yaml"
"""The file name Save and Load offer first, in the workspace."""

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "qlora-small": ("QLoRA, small GPU", {
        "method": "qlora", "lora.r": 16, "lora.lora_alpha": 32, "lora.lora_dropout": 0.05,
        "lora.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                "gate_proj", "up_proj", "down_proj"],
        "optim.learning_rate": 2e-4, "optim.per_device_train_batch_size": 2,
        "optim.gradient_accumulation_steps": 8, "optim.gradient_checkpointing": True,
        "optim.warmup_ratio": 0.05, "optim.num_train_epochs": 2.0,
    }),
    "lora": ("LoRA", {
        "method": "lora", "lora.r": 16, "lora.lora_alpha": 32, "lora.lora_dropout": 0.05,
        "lora.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "optim.learning_rate": 2e-4, "optim.per_device_train_batch_size": 8,
        "optim.gradient_accumulation_steps": 1, "optim.gradient_checkpointing": False,
        "optim.warmup_ratio": 0.05, "optim.num_train_epochs": 3.0,
    }),
    "full": ("Full fine-tune", {
        "method": "full", "optim.learning_rate": 2e-5, "optim.per_device_train_batch_size": 4,
        "optim.gradient_accumulation_steps": 4, "optim.gradient_checkpointing": True,
        "optim.warmup_ratio": 0.1, "optim.num_train_epochs": 2.0, "optim.weight_decay": 0.0,
    }),
    "dpo": ("DPO on preference pairs", {
        # Keeps the method and the LoRA shape: set model.adapter to the SFT run to start from.
        "objective": "dpo", "preference.beta": 0.1, "preference.loss_type": "sigmoid",
        "data.format": "auto", "optim.learning_rate": 5e-5, "optim.num_train_epochs": 1.0,
        "optim.warmup_ratio": 0.1,
    }),
}
"""Starting points: label and the fields each sets (current practice for each method and
objective)."""


@dataclass
class EstimateServices:
    """What the estimate worker calls; tests pass fakes via ``AppServices.estimate``."""

    model_config: Callable[[RunConfig], Any] | None = None
    """The model's ``PretrainedConfig``; default ``core.models.load_model_config``."""
    available: Callable[[], AvailableMemory] | None = None
    """Memory to compare with; default ``core.memory.available_memory`` (NVML or system)."""
    longest_tokens: Callable[[RunConfig], tuple[int, str]] | None = None
    """Longest row in tokens and how it was found; default: :attr:`measure_rows`."""
    measure_rows: Callable[[RunConfig], RowsMeasured] | None = None
    """The dataset rendered as training will (longest row, rows dropped); default
    :func:`core.estimate.measure_rows`, cached per data and model settings."""
    has_bitsandbytes: Callable[[], bool] | None = None
    """Whether QLoRA can run; default looks for the package."""
    time_estimate: Callable[[RunConfig, bool, Callable[[str], None]], TimeEstimate] | None = None
    """The time estimate for a config, with or without a probe, reporting progress; default
    ``core.timing.estimate_run_time``."""


@dataclass
class EstimateResult:
    """What one worker run found: model-specific problems and the estimate."""

    generation: int
    problems: list[ConfigProblem] = field(default_factory=list)
    estimate: MemoryEstimate | None = None
    note: str = ""
    outcome: TrainingOutcome | None = None
    """What training does with the rows (rows dropped), when they were rendered."""
    time: TimeEstimate | None = None
    time_note: str = ""


class HyperparamsScreen(Screen):
    """Edit the run config with live validation, parameter counts and the memory estimate."""

    CSS_PATH = "../styles/hyperparams.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    AUTO_FOCUS = "#form"

    # Priority: each of these moves the focus (or leaves the screen), so it must act before
    # the keys typed after it are routed (see ConfigForm).
    BINDINGS = [
        Binding("ctrl+t", "start_training", "Train", priority=True,
                tooltip="with this config", id="hyperparams.train"),
        Binding("ctrl+s", "ask_path('save')", "Save", priority=True,
                tooltip="the config to a YAML file", id="hyperparams.save"),
        Binding("ctrl+o", "ask_path('load')", "Load", priority=True,
                tooltip="a config from a YAML file", id="hyperparams.load"),
        Binding("f2", "preset('qlora-small')", "QLoRA preset", show=False,
                tooltip="for a small GPU", id="hyperparams.preset-qlora"),
        Binding("f3", "preset('lora')", "LoRA preset", show=False,
                id="hyperparams.preset-lora"),
        Binding("f4", "preset('full')", "Full fine-tune preset", show=False,
                id="hyperparams.preset-full"),
        Binding("f5", "preset('dpo')", "DPO preset", show=False,
                tooltip="(preference pairs; set model.adapter to the SFT run)",
                id="hyperparams.preset-dpo"),
        Binding("ctrl+r", "reset_field", "Default", show=False, priority=True,
                tooltip="for the highlighted field",
                id="hyperparams.reset-field"),
        Binding("ctrl+e", "measure_time", "Measure time", show=False, priority=True,
                tooltip="with a few real steps", id="hyperparams.measure-time"),
        Binding("escape", "close_path", "Cancel", id="hyperparams.cancel-path"),
    ]
    """Train, save, load (in the footer); presets, reset a field and measure the time (under
    ``?``); Escape closes the save/load bar. The form adds its own keys (edit, find, move)."""

    estimate: reactive[MemoryEstimate | None] = reactive(None)
    """The latest memory estimate (``None`` until the first worker run ends)."""
    estimate_status: reactive[str] = reactive("Estimating…")
    """Shown with or instead of the estimate: progress, or why there is none."""
    dropped_rows: reactive[str] = reactive("")
    """The rows training will drop (they teach nothing at the max length), or empty."""
    time_estimate: reactive[TimeEstimate | None] = reactive(None)
    """The latest time estimate (a cached probe or the FLOPs model; a probe on ``ctrl+e``)."""
    time_status: reactive[str] = reactive("")
    """What the time estimate does (the probe's progress) or why there is none."""

    def __init__(self) -> None:
        super().__init__()
        self._parse_errors: dict[str, str] = {}
        self._model_problems: list[ConfigProblem] = []
        self._generation = 0
        self._shown: RunConfig | None = None
        """The config as last shown and checked (another screen may replace ``app.config``)."""
        self._checked_generation = -1
        self._start_when_checked = False
        """ctrl+t came while the config was being checked: start once the check ends."""
        self._debounce: Timer | None = None
        self._path_mode = "save"
        self._last_path: str | None = None
        self._phase = ""
        self._phase_since: float | None = None
        self._estimating = False
        self._estimate_again = False
        self._outcome: TrainingOutcome | None = None
        self._probe_since: float | None = None
        self._probe_phase = ""

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="hyperparams-main"):
            yield ConfigForm(id="form")
            with VerticalScroll(id="figures"):
                yield MemoryPanel(id="memory").data_bind(
                    estimate=HyperparamsScreen.estimate, status=HyperparamsScreen.estimate_status,
                    dropped=HyperparamsScreen.dropped_rows,
                    time_estimate=HyperparamsScreen.time_estimate,
                    time_status=HyperparamsScreen.time_status)
        yield Static("", id="problems", markup=False)
        with Horizontal(id="path-bar"):
            yield Label("Save to:", id="path-label")
            yield Input(id="path-input", compact=True,
                        suggester=PathSuggester(suffixes=(".yaml", ".yml")))
        yield Footer()

    def on_mount(self) -> None:
        """Show the app's config and start the first estimate."""
        self.query_one("#form", ConfigForm).border_title = "Config"
        self.query_one("#figures").border_title = "Figures"
        self.reload()
        self.set_interval(1.0, self._show_phase)
        self.set_interval(1.0, self._show_probe)
        form = self.query_one(ConfigForm)
        self.app.config_edits_on_the_way.append(
            lambda: [path for path, _, _ in form.unapplied(self.config)])

    def on_screen_resume(self) -> None:
        """Another screen may have changed the config (the dataset screen sets the data); a
        dialog closing over this one changed nothing, and re-checking would hold up a start."""
        if self.app.config != self._shown:
            self.reload()

    @on(CloneConfig)
    def show_clone(self) -> None:
        """The app put a run's config up for editing (runs screen, key c)."""
        self.reload()

    def on_screen_suspend(self) -> None:
        """Leave any open editor, so coming back finds the list, not a hidden input; a start
        waiting for the check is dropped (the user went elsewhere)."""
        self.query_one(ConfigForm).stop_editing()
        self._start_when_checked = False

    def reload(self) -> None:
        """Show ``app.config`` in the form, re-validate and re-estimate."""
        self._parse_errors.clear()
        self.query_one(ConfigForm).load(self.app.config)
        self._changed()

    # --- editing ---------------------------------------------------------------------------

    @property
    def config(self) -> RunConfig:
        """The config being edited: the app's."""
        return self.app.config

    @on(ConfigForm.Edited)
    def field_edited(self, message: ConfigForm.Edited) -> None:
        """Write a parsed edit into ``app.config``; keep typing errors per field."""
        if message.error is None:
            self._parse_errors.pop(message.path, None)
            set_value(self.config, message.path, message.value)
        else:
            self._parse_errors[message.path] = message.error
        self._changed()

    def apply_shown_edits(self) -> None:
        """Apply what the form shows now, before its change messages arrive: saving or
        starting uses exactly what is on screen."""
        unapplied = self.query_one(ConfigForm).unapplied(self.config)
        for path, value, error in unapplied:
            if error is None:
                self._parse_errors.pop(path, None)
                set_value(self.config, path, value)
            else:
                self._parse_errors[path] = error
        if unapplied:
            self._changed()

    def _changed(self) -> None:
        """Validate now (cheap) and re-estimate after the user pauses (expensive)."""
        self._generation += 1
        self._start_when_checked = False  # an edit after ctrl+t: the user is not done
        self._shown = copy.deepcopy(self.config)
        self._show_problems()
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_SECONDS, self._start_estimate)

    def problems(self) -> list[ConfigProblem]:
        """Every current problem: typing errors, ``validate()``, and model-specific ones."""
        out = [ConfigProblem(path, message, "") for path, message in self._parse_errors.items()]
        typed = set(self._parse_errors)
        out += [p for p in self.config.validate() if p.field not in typed]
        out += [p for p in self._model_problems if p.field not in typed]
        return out

    def _show_problems(self) -> None:
        errors: dict[str, str] = {}
        problems = sorted(self.problems(), key=lambda p: not p.is_error)  # errors first
        for p in problems:
            text = f"{p.message} {p.fix}".strip()
            errors[p.field] = f"{errors[p.field]} {text}" if p.field in errors else text
        self.query_one(ConfigForm).show_errors(errors)
        summary = self.query_one("#problems", Static)
        if errors:
            first = next(iter(errors))
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            mark = "✗" if problems[0].is_error else "⚠ warning:"
            summary.update(f"{mark} {first}: {errors[first]}{more}")
        else:
            summary.update("")
        summary.set_class(bool(errors), "-shown")

    # --- the estimate worker ---------------------------------------------------------------

    def _start_estimate(self) -> None:
        self._debounce = None
        if self._parse_errors or any(p.field == "model.name_or_path"
                                     for p in self.config.validate()):
            self._phase_since = None
            self.estimate = None
            self.estimate_status = "No estimate until the errors are fixed."
            return
        if self._estimating:
            # One at a time: a thread cannot be stopped, and a second one importing torch
            # beside it would only slow both (and the UI) down. It starts when this one ends.
            self._estimate_again = True
            return
        self._estimating = True
        self._phase_since = time.monotonic()
        self._set_phase(self._generation, "starting")
        self._estimate(copy.deepcopy(self.config), self._generation, self._services())

    def _set_phase(self, generation: int, phase: str) -> None:
        """The estimate of ``generation`` started ``phase`` (ignored once superseded)."""
        if generation == self._generation and self._phase_since is not None:
            self._phase = phase
            self._show_phase()

    def _show_phase(self) -> None:
        """While estimating: what it does and for how long (the first one imports torch and
        measures every row, tens of seconds on a small machine)."""
        if self._phase_since is not None:
            seconds = time.monotonic() - self._phase_since
            self.estimate_status = f"Estimating: {self._phase}… {seconds:.0f} s"

    def _services(self) -> EstimateServices:
        return self.app.services.estimate

    @work(thread=True, exclusive=True, group="estimate", exit_on_error=False)
    def _estimate(self, config: RunConfig, generation: int,
                  services: EstimateServices) -> EstimateResult:
        """Load the model's config, check targets and bitsandbytes, count and estimate."""
        from core import memory

        def phase(text: str) -> None:
            self.app.call_from_thread(self._set_phase, generation, text)

        result = EstimateResult(generation)
        phase("loading the model's config")
        if config.method == "qlora" and not (services.has_bitsandbytes or memory.has_bitsandbytes)():
            result.problems.append(ConfigProblem(
                "method", "qlora needs bitsandbytes, which is not installed.",
                "pip install bitsandbytes, or use lora."))
        if services.model_config is not None:
            model_config = services.model_config(config)
        else:
            from core.models import ModelError, load_model_config

            try:
                model_config = load_model_config(config.model.name_or_path,
                                                 config.model.trust_remote_code,
                                                 config.model.revision)
            except ModelError as exc:
                result.problems.append(ConfigProblem("model.name_or_path", str(exc), ""))
                return result
        if config.method != "full":
            problem = memory.target_modules_problem(model_config, config.lora.target_modules,
                                                    config.model.trust_remote_code)
            if problem is not None:
                result.problems.append(problem)
                return result
        if config.errors():
            return result
        phase("rendering the rows of the data as training will")
        if services.longest_tokens is not None:
            tokens, result.note = services.longest_tokens(config)
        else:
            measured = (services.measure_rows or _measure_rows)(config)
            tokens, result.note, result.outcome = measured.tokens, measured.how, measured.outcome
        phase("counting parameters and memory")
        available = (services.available or memory.available_memory)()
        result.estimate = memory.estimate_memory(model_config, config, tokens, "auto", available)
        phase("estimating the time")
        try:  # a cached probe of this shape, else the FLOPs model: seconds, never a probe here
            result.time = (services.time_estimate or _time_estimate)(config, False, lambda text: None)
        except Exception as exc:  # noqa: BLE001 - no time estimate must never hide the memory one
            result.time_note = f"No time estimate: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
        return result

    def action_measure_time(self) -> None:
        """Measure the time estimate with a short real run (a probe), in a worker."""
        if self._probe_since is not None:
            self.notify("Already measuring; the figures follow in a moment.")
            return
        errors = [p for p in self.problems() if p.is_error]
        if errors:
            self.notify(f"Fix {errors[0].field} first: the probe trains this config.", severity="warning")
            return
        self.apply_shown_edits()
        self._probe_since = time.monotonic()
        self._probe_phase = "starting"
        self._show_probe()
        self._measure(copy.deepcopy(self.config), self._generation, self._services())

    def _set_probe_phase(self, phase: str) -> None:
        self._probe_phase = phase
        self._show_probe()

    def _show_probe(self) -> None:
        if self._probe_since is not None:
            seconds = time.monotonic() - self._probe_since
            self.time_status = f"Measuring time: {self._probe_phase}… {seconds:.0f} s"

    @work(thread=True, exclusive=True, group="time-probe", exit_on_error=False)
    def _measure(self, config: RunConfig, generation: int, services: EstimateServices) -> tuple[int, TimeEstimate]:
        """Run the probe (a few real steps in a scratch folder) and estimate from it."""
        def progress(text: str) -> None:
            self.app.call_from_thread(self._set_probe_phase, text)

        return generation, (services.time_estimate or _time_estimate)(config, True, progress)

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        """Show the estimate when the worker ends; show any failure in the panel."""
        worker = event.worker
        if worker.group == "time-probe":
            self._probe_done(worker)
            return
        if worker.group != "estimate":
            return
        if worker.is_finished:
            self._estimating = False
            if self._estimate_again:  # the config changed while it ran: estimate it now
                self._estimate_again = False
                self._start_estimate()
        if worker.state == WorkerState.SUCCESS:
            result: EstimateResult = worker.result
            if result.generation != self._generation:
                return  # the config changed while it ran; a newer run is on its way
            self._phase_since = None
            self._checked_generation = result.generation
            self._model_problems = result.problems
            self._outcome = result.outcome
            self.dropped_rows = result.outcome.drop_summary() if result.outcome else ""
            self._show_problems()
            if self._probe_since is None:  # a probe running says more than this
                self.time_estimate, self.time_status = result.time, result.time_note
            if result.estimate is not None:
                self.estimate = result.estimate
                self.estimate_status = result.note
            else:
                self.estimate = None
                self.estimate_status = "No estimate until the errors are fixed."
            if self._start_when_checked:
                self._start_when_checked = False
                self.action_start_training()
        elif worker.state == WorkerState.ERROR and not self._estimating:
            self._phase_since = None
            error = worker.error
            self.estimate_status = f"Estimate failed: {type(error).__name__}: {error}"
            if self._start_when_checked:
                self._start_when_checked = False
                self.notify("The check of this config failed (the panel says why); the run did not "
                            "start.", severity="error")
        # PENDING, RUNNING and CANCELLED (a newer run replaced it) change nothing shown.

    def _probe_done(self, worker: Worker) -> None:
        """Show the measured time estimate, or why the probe failed."""
        if worker.state == WorkerState.SUCCESS:
            self._probe_since = None
            generation, estimate = worker.result
            self.time_estimate = estimate
            self.time_status = "" if generation == self._generation else \
                "Measured before the last edit; the next estimate uses it where the shape is the same."
        elif worker.state == WorkerState.ERROR:
            self._probe_since = None
            error = worker.error
            self.time_status = f"Measuring failed: {type(error).__name__}: {error}"
        elif worker.state == WorkerState.CANCELLED:
            self._probe_since = None
            self.time_status = ""
        # PENDING and RUNNING: the progress line already says so.

    # --- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the cancel key unless the path bar is open."""
        if action == "close_path":
            return self.query_one("#path-bar").has_class("-open")
        return True

    def action_start_training(self) -> None:
        """Start training with this config on the training screen, or say why not."""
        self.apply_shown_edits()
        problems = [p for p in self.problems() if p.is_error]  # warnings do not stop a run
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.notify(f"Cannot start: {first.field}: {first.message}{more}",
                        title="Fix the config first", severity="error")
            return
        if self._checked_generation != self._generation:
            self._start_when_checked = True
            self.notify("Checking this config against the model first; the run starts when the "
                        "check ends (an edit cancels).")
            return
        if self.estimate is not None and self.estimate.verdict == "will not fit":
            self.notify("The estimate says this will not fit; starting anyway.",
                        severity="warning")
        config = copy.deepcopy(self.config)
        if self._outcome is not None and self._outcome.dropped:
            self._confirm_dropped_rows(config, self._outcome)
            return
        self.app.post_message(StartRun(config))

    def _confirm_dropped_rows(self, config: RunConfig, outcome: TrainingOutcome) -> None:
        """Ask before a run that drops rows which teach nothing at this max length."""
        def answered(start: bool | None) -> None:
            if start:
                self.app.post_message(StartRun(config))

        self.app.push_screen(Confirm(f"{outcome.drop_summary()} and will be dropped. Start "
                                     "anyway?", "Start", "Back"), answered)

    def action_preset(self, name: str) -> None:
        """Apply a preset's fields to the config."""
        label, changes = PRESETS[name]
        self.app.config = apply_changes(self.config, changes)
        self.reload()
        self.notify(f"Preset: {label}.")

    def action_reset_field(self) -> None:
        """Put the highlighted field back to its default."""
        field = self.query_one(ConfigForm).current
        path = field.spec.path
        set_value(self.config, path, copy.deepcopy(SPECS[path].default))
        self._parse_errors.pop(path, None)
        field.show(get_value(self.config, path))
        self._changed()

    def action_ask_path(self, mode: str) -> None:
        """Open the path bar to save or load a YAML config (the workspace's file first)."""
        self._path_mode = mode
        bar = self.query_one("#path-bar")
        self.query_one("#path-label", Label).update(
            "Save to (→ completes):" if mode == "save" else "Load from (→ completes):")
        path_input = self.query_one("#path-input", Input)
        path_input.value = self._last_path or str(Path(self.app.workspace) / CONFIG_FILE)
        bar.add_class("-open")
        self.set_focus(path_input)  # now: the keys typed next go into it
        # a long path shows its end, the file name, in a narrow bar
        self.call_after_refresh(setattr, path_input, "cursor_position", len(path_input.value))
        self.refresh_bindings()

    def action_close_path(self) -> None:
        """Close the path bar without saving or loading; the list has the keyboard again."""
        self.query_one("#path-bar").remove_class("-open")
        self.set_focus(self.query_one(ConfigForm))
        self.refresh_bindings()

    @on(Input.Submitted, "#path-input")
    def path_submitted(self, event: Input.Submitted) -> None:
        """Save to or load from the typed path."""
        path = Path(event.value.strip()).expanduser()
        if not event.value.strip():
            self.notify("Type a file path.", severity="warning")
            return
        self._last_path = str(path)
        self.apply_shown_edits()
        if self._path_mode == "save":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.config.save(path)
            except OSError as exc:
                self.notify(f"Cannot save {path}: {exc.strerror or exc}", severity="error")
                return
            self.app.config_saved()
            self.notify(f"Saved {path}.")
        else:
            try:
                self.app.config = RunConfig.load(path)
            except ConfigError as exc:
                self.notify(str(exc), title=f"Cannot load {path}", severity="error", timeout=10)
                return
            self.app.config_saved()
            self.reload()
            self.notify(f"Loaded {path}.")
        self.action_close_path()


def _measure_rows(config: RunConfig) -> RowsMeasured:
    """The dataset rendered as training will (cached per data and model settings and file
    change time)."""
    from core.estimate import measure_rows

    key = _data_key(config)
    if key not in _rows_cache:
        _rows_cache.clear()
        _rows_cache[key] = measure_rows(config)
    return _rows_cache[key]


_rows_cache: dict[tuple, RowsMeasured] = {}


def _data_key(config: RunConfig) -> tuple:
    d, m = config.data, config.model
    try:
        mtime = Path(d.path).expanduser().stat().st_mtime
    except OSError:
        mtime = None
    # the sources (a mix, a registry entry, a split) and how rows render change the lengths
    sources = tuple((s.path, s.dataset, s.split, s.revision, s.format, s.weight, s.max_rows)
                    for s in d.sources)
    return (d.path, mtime, d.format, d.max_length, d.assistant_only_loss, m.name_or_path,
            m.revision, d.dataset, d.split, d.revision, sources, d.chat_template,
            d.default_system_prompt, d.text_chunking, config.optim.seed)


def _time_estimate(config: RunConfig, probe: bool, progress: Callable[[str], None]) -> TimeEstimate:
    """The real time estimate (:func:`core.timing.estimate_run_time`), with the data's rows
    measured once per data and model settings."""
    from core.timing import estimate_run_time, measure_data

    key = (_data_key(config), config.optim.seed, config.data.validation_fraction)
    if key not in _shape_cache:
        _shape_cache.clear()
        _shape_cache[key] = measure_data(config)
    return estimate_run_time(config, probe=probe, on_progress=progress, data=_shape_cache[key])


_shape_cache: dict[tuple, Any] = {}
