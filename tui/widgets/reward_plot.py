"""The preference chart of a DPO or ORPO run: the reward margin (chosen minus rejected) per
logged step and on the held-out pairs, and the preference accuracy on its own axis."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from textual_plotext.plot import Plot

from core.events import StepLogged
from tui.widgets.loss_plot import ChartBase, downsample, step_ticks


class RewardPlot(ChartBase):
    """Reward margin (left axis, training line and validation points) and preference
    accuracy (right axis, 0-1) on one step axis."""

    EMPTY_TEXT = "Reward margin and preference accuracy appear in DPO and ORPO runs."

    SERIES = ("margin", "accuracy", "eval_margin")
    margin: deque[tuple[int, float]]
    accuracy: deque[tuple[int, float]]
    eval_margin: deque[tuple[int, float]]

    def add_steps(self, events: Iterable[StepLogged]) -> None:
        """Add logged steps that carry rewards; non-finite values are left out."""
        for event in events:
            if event.step <= self._last_step or event.reward_margin is None:
                continue
            self._last_step = event.step
            if math.isfinite(event.reward_margin):
                self.margin.append((event.step, event.reward_margin))
            if event.reward_accuracy is not None and math.isfinite(event.reward_accuracy):
                self.accuracy.append((event.step, event.reward_accuracy))
            self._dirty = True

    def add_eval(self, step: int, margin: float | None) -> None:
        """Add the held-out margin of a validation (none for SFT)."""
        if margin is not None and math.isfinite(margin):
            self.eval_margin.append((step, margin))
            self._dirty = True

    def plot_data(self) -> dict:
        """Copy the series for the build and show the legend with the latest values."""
        latest = f" {self.margin[-1][1]:.3f}" if self.margin else ""
        val = f" {self.eval_margin[-1][1]:.3f}" if self.eval_margin else ""
        acc = f" {self.accuracy[-1][1]:.0%}" if self.accuracy else ""
        self.border_title = "Reward margin · preference accuracy"
        self.border_subtitle = (f"[cyan]━ margin{latest}[/] [green]● val{val}[/] "
                                f"[yellow]━ accuracy{acc} →[/]")
        return {"margin": list(self.margin), "accuracy": list(self.accuracy),
                "eval": list(self.eval_margin), "target": self.target_points()}

    def draw(self, plt: Plot, data: dict) -> None:
        """Margin on the left axis, held-out margin as points, accuracy on the right."""
        target = data["target"]
        if data["margin"]:
            xs, ys = downsample(data["margin"], target)
            plt.plot(xs, ys, color="cyan", marker="braille", yside="left")
        if data["eval"]:
            plt.scatter([p[0] for p in data["eval"]], [p[1] for p in data["eval"]],
                        color="green", marker="●", yside="left")
        if data["accuracy"]:
            xs, ys = downsample(data["accuracy"], target)
            plt.plot(xs, ys, color="orange", marker="braille", yside="right")
            plt.ylim(0, 1, yside="right")
        steps = [p[0] for p in data["margin"]] + [p[0] for p in data["eval"]]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
