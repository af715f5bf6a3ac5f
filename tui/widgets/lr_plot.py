"""The optimiser chart: learning rate (left axis) and gradient norm (right axis) per step."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from textual_plotext.plot import Plot

from core.events import StepLogged
from tui.widgets.loss_plot import ChartBase, downsample, step_ticks


class LrGradPlot(ChartBase):
    """Learning-rate schedule and gradient norm on one step axis, each with its own y axis."""

    SERIES = ("learning_rate", "grad_norm")
    learning_rate: deque[tuple[int, float]]
    grad_norm: deque[tuple[int, float]]

    def add_steps(self, events: Iterable[StepLogged]) -> None:
        """Add logged steps; non-finite values are left out of the chart."""
        for event in events:
            if event.step <= self._last_step:
                continue
            self._last_step = event.step
            if math.isfinite(event.learning_rate):
                self.learning_rate.append((event.step, event.learning_rate))
            if math.isfinite(event.grad_norm):
                self.grad_norm.append((event.step, event.grad_norm))
            self._dirty = True

    def plot_data(self) -> dict:
        """Copy the series for the build and show the legend with the latest values."""
        latest_lr = f" {self.learning_rate[-1][1]:.2e}" if self.learning_rate else ""
        latest_gn = f" {self.grad_norm[-1][1]:.3f}" if self.grad_norm else ""
        self.border_title = "Learning rate · grad norm"
        self.border_subtitle = f"[magenta]━ lr{latest_lr}[/] [yellow]━ grad norm{latest_gn} →[/]"
        return {
            "lr": list(self.learning_rate),
            "grad_norm": list(self.grad_norm),
            "target": self.target_points(),
        }

    def draw(self, plt: Plot, data: dict) -> None:
        """Plot the learning rate on the left axis and the gradient norm on the right."""
        target = data["target"]
        if data["lr"]:
            xs, ys = downsample(data["lr"], target)
            plt.plot(xs, ys, color="magenta", marker="braille", yside="left")
            low, high = min(ys), max(ys)
            ticks = [low + (high - low) * i / 4 for i in range(5)] if high > low else [low]
            plt.yticks(ticks, [f"{t:.1e}" for t in ticks], yside="left")  # 2.0e-04, not 0.000200
        if data["grad_norm"]:
            xs, ys = downsample(data["grad_norm"], target)
            plt.plot(xs, ys, color="orange", marker="braille", yside="right")
        steps = [p[0] for p in data["lr"]] + [p[0] for p in data["grad_norm"]]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
