"""The loss chart: training loss raw and smoothed, validation loss, best point marked.

Data lives in bounded deques and is downsampled to the chart's width before plotting; the
chart replots at most 4 times a second (``clear_data``, plot, ``refresh``; see
textual-plotext#11), however fast steps arrive.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from core.events import StepLogged

MAX_POINTS = 20_000
"""Logged steps kept per series; older ones drop off the left."""
REPLOT_SECONDS = 0.25
"""Shortest time between two replots (4 Hz)."""


def downsample(points: Sequence[tuple[float, float]], target: int) -> tuple[list[float], list[float]]:
    """At most ``target`` points: consecutive buckets averaged, the last point kept exact."""
    n = len(points)
    if n <= target or target < 2:
        return [p[0] for p in points], [p[1] for p in points]
    all_x, all_y = zip(*points)
    xs: list[float] = []
    ys: list[float] = []
    size = n / (target - 1)
    start = 0
    for i in range(target - 1):
        end = max(min(int((i + 1) * size), n - 1), start + 1)
        count = end - start
        xs.append(sum(all_x[start:end]) / count)  # C-level sums over tuple slices: fast
        ys.append(sum(all_y[start:end]) / count)
        start = end
    xs.append(all_x[-1])
    ys.append(all_y[-1])
    return xs, ys


def step_ticks(low: float, high: float, count: int = 5) -> list[int]:
    """Whole-number ticks at a 1-2-5 spacing covering ``low``..``high`` (steps are integers)."""
    span = max(high - low, 1)
    raw = span / max(count - 1, 1)
    magnitude = 10 ** max(math.floor(math.log10(raw)), 0)
    spacing = min((m * magnitude for m in (1, 2, 5, 10)), key=lambda sp: abs(span / sp - (count - 1)))
    first = math.ceil(low / spacing) * spacing
    return list(range(int(first), int(high) + 1, int(spacing))) or [int(low)]


class Ema:
    """Exponential moving average with TensorBoard-style debiasing (``smoothing`` 0-1)."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self._value = 0.0
        self._count = 0

    def add(self, value: float) -> float:
        """Fold a value in and return the smoothed value."""
        self._count += 1
        self._value = self.smoothing * self._value + (1 - self.smoothing) * value
        return self._value / (1 - self.smoothing**self._count)


