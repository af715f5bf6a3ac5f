"""The review screen's results view: counts of B against A, the win rate with its interval,
and after reveal the per-item table with the automatic checks.

Enter on a row posts :class:`ReviewResults.ItemChosen`; the screen shows that item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from core.review import OUTCOME_LABELS, WIN_RATE_DEFINITION, ReviewSet

COLUMNS = ("#", "Verdict", "A on", "A exact", "B exact", "A JSON", "B JSON", "A len", "B len",
           "Checks", "Prompt")
"""The per-item table's columns (also its column keys)."""


class ReviewResults(Vertical):
    """The summary grid, the per-item table (after reveal) and a line of hints."""

    @dataclass
    class ItemChosen(Message):
        """Enter on a row of the per-item table: show item ``index``."""

        index: int

    def compose(self) -> ComposeResult:
        """Summary, table, hints."""
        yield Static("", id="review-summary")
        yield DataTable(id="review-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="review-results-hint")

    def on_mount(self) -> None:
        """Name the table's columns."""
        table = self.query_one("#review-table", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label)

    def focus_table(self) -> None:
        """Put the keyboard on the per-item table."""
        self.query_one("#review-table", DataTable).focus()

    @on(DataTable.RowSelected, "#review-table")
    def item_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a row asks the screen to show that item."""
        event.stop()
        self.post_message(self.ItemChosen(int(str(event.row_key.value))))

    def show(self, review: ReviewSet) -> None:
        """Render the set's statistics; after reveal also the models and the per-item table."""
        stats = review.stats()
        meta = review.meta
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if review.revealed:
            grid.add_row("A", str(meta["a"].get("label", "")))
            grid.add_row("B", str(meta["b"].get("label", "")))
        else:
            grid.add_row("Sides", "hidden: v reveals which model wrote each side (asks first)")
        grid.add_row("Judged", f"{stats.judged} of {stats.total}"
                     + (f" ({stats.generated} generated)" if stats.generated < stats.total else ""))
        grid.add_row("Counts", stats.counts_text())
        grid.add_row("Win rate", Text(stats.win_rate_text(), style="bold"))
        grid.add_row("", Text(WIN_RATE_DEFINITION, style="dim"))
        if review.revealed and stats.checks_a:
            a, b = stats.checks_a, stats.checks_b
            grid.add_row("Checks", f"exact match A {_pct(a['exact_match'])} · B {_pct(b['exact_match'])}"
                         f"; valid JSON A {_pct(a['valid_json'])} · B {_pct(b['valid_json'])}")
            grid.add_row("", Text(f"judgement and exact match disagree on {stats.disagreements} "
                                  "item(s) (≠)", style="dim"))
        if stats.after_reveal:
            grid.add_row("", Text(f"{stats.after_reveal} verdict(s) made after reveal", style="yellow"))
        self.query_one("#review-summary", Static).update(grid)
        table = self.query_one("#review-table", DataTable)
        table.display = review.revealed
        hint = ("m exports Markdown, c exports CSV (into the set's folder) · Enter shows an item"
                if review.revealed else "The per-item table appears after reveal (v).")
        hint += " · d trains B by DPO on the votes"
        self.query_one("#review-results-hint", Static).update(Text(hint, style="dim"))
        if review.revealed:
            self._fill_table(table, review)

    @staticmethod
    def _fill_table(table: DataTable, review: ReviewSet) -> None:
        """One row per generated item: verdict, sides, checks (≠ marks a disagreement)."""
        table.clear()
        for row in review.rows():
            item = review.items[row.index]
            ca, cb = row.checks_a, row.checks_b
            verdict = Text(OUTCOME_LABELS.get(row.outcome or "", "—"), justify="left",
                           style="bold red" if row.disagrees else "")
            checks = ("≠ " if row.disagrees else "") + (row.checks_prefer or "").upper()
            table.add_row(
                str(row.index + 1), verdict, row.a_side,
                _flag(ca.exact if ca else None), _flag(cb.exact if cb else None),
                _flag(ca.valid_json if ca else None), _flag(cb.valid_json if cb else None),
                str(len(item.output_a.strip())), str(len(item.output_b.strip())),
                Text(checks, justify="left", style="bold red" if row.disagrees else ""),
                _short(item.prompt_text), key=str(row.index))


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _flag(value: bool | None) -> str:
    return "" if value is None else ("✓" if value else "✗")


def _short(text: str, limit: int = 40) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
