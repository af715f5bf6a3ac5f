"""The forgetting chart: validation loss (the task, left axis) beside general drift (what the
fine-tune costs general ability, right axis), per evaluation, with the alert threshold.

Drift is the model's loss on the base model's own answers to general prompts, above the base's
(``core.forgetting``); the untouched base is 0, so the drift line starts there at step 0.
"""

from __future__ import annotations

import math
from collections import deque

from textual_plotext.plot import Plot

from core.events import EvalLogged
from tui.widgets.loss_plot import ChartBase, downsample, step_ticks


class DriftPlot(ChartBase):
    """Validation loss and general drift on one step axis, each with its own y axis."""

    EMPTY_TEXT = "Waiting for the first evaluation (general drift is measured with validation)…"

    SERIES = ("evals", "drifts")
    evals: deque[tuple[int, float]]
    drifts: deque[tuple[int, float]]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.threshold: float | None = None
        """The run's ``eval.drift_threshold`` (drawn as a line); ``None`` until known."""

    def forget(self) -> None:
        """The threshold goes with the points (the next run sets its own)."""
        self.threshold = None

    def set_threshold(self, threshold: float | None) -> None:
        """The drift alert's threshold, from the run's start."""
        self.threshold = threshold
        self._dirty = True

    def add_eval(self, event: EvalLogged) -> None:
        """Add one evaluation: its validation loss and, when measured, its general drift."""
        if math.isfinite(event.eval_loss):
            self.evals.append((event.step, event.eval_loss))
        drift = event.general_drift
        if drift is not None and math.isfinite(drift):
            if not self.drifts:
                self.drifts.append((0, 0.0))  # the base model, by definition
            self.drifts.append((event.step, drift))
        self._dirty = True

    def legend(self) -> str:
        """Rich markup naming the series with their latest values."""
        val = f" {self.evals[-1][1]:.4f}" if self.evals else ""
        if not self.drifts:
            drift = " not measured" if self.evals else ""
        else:
            drift = f" {self.drifts[-1][1]:+.3f}"
        limit = f" [red]┄ {self.threshold:g}[/]" if self.threshold is not None and self.drifts else ""
        return f"[yellow]● val{val}[/] [magenta]━ drift{drift} →[/]{limit}"

    def plot_data(self) -> dict:
        """Copy the series for the build and show the legend."""
        self.border_title = "Task vs general (forgetting)"
        self.border_subtitle = self.legend()
        return {"evals": list(self.evals), "drifts": list(self.drifts),
                "threshold": self.threshold, "target": self.target_points()}

    def draw(self, plt: Plot, data: dict) -> None:
        """Validation loss on the left axis; drift and its threshold on the right."""
        target = data["target"]
        if data["evals"]:
            xs, ys = downsample(data["evals"], target)
            plt.plot(xs, ys, color="orange", marker="dot", yside="left")
        steps = [p[0] for p in data["evals"]] + [p[0] for p in data["drifts"]]
        if data["drifts"]:
            xs, ys = downsample(data["drifts"], target)
            if data["threshold"] is not None:
                # a two-point line, not horizontal_line: that one stretches the left axis
                plt.plot([min(steps), max(steps)], [data["threshold"]] * 2, color="red",
                         marker="┄", yside="right")
            plt.plot(xs, ys, color="magenta", marker="braille", yside="right")
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
