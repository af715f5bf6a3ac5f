"""The figures panel: where the run stands, in numbers.

Tall terminals get one figure per line; short ones (80x24) pair related figures so that every
one still shows. While the run is not stepping (setting up, evaluating, saving) a line under
the status says what it does, with a bar when it counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from core.handle import RunState
from core.runs import RunProgress, format_duration

STATE_STYLES = {
    RunState.IDLE: "dim",
    RunState.STARTING: "yellow",
    RunState.RUNNING: "green",
    RunState.EVALUATING: "cyan",
    RunState.SAVING: "cyan",
    RunState.STOPPING: "yellow",
    RunState.FINISHED: "bold green",
    RunState.STOPPED: "yellow",
    RunState.FAILED: "bold red",
}

PHASE_TITLES = {
    "launch": "loading libraries",
    "data": "loading data",
    "tokenizer": "loading tokenizer",
    "tokenize": "tokenizing",
    "model": "loading model",
    "general": "base answers",
    "trainer": "building trainer",
    "checkpoint": "saving checkpoint",
    "final": "writing output",
}
"""Short names of ``PhaseChanged`` phases for the activity line (the log has the full line)."""


def format_number(value: float | None, pattern: str) -> str:
    """``value`` formatted with ``pattern``; an em dash when unknown, the word for NaN/inf."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return format(value, pattern)


def _best(p: RunProgress) -> str:
    if p.best_eval_loss is None:
        return "—"
    at = f" @ {p.best_eval_step}" if p.best_eval_step is not None else ""
    return f"{p.best_eval_loss:.4f}{at}"


def _checkpoints(p: RunProgress) -> str:
    ckpt = str(len(p.checkpoints))
    if p.checkpoints:
        ckpt += f" · {p.checkpoints[-1].rstrip('/').rsplit('/', 1)[-1]}"
    return ckpt


def _eta(p: RunProgress, state: RunState, now: float) -> str:
    return format_duration(p.eta_seconds(now)) if RunState(state).live else "—"


def _budget(p: RunProgress, now: float) -> str:
    """``6:01 left of 8:00`` (hours only when there are some: it shares a short row)."""
    left = p.budget_left(now)
    if left is None:
        return "—"

    def short(seconds: float) -> str:
        if seconds >= 3600:
            return format_duration(seconds)
        minutes, secs = divmod(int(round(seconds)), 60)
        return f"{minutes}:{secs:02d}"

    if left < 0:
        return f"{short(-left)} over {short(p.budget_seconds)}"
    return f"{short(left)} left of {short(p.budget_seconds)}"


def figure_rows(progress: RunProgress, state: str, now: float) -> list[tuple[str, str]]:
    """(label, value) rows for ``progress``, one figure each; pure, so tests can check the
    numbers."""
    p = progress
    pct = f" ({p.fraction:.0%})" if p.total_steps else ""
    budget = [("Budget", _budget(p, now))] if p.budget_seconds else []
    return [
        ("Step", f"{p.step:,} / {p.total_steps:,}{pct}" if p.total_steps else f"{p.step:,}"),
        *_preference_rows(p)[:2],  # what a preference run is judged by: near the top
        *_drift_row(p),  # what the fine-tune costs general ability: near the top too
        ("Epoch", format_number(p.epoch, ".2f") if p.step else "—"),
        ("Elapsed", format_duration(p.elapsed_seconds(now))),
        ("ETA", _eta(p, state, now)),
        *budget,
        ("Tokens/s", format_number(p.tokens_per_second, ",.0f")),
        ("Samples/s", format_number(p.samples_per_second, ",.1f")),
        ("Loss", format_number(p.loss, ".4f")),
        *_preference_rows(p)[2:],
        ("Val loss", format_number(p.eval_loss, ".4f")),
        ("Best val", _best(p)),
        ("Checkpoints", _checkpoints(p)),
        ("LR", format_number(p.learning_rate, ".2e")),
        ("Grad norm", format_number(p.grad_norm, ".3f")),
        ("Trainable", _params(p.trainable_params, p.total_params)),
        ("Rows", _rows(p)),
    ]


def compact_rows(progress: RunProgress, state: str, now: float) -> list[tuple[str, str]]:
    """The figures of :func:`figure_rows` paired into fewer rows, for short terminals."""
    p = progress
    step = f"{p.step:,}/{p.total_steps:,} ({p.fraction:.0%})" if p.total_steps else f"{p.step:,}"
    if p.step:
        step += f" · ep {format_number(p.epoch, '.2f')}"
    return [
        ("Step", step),
        *_preference_rows(p)[:2],  # what a preference run is judged by: near the top
        *_drift_row(p),  # what the fine-tune costs general ability: near the top too
        ("Time", f"{format_duration(p.elapsed_seconds(now))} · ETA {_eta(p, state, now)}"),
        *([("Budget", _budget(p, now))] if p.budget_seconds else []),
        ("Speed/s", f"{format_number(p.tokens_per_second, ',.0f')} tok · "
                    f"{format_number(p.samples_per_second, ',.1f')} rows"),
        ("Loss", f"{format_number(p.loss, '.4f')} · val {format_number(p.eval_loss, '.4f')}"),
        ("Best val", _best(p)),
        ("Ckpts", _checkpoints(p)),
        ("LR · grad", f"{format_number(p.learning_rate, '.2e')} · {format_number(p.grad_norm, '.3f')}"),
        ("Trainable", _params(p.trainable_params, p.total_params)),
        ("Rows", _rows(p)),
    ]


