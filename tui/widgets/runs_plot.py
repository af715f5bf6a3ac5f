"""The runs screen's comparison chart: several runs' training loss on one step axis."""

from __future__ import annotations

from textual_plotext.plot import Plot

from tui.widgets.loss_plot import ChartBase, Ema, downsample, step_ticks

COLORS = (("cyan", "cyan"), ("orange", "dark_orange"), ("green", "green"), ("magenta", "magenta"),
          ("blue", "blue"), ("red", "red"), ("yellow", "yellow"), ("white", "white"))
"""(plotext colour, Rich colour) of each run in turn; the legend names them in the same colour."""


class RunsLossPlot(ChartBase):
    """The EMA-smoothed training loss of each run, one colour per run, named in the legend."""

    EMPTY_TEXT = "None of these runs has logged a training step yet."

    def __init__(self, curves: dict[str, list[tuple[int, float]]], smoothing: float = 0.9, *,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.curves = {name: points for name, points in curves.items() if points}
        """Each run's (step, loss) points."""
        self.smoothing = smoothing

    def on_mount(self) -> None:
        """Draw once mounted (the data is all there)."""
        super().on_mount()
        self.border_title = f"Training loss of {len(self.curves)} run(s), smoothed · Esc closes"
        self.mark_dirty()

    @property
    def has_data(self) -> bool:
        """Whether any run has a loss to draw."""
        return bool(self.curves)

    def legend(self) -> str:
        """Rich markup naming each run in its colour."""
        names = [f"[{COLORS[i % len(COLORS)][1]}]━ {name}[/]" for i, name in enumerate(self.curves)]
        return " ".join(names)

    def plot_data(self) -> dict:
        """Smooth each curve and show the legend."""
        self.border_subtitle = self.legend()
        smoothed = {}
        for name, points in self.curves.items():
            ema = Ema(self.smoothing)
            smoothed[name] = [(step, ema.add(loss)) for step, loss in points]
        return {"curves": smoothed, "target": self.target_points()}

    def draw(self, plt: Plot, data: dict) -> None:
        """One line per run."""
        steps: list[int] = []
        for i, points in enumerate(data["curves"].values()):
            xs, ys = downsample(points, data["target"])
            plt.plot(xs, ys, color=COLORS[i % len(COLORS)][0], marker="braille")
            steps += [points[0][0], points[-1][0]]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