class ChartBase(PlotextPlot):
    """A PlotextPlot that replots only when its data changed, at most every 0.25 s.

    The build stays on the UI thread on purpose: plotext is pure Python, and building in a
    thread worker made the event loop's p99 lag about twice as bad (GIL hand-offs between the
    UI, the builder and the trainer; see bench/responsiveness.py).
    """

    EMPTY_TEXT = "Waiting for the first logged step…"
    SERIES: ClassVar[tuple[str, ...]] = ()
    """Names of the chart's point series: each is an attribute holding a bounded deque of
    ``(step, value)``, made here and cleared by :meth:`reset`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        for name in self.SERIES:
            setattr(self, name, deque(maxlen=MAX_POINTS))
        self._last_step = -1
        """The newest step plotted: older or repeated steps are skipped."""
        self._dirty = False
        self.replots = 0
        """How many times the chart was replotted (tests check the throttle with it)."""
        self.builds = 0
        """How many times the figure was built into text (the costly part of a render)."""
        self._rendered: tuple[tuple, RenderResult] | None = None

    def on_mount(self) -> None:
        """Start the replot timer (PlotextPlot's own on_mount runs too)."""
        self.set_interval(REPLOT_SECONDS, self._replot_if_dirty)

    def mark_dirty(self) -> None:
        """Note new data; the next timer tick replots."""
        self._dirty = True

    @property
    def settled(self) -> bool:
        """Whether the chart shows all data received (no replot pending)."""
        return not self._dirty

    def _replot_if_dirty(self) -> None:
        if not (self._dirty and self.display):
            return
        self._dirty = False
        self.replots += 1
        self.plt.clear_data()
        self.draw(self.plt, self.plot_data())
        self.refresh()

    def replot_now(self) -> None:
        """Replot at once (after a reset)."""
        self._dirty = True
        self._replot_if_dirty()

    def show_now(self) -> None:
        """Draw at once after being shown: replot only if data came while it was hidden."""
        self._replot_if_dirty()
        self.refresh()

    @property
    def has_data(self) -> bool:
        """Whether any series has a point."""
        return any(getattr(self, name) for name in self.SERIES)

    def reset(self) -> None:
        """Forget every point (a new run)."""
        for name in self.SERIES:
            getattr(self, name).clear()
        self._last_step = -1
        self.forget()
        self.replot_now()

    def forget(self) -> None:
        """Forget what the chart keeps besides its series, for :meth:`reset` (subclasses)."""

    def target_points(self) -> int:
        """How many points fit the plot width (braille gives two per cell)."""
        return max(2 * max(self.size.width - 10, 10), 20)

    def plot_data(self) -> dict:
        """The data to plot, and the legend updated."""
        return {}

    def draw(self, plt: Plot, data: dict) -> None:
        """Plot ``data`` on ``plt`` (after ``clear_data``)."""

    def render(self) -> RenderResult:
        """The chart, or a hint while there is nothing to plot.

        Building the figure and decoding its ANSI text takes 10-40 ms of pure Python on a
        busy two-core machine, so the text is kept until the data, size or theme changes:
        switching charts or repainting over an unchanged chart costs no build.
        """
        if not self.has_data:
            return Text(self.EMPTY_TEXT, style="dim")
        key = (self.replots, self.size, self.app.theme, self.theme)
        if self._rendered is None or self._rendered[0] != key:
            self.builds += 1
            self._rendered = (key, super().render())
        return self._rendered[1]


class LossPlot(ChartBase):
    """Training loss (raw and EMA-smoothed) and validation loss on one step axis."""

    SERIES = ("train", "smoothed", "evals")
    train: deque[tuple[int, float]]
    smoothed: deque[tuple[int, float]]
    evals: deque[tuple[int, float]]

    def __init__(self, smoothing: float = 0.9, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.smoothing = smoothing
        self.best: tuple[int, float] | None = None
        self._ema = Ema(smoothing)

    def forget(self) -> None:
        """The best point and the smoothing go with the points."""
        self.best = None
        self._ema = Ema(self.smoothing)

    def add_steps(self, events: Iterable[StepLogged]) -> None:
        """Add logged steps; repeated or non-finite losses are skipped."""
        for event in events:
            if event.step <= self._last_step or not math.isfinite(event.loss):
                continue
            self._last_step = event.step
            self.train.append((event.step, event.loss))
            self.smoothed.append((event.step, self._ema.add(event.loss)))
            self._dirty = True

    def add_eval(self, step: int, loss: float) -> None:
        """Add a validation loss; the lowest is marked as best."""
        if not math.isfinite(loss):
            return
        self.evals.append((step, loss))
        if self.best is None or loss < self.best[1]:
            self.best = (step, loss)
        self._dirty = True

    def legend(self) -> str:
        """Rich markup naming the series in their colours (the plot's own legend hides data)."""
        best = f" [green]◆ {self.best[1]:.4f}@{self.best[0]}[/]" if self.best else ""
        return f"[bright_black]━ train[/] [cyan]━ ema[/] [yellow]● val[/]{best}"

    def plot_data(self) -> dict:
        """Copy the series for the build and show the legend."""
        self.border_title = "Loss"
        self.border_subtitle = self.legend()
        return {
            "train": list(self.train),
            "smoothed": list(self.smoothed),
            "evals": list(self.evals),
            "best": self.best,
            "target": self.target_points(),
        }

    def draw(self, plt: Plot, data: dict) -> None:
        """Plot the three series and the best point."""
        target = data["target"]
        if data["train"]:
            xs, ys = downsample(data["train"], target)
            plt.plot(xs, ys, color="gray", marker="braille")
            sx, sy = downsample(data["smoothed"], target)
            plt.plot(sx, sy, color="cyan", marker="braille")
        if data["evals"]:
            ex, ey = downsample(data["evals"], target)
            plt.plot(ex, ey, color="orange", marker="dot")
        if data["best"] is not None:
            plt.scatter([data["best"][0]], [data["best"][1]], color="green", marker="◆")
        steps = [p[0] for p in data["train"]] + [p[0] for p in data["evals"]]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
