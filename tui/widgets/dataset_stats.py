"""The statistics pane: rows kept and dropped, format, template and system prompt in force,
token lengths, what training keeps at the max length in force (rows dropped, EOS trained),
content checks, split, and each source of a mix with its share and checks.

The screen gathers the figures in a :class:`StatsSummary` as its workers finish and calls
:meth:`StatsPanel.show`; the token-length histogram is its own chart widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.data import DatasetStats, SourceReport, TemplateInfo, TokenStats, TrainingOutcome
from tui.widgets.length_histogram import LengthHistogram


@dataclass
class StatsSummary:
    """What the statistics pane shows; fields stay empty until their worker finished."""

    ref: str = ""
    """The dataset as the user named it (a path, or ``sample:<name>``)."""
    source: str = ""
    """The file it resolved to."""
    kind: str = ""
    format: str = ""
    format_reason: str = ""
    rows: int = 0
    """Rows read, kept and dropped."""
    dropped: int = 0
    drop_reasons: list[tuple[str, int]] = field(default_factory=list)
    """Why rows were dropped: reason and rows, most frequent first."""
    reading: bool = False
    """Rows are still being read."""
    read_error: str = ""
    """Why reading stopped early, if it did."""
    model: str = ""
    lengths: TokenStats | None = None
    counted: int = 0
    """Rows whose tokens have been counted."""
    counting: bool = False
    training: TrainingOutcome | None = None
    """What training does with every kept row at the max length in force (rows dropped,
    cut, EOS trained); ``None`` until every row is rendered."""
    training_running: bool = False
    """The rows are being rendered (for the max length in force)."""
    checks: DatasetStats | None = None
    checked_rows: int = 0
    """Rows the content checks covered (all kept rows, or the first ``CHECK_ROWS``)."""
    kept: int = 0
    """Rows kept (read minus dropped) when the checks ran."""
    train_rows: int = 0
    """Rows in the training split (all kept rows split by ``split_examples``)."""
    val_rows: int = 0
    validation_fraction: float = 0.0
    seed: int = 0
    status: str = ""
    """What is running now, e.g. ``Counting tokens…``."""
    template: TemplateInfo | None = None
    """The chat template, system prompt and tool rendering rows get."""
    chunking: bool = False
    """``data.text_chunking``: text rows over max_length become chunks, not cut rows."""
    sources: list[SourceReport] = field(default_factory=list)
    """Each source of a mix (empty for a single source)."""
    source_findings: list[dict[str, int]] = field(default_factory=list)
    """Per source of a mix, the check findings of its rows by kind."""


def _grid() -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True, min_width=10)
    grid.add_column(ratio=1)
    return grid


def rows(count: int) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count:,} row" + ("" if count == 1 else "s")


def _count(count: int, text: str) -> Text:
    """``text`` about ``count`` things, bold when there is any."""
    return Text(text, style="bold" if count else "")


class StatsPanel(VerticalScroll, can_focus=True):
    """Figures about the whole dataset, above and below the token-length histogram."""

    DEFAULT_CSS = """
    StatsPanel {
        padding: 0 1;
        & > Static { width: 1fr; height: auto; }
        & > LengthHistogram { height: 12; min-height: 8; }
    }
    """

    def compose(self) -> ComposeResult:
        """File and token figures, histogram, content checks."""
        yield Static(id="stats-top")
        yield LengthHistogram(id="length-histogram")
        yield Static(id="stats-bottom")

    def show(self, s: StatsSummary) -> None:
        """Show the summary ``s``."""
        self.query_one("#stats-top", Static).update(self._top(s))
        self.query_one("#stats-bottom", Static).update(self._bottom(s))

    def _top(self, s: StatsSummary) -> Group:
        grid = _grid()
        name = s.ref if s.ref in (s.source, "") else f"{s.ref} = {Path(s.source).name}"
        grid.add_row("File", f"{name or s.source} ({s.kind})")
        grid.add_row("Format", f"{s.format_reason}")
        reading = "  (reading…)" if s.reading else ""
        grid.add_row("Rows", f"{rows(s.rows - s.dropped)} loaded · {s.dropped:,} dropped"
                             f"{reading}")
        for reason, count in s.drop_reasons[:6]:
            grid.add_row("", Text(f"  {count:,} × {reason}", style="red"))
        if len(s.drop_reasons) > 6:
            grid.add_row("", f"  … {len(s.drop_reasons) - 6} more reasons (Problems tab)")
        if s.read_error:
            grid.add_row("Stopped", Text(s.read_error, style="red"))
        n = s.lengths
        counting = f" ({s.counted:,} of {s.rows - s.dropped:,} rows so far)" if s.counting else ""
        if n is None or not n.rows:
            grid.add_row("Tokens", f"not counted yet{counting}" if s.model else "no model")
        else:
            grid.add_row("Tokens", f"min {n.min:,} · p50 {n.p50:,} · mean {n.mean:,.0f} · "
                                   f"p95 {n.p95:,} · max {n.max:,}{counting}")
            lost = (f"text rows become chunks of {n.max_length:,} (data.text_chunking), chat "
                    "rows are cut" if s.chunking else f"{n.tokens_lost:,} tokens lost")
            share = Text(f"{rows(n.truncated)} ({n.truncated_share:.1%}) over max_length "
                         f"{n.max_length:,}; {lost}",
                         style="bold yellow" if n.truncated else "")
            grid.add_row("Truncated", share)
        t = s.training
        if t is not None:
            kept = f"{t.kept:,} of {rows(t.rows)} kept at max_length {t.max_length:,}"
            grid.add_row("Training", Text.assemble(kept, *((
                " · ", Text(f"{t.dropped:,} teach nothing and will be dropped",
                            style="bold red")) if t.dropped else ())))
            eos = t.eos_summary().removeprefix("EOS ")
            grid.add_row("EOS", Text(eos, style="" if t.eos_trained == t.kept else "bold yellow"))
            note = next((p.message for p in t.problems if p.line is None), None)
            if note:
                grid.add_row("Template", Text(note, style="yellow"))
        elif s.training_running:
            grid.add_row("Training", "rendering every row as training will…")
        if s.model:
            grid.add_row("Model", s.model)
        if s.template is not None:
            for label, text in s.template.lines():
                grid.add_row(label.capitalize(), text)
        return Group(grid)

    def _bottom(self, s: StatsSummary) -> Group:
        grid = _grid()
        c = s.checks
        if c is None:
            grid.add_row("Checks", s.status or "waiting for the rows…")
            return Group(grid)
        partial = (f" (first {s.checked_rows:,} of {s.kept:,} kept rows)"
                   if s.checked_rows < s.kept else "")
        grid.add_row("Duplicates", Text.assemble(
            _count(c.exact_duplicates, f"{c.exact_duplicates:,} exact"), " · ",
            _count(c.near_duplicates, f"{c.near_duplicates:,} near"), partial))
        grid.add_row("Refusals", _count(c.refusals,
                                        f"{rows(c.refusals)} with refusal boilerplate"))
        grid.add_row("Short", _count(c.short_answers,
                                     f"{rows(c.short_answers)} with an empty or one-word answer"))
        held_out = f"{s.validation_fraction:.0%} held out, seed {s.seed}"
        grid.add_row("Split", f"{s.train_rows:,} train · {s.val_rows:,} validation ({held_out})")
        leak = (Text("none: no validation row repeats a training row", style="green")
                if not c.leaked else
                Text(f"{rows(c.leaked)} in validation repeat training rows", style="bold red"))
        grid.add_row("Leakage", leak)
        grid.add_row("Placeholders", _count(c.placeholders, f"{rows(c.placeholders)} with an "
                                                            "unfilled {{placeholder}}"))
        self._sources(grid, s)
        return Group(grid)

    def _sources(self, grid: Table, s: StatsSummary) -> None:
        """Each source of a mix: its rows, share of the mix and check findings."""
        used = sum(r.used for r in s.sources)
        for i, report in enumerate(s.sources):
            found = s.source_findings[i] if i < len(s.source_findings) else {}
            checks = ", ".join(f"{n:,} {kind}" for kind, n in sorted(found.items())) or (
                "no findings" if s.checks is not None else "")
            grid.add_row(f"Source {i + 1}", Text.assemble(
                (report.label, "bold"), f"  {report.describe(used)}",
                f"; checks: {checks}" if checks else ""))
