"""The live figures beside the config form: trainable parameters, the memory estimate and
the time estimate (with what a user should know before starting).

The screen owns the estimate in reactives and binds them here (``data_bind``); this widget
only renders them.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from core.machine import format_bytes
from core.memory import MemoryEstimate, format_count
from core.timing import TimeEstimate

VERDICT_STYLES = {"fits": "bold green", "tight": "bold yellow", "will not fit": "bold red"}
"""How each verdict is shown."""
PART_LABELS = {
    "embeddings and head": "embeddings + head",
    "autocast weight copies": "16-bit copies",
    "gradients reuse freed": "saved by reuse",
}
"""Short labels of the estimate's parts, to fit the panel at 80 columns."""
REUSE_NOTE = "Saved: gradients take the memory that freed activations leave."
"""Says what the one negative part is, under the figures, when it is there."""

class MemoryPanel(Static):
    """Trainable share, memory parts against the available memory, verdict and the fix."""

    DEFAULT_CSS = """
    MemoryPanel {
        height: auto;
        padding: 0 1;
    }
    """

    estimate: reactive[MemoryEstimate | None] = reactive(None, layout=True)
    """The latest estimate, or ``None`` before the first one."""
    status: reactive[str] = reactive("Estimating…", layout=True)
    """What the estimate is doing or why there is none (``Estimating…``, an error)."""
    dropped: reactive[str] = reactive("", layout=True)
    """The rows training will drop (``220 of 640 rows teach nothing at max_length 128``)."""
    time_estimate: reactive[TimeEstimate | None] = reactive(None, layout=True)
    """The latest time estimate, or ``None`` before the first one (or without one)."""
    time_status: reactive[str] = reactive("", layout=True)
    """What the time estimate is doing (measuring step 2/4…) or why there is none."""

    @staticmethod
    def _grid() -> Table:
        """Two columns: a label that gives way, a right-aligned figure that never wraps."""
        grid = Table.grid(padding=(0, 0, 0, 1), pad_edge=False, expand=True)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column(justify="right", no_wrap=True)
        return grid

    def _time_lines(self) -> list[Table | Text]:
        """The time estimate: total, its parts, where it came from, and its warnings."""
        t = self.time_estimate
        out: list[Table | Text] = []
        if t is not None:
            grid = self._grid()
            for i, (label, figure) in enumerate(t.lines()[:-1]):  # the source goes below, wrapped
                grid.add_row(Text(label, style="bold") if i == 0 else label,
                             Text(figure, style="bold") if i == 0 else figure)
            out.append(grid)
            modelled = t.throughput.source == "FLOPs model"
            out.append(Text(f"{t.throughput.source}{', rough' if modelled else ''}, "
                            f"±{t.throughput.spread:.0%}" + ("; ctrl+e measures" if modelled else ""),
                            style="dim"))
            for warning in t.warnings:
                line = Text("Warn: ", style="bold yellow")
                line.append(warning)
                out.append(line)
        if self.time_status:
            out.append(Text(self.time_status, style="dim italic"))
        return out

    def render(self) -> Group | Text:
        """The figures, or the status while there is no estimate."""
        e = self.estimate
        if e is None:
            return Group(Text(self.status, style="italic"), *self._time_lines())
        numbers = self._grid()
        numbers.add_row(Text("Trainable", style="bold"), format_count(e.params.trainable))
        numbers.add_row(f" of {format_count(e.params.total)}", Text(f"{e.params.share:.2%}", style="bold"))
        numbers.add_row("Micro-batch", f"{e.micro_batch} x {e.tokens_per_row}")
        numbers.add_row("Effective batch", str(e.effective_batch))
        if e.num_processes > 1:
            numbers.add_row(" processes", str(e.num_processes))
        where = "per GPU" if e.device == "cuda" else "per process" if e.num_processes > 1 else "CPU"
        numbers.add_row(Text(f"Memory ({where})", style="bold"),
                        Text(format_bytes(e.total_bytes, 2), style="bold"))
        numbers.add_row(" available", format_bytes(e.available.bytes, 2))
        style = VERDICT_STYLES.get(e.verdict, "bold")
        share = f"{e.share:.0%}" if e.share < 10 else ">999%"
        width = max(8, self.content_size.width - len(share) - 1)
        filled = min(width, round(width * min(e.share, 1.0)))
        bar = Text("█" * filled, style=style.replace("bold ", ""))
        bar.append("░" * (width - filled) + " ", style="dim")
        bar.append(share, style=style)
        # The verdict and the fixes first: at 80x24 the breakdown is what scrolls out of view.
        lines: list[Table | Text] = [numbers, bar,
                                     Text(f"{e.verdict.upper()} ({e.available.name})", style=style)]
        if e.available.note:
            lines.append(Text(e.available.note, style="italic"))
        lines += self._time_lines()
        for s in e.suggestions:
            fix = Text("Fix: ", style="bold yellow")
            fix.append(f"{s.text} -> {format_bytes(s.total_bytes, 2)}, {s.verdict}")
            lines.append(fix)
        if self.dropped:  # above the parts, which are what scrolls away at 80x24
            lines.append(Text(f"Dropped: {self.dropped}", style="bold red"))
        parts = self._grid()
        parts.add_row(Text("Memory parts", style="bold"), "")
        for part in e.parts:
            amount = format_bytes(abs(part.bytes), 2)
            parts.add_row(f" {PART_LABELS.get(part.name, part.name)}",
                          f"−{amount}" if part.bytes < 0 else amount)
        parts.add_row(Text(" total", style="bold"),
                      Text(format_bytes(e.total_bytes, 2), style="bold"))
        lines.append(parts)
        if any(part.bytes < 0 for part in e.parts):
            lines.append(Text(REUSE_NOTE, style="dim"))
        if self.status:
            lines.append(Text(self.status, style="dim italic"))
        return Group(*lines)
