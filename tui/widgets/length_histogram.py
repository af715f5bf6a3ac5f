"""Histogram of token lengths per row, with the ``max_length`` budget marked.

Rows are binned by :func:`core.data.length_histogram` (numpy, any number of rows) into two
bins per chart column, and drawn as a filled outline in half blocks, so the chart plots a
hundred points whatever the file's size. Replots are throttled to twice a second while counts
stream in (``clear_data``, plot, ``refresh``; textual-plotext#11).
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from core.data import length_histogram

REPLOT_SECONDS = 0.5
"""Shortest time between two replots."""


def nice_ticks(high: float, count: int = 5) -> list[int]:
    """Whole-number ticks from 0 to ``high`` at a 1-2-5 spacing, about ``count`` of them."""
    if high <= 0:
        return [0]
    raw = high / max(count - 1, 1)
    magnitude = 10 ** max(math.floor(math.log10(raw)), 0)
    spacing = min((m * magnitude for m in (1, 2, 5, 10)),
                  key=lambda step: abs(high / step - (count - 1)))
    return list(range(0, int(high) + 1, int(spacing)))


class LengthHistogram(PlotextPlot):
    """Rows per token-length bin; a vertical line at ``max_length``."""

    EMPTY_TEXT = "Token lengths appear once tokens are counted."

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._lengths: Any = None
        self._max_length = 512
        self._dirty = False

    def on_mount(self) -> None:
        """Start the replot timer (PlotextPlot's own on_mount runs too)."""
        self.set_interval(REPLOT_SECONDS, self._replot_if_dirty)

    @property
    def has_data(self) -> bool:
        """Whether any length has been counted."""
        return self._lengths is not None and len(self._lengths) > 0

    @property
    def replot_pending(self) -> bool:
        """Whether lengths wait to be plotted (at the next timer tick once on screen)."""
        return self._dirty and self.has_data

    def set_lengths(self, lengths: Any, max_length: int) -> None:
        """Plot these token lengths (1-D array of counted rows, or ``None``) vs ``max_length``."""
        self._lengths = lengths
        self._max_length = max_length
        self._dirty = True
        if not self.has_data:
            self.refresh()

    def replot_now(self) -> None:
        """Replot at once if on screen (its tab was just shown); the timer does it otherwise."""
        self._dirty = True
        self._replot_if_dirty()

    def _replot_if_dirty(self) -> None:
        if not (self._dirty and self.has_data and self.is_on_screen):
            return
        self._dirty = False
        plt = self.plt
        plt.clear_data()
        high = max(int(self._lengths.max()), self._max_length) * 1.05
        columns = max(self.size.width - 10, 10)
        centres, counts, _ = length_histogram(self._lengths, 2 * columns, high)
        shown = [i for i, c in enumerate(counts) if c]  # no baseline outside the data
        first, last = shown[0], shown[-1] + 1
        plt.plot(centres[first:last], counts[first:last], fillx=True, color="cyan", marker="hd")
        plt.vline(self._max_length, "red")
        plt.xlim(0, high)
        plt.xticks(nice_ticks(high))
        plt.yticks(nice_ticks(max(counts), 4))
        plt.xlabel(f"tokens per row · max_length {self._max_length:,} in red")
        self.refresh()

    def render(self) -> RenderResult:
        """The chart, or a hint until lengths arrive."""
        if not self.has_data:
            return Text(self.EMPTY_TEXT, style="dim")
        return super().render()
