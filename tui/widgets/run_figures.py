"""The figures panel: where the run stands, in numbers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from core.runs import RunProgress

STATE_STYLES = {
    "idle": "dim",
    "starting": "yellow",
    "running": "green",
    "following": "green",
    "stopping": "yellow",
    "finished": "bold green",
    "stopped": "yellow",
    "failed": "bold red",
}


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``D d H:MM:SS``); an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(max(seconds, 0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def format_number(value: float | None, pattern: str) -> str:
    """``value`` formatted with ``pattern``; an em dash when unknown, the word for NaN/inf."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return format(value, pattern)


def figure_rows(progress: RunProgress, state: str, now: float) -> list[tuple[str, str]]:
    """(label, value) rows for ``progress``; pure, so tests can check the numbers."""
    p = progress
    pct = f" ({p.fraction:.0%})" if p.total_steps else ""
    best = "—"
    if p.best_eval_loss is not None:
        at = f" @ {p.best_eval_step}" if p.best_eval_step is not None else ""
        best = f"{p.best_eval_loss:.4f}{at}"
    ckpt = str(len(p.checkpoints))
    if p.checkpoints:
        ckpt += f" · {p.checkpoints[-1].rstrip('/').rsplit('/', 1)[-1]}"
    return [
        ("Step", f"{p.step:,} / {p.total_steps:,}{pct}" if p.total_steps else f"{p.step:,}"),
        *_preference_rows(p)[:2],  # what a preference run is judged by: near the top
        ("Epoch", format_number(p.epoch, ".2f") if p.step else "—"),
        ("Elapsed", format_duration(p.elapsed_seconds(now))),
        ("ETA", format_duration(p.eta_seconds()) if state in ("running", "following", "stopping") else "—"),
        ("Tokens/s", format_number(p.tokens_per_second, ",.0f")),
        ("Samples/s", format_number(p.samples_per_second, ",.1f")),
        ("Loss", format_number(p.loss, ".4f")),
        *_preference_rows(p)[2:],
        ("Val loss", format_number(p.eval_loss, ".4f")),
        ("Best val", best),
        ("Checkpoints", ckpt),
        ("LR", format_number(p.learning_rate, ".2e")),
        ("Grad norm", format_number(p.grad_norm, ".3f")),
        ("Trainable", _params(p.trainable_params, p.total_params)),
        ("Rows", f"{p.num_train_rows:,} train · {p.num_val_rows:,} val" if p.num_train_rows else "—"),
    ]


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
        self.state = "idle"
        self.clock: Callable[[], float] = time.time
        """Wall clock for the elapsed time (snapshot tests freeze it)."""

    def on_mount(self) -> None:
        """Tick once a second so elapsed time moves between events."""
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.state in ("running", "following", "stopping", "starting"):
            self.refresh()

    def show(self, progress: RunProgress, state: str) -> None:
        """Render ``progress`` in run state ``state``."""
        self.progress = progress
        self.state = state
        self.refresh()

    def render(self) -> RenderResult:
        """A two-column grid of figures under a status line."""
        p = self.progress
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, min_width=11)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_row("Status", Text(self.state, style=STATE_STYLES.get(self.state, "")))
        if p.method:
            method = p.method if p.objective == "sft" else f"{p.objective} · {p.method}"
            grid.add_row("Method", Text(f"{method} · {p.device} {p.precision}", style="dim"))
        rows = figure_rows(p, self.state, self.clock())
        room = max(self.content_size.height - len(grid.rows), 1)
        for label, value in rows[:room]:  # least important last: short terminals drop them
            grid.add_row(label, value)
        return grid