def activity_row(progress: RunProgress, state: str, width: int = 20) -> tuple[str, Text] | None:
    """What the run does between steps (evaluating, loading, saving), with a bar when it
    counts; None while it just trains."""
    p = progress
    if state == RunState.EVALUATING and p.eval_total:
        return "Eval", progress_bar(p.eval_done, p.eval_total, width)
    if p.phase and RunState(state).live:
        title = PHASE_TITLES.get(p.phase, p.phase)
        if p.phase_total:
            text = Text(f"{title} ")
            room = width - len(text)
            if room - len(f" {p.phase_done:,}/{p.phase_total:,}") < 4:  # no room for a bar
                return "Phase", text.append(f"{p.phase_done:,}/{p.phase_total:,}")
            return "Phase", text.append_text(progress_bar(p.phase_done, p.phase_total, room))
        return "Phase", Text(title)
    return None


def progress_bar(done: int, total: int, width: int) -> Text:
    """A bar of ``width`` cells ending in ``done/total``."""
    count = f" {done:,}/{total:,}"
    cells = max(width - len(count), 4)
    filled = round(cells * min(done / total, 1.0)) if total else 0
    bar = Text("━" * filled, style="cyan")
    bar.append("─" * (cells - filled), style="dim")
    return bar.append(count)


def _rows(p: RunProgress) -> str:
    return f"{p.num_train_rows:,} train · {p.num_val_rows:,} val" if p.num_train_rows else "—"


def _preference_rows(p: RunProgress) -> list[tuple[str, str]]:
    """Reward margin, preference accuracy and rewards of a DPO/ORPO run; none for SFT."""
    if p.reward_margin is None:
        return []

    def val(value: float | None, pattern: str) -> str:
        return f" · val {format_number(value, pattern)}" if value is not None else ""

    return [
        ("Margin", format_number(p.reward_margin, ".3f") + val(p.eval_reward_margin, ".3f")),
        ("Pref acc", format_number(p.reward_accuracy, ".0%") + val(p.eval_reward_accuracy, ".0%")),
        ("Rewards", f"chosen {format_number(p.reward_chosen, '+.3f')} · "
                    f"rejected {format_number(p.reward_rejected, '+.3f')}"),
    ]


def _drift_row(p: RunProgress) -> list[tuple[str, str]]:
    """General drift at the last evaluation, for a run that measures it; none otherwise."""
    if p.general_drift is None:
        return []
    return [("Drift", format_number(p.general_drift, "+.3f"))]


def _params(trainable: int, total: int) -> str:
    if not total:
        return "—"
    share = f" ({trainable / total:.2%})" if trainable < total else " (all)"
    return f"{_short(trainable)}{share}"


def _short(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


class RunFigures(Widget):
    """Step, epoch, elapsed, ETA, throughput, losses and checkpoints of the shown run."""

    DEFAULT_CSS = """
    RunFigures {
        height: 1fr;
        overflow: hidden;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.progress = RunProgress()
        self.state = RunState.IDLE
        self.detached = False
        """Whether the shown run trains in its own process (said on the status line)."""
        self.clock: Callable[[], float] = time.time
        """Wall clock for the elapsed time (snapshot tests freeze it)."""

    def on_mount(self) -> None:
        """Tick once a second so elapsed time and ETA move between events."""
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if RunState(self.state).live:
            self.refresh()

    def show(self, progress: RunProgress, state: RunState, detached: bool = False) -> None:
        """Render ``progress`` in run state ``state``."""
        self.progress = progress
        self.state = state
        self.detached = detached
        p = progress
        kind = p.method if p.objective == "sft" else f"{p.objective} · {p.method}"
        self.border_title = f"Run · {kind}" if p.method else "Run"  # kept when the Method row is not
        self.refresh()

    def status_text(self) -> Text:
        """The run state, with its evaluation count, and where the run trains."""
        p, state = self.progress, RunState(self.state)
        text = Text(state.value, style=STATE_STYLES.get(state, ""))
        if state is RunState.EVALUATING and p.eval_total:
            text.append(f" {p.eval_done}/{p.eval_total}")
        if self.detached and state is not RunState.IDLE:
            text.append(" · detached", style="dim")
        return text

    def render(self) -> RenderResult:
        """A two-column grid of figures under a status line; paired figures when short."""
        p = self.progress
        width = max(self.content_size.width, 20)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, min_width=9)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_row("Status", self.status_text())
        method: list[tuple[str, Text]] = []
        if p.method:
            kind = p.method if p.objective == "sft" else f"{p.objective} · {p.method}"
            method = [("Method", Text(f"{kind} · {p.device} {p.precision}", style="dim"))]
        activity = activity_row(p, self.state, width - 10)  # the label column takes 10
        now = self.clock()
        room = max(self.content_size.height - 1 - (activity is not None), 1)
        rows = figure_rows(p, self.state, now)
        if room < len(method) + len(rows):
            rows = compact_rows(p, self.state, now)
        if room < len(method) + len(rows):
            method = []  # short terminals: the figures matter more (the log names the method)
        for label, value in method:
            grid.add_row(label, value)
        if activity is not None:
            grid.add_row(*activity)
        for label, value in rows[:room - len(method)]:  # least important last: dropped first
            grid.add_row(label, value)
        return grid
