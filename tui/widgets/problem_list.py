"""The Problems pane: every reading error, warning, check finding and training problem of a
dataset (rows training drops at the max length in force), by line.

Enter on a problem posts :class:`ProblemList.ProblemChosen` with its row, for the screen to
put the table's cursor on it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from core.data import Problem, position_unit
from tui.widgets.row_table import RowStore

PROBLEM_LIST_LIMIT = 1000
"""Problems listed in the Problems pane; the problems filter shows every row."""


def problem_text(problem: Problem, named: bool = False) -> Text:
    """One problem as a list entry: where (``named``: with the file, in a mix of sources), a
    mark for its severity, the field, the message."""
    error = problem.severity == "error"
    where = (f"{position_unit(problem.source):<4} {problem.line:>6} "
             if problem.line is not None else "whole file  ")
    if named:
        where = f"{Path(problem.source).name} {where}"
    text = Text(where, style="dim")
    text.append("✗ " if error else "! ", style="bold red" if error else "bold yellow")
    if problem.field:
        text.append(f"{problem.field}: ", style="bold")
    text.append(problem.message)
    return text


class ProblemList(OptionList):
    """The problems of the open dataset (the first :data:`PROBLEM_LIST_LIMIT`), in line order."""

    @dataclass
    class ProblemChosen(Message):
        """Enter on a problem; ``row`` is its row in the store, ``None`` for one about the
        whole file."""

        row: int | None

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._problem_rows: list[int | None] = []
        """The store row of each listed problem, by option index."""

    def show(self, store: RowStore | None) -> int:
        """List the problems of ``store`` (those of the whole file first, then row by row:
        reading errors and warnings, check findings, training problems); returns how many it
        has in all."""
        self.clear_options()
        self._problem_rows = []
        if store is None:
            return 0
        items: list[Option] = []
        named = bool(store.sources)
        for problem in store.file_problems:
            items.append(Option(problem_text(problem, named)))
            self._problem_rows.append(None)
        for row in heapq.nsmallest(PROBLEM_LIST_LIMIT, store.problem_rows):
            for problem in store.row_problems(row):
                items.append(Option(problem_text(problem, named)))
                self._problem_rows.append(row if problem.line is not None else None)
        del items[PROBLEM_LIST_LIMIT:], self._problem_rows[PROBLEM_LIST_LIMIT:]
        self.add_options(items)
        count = store.problem_count()
        if count > len(items):
            self.add_option(Option(
                f"… {count - len(items):,} more: press p to filter the rows with problems.",
                disabled=True))
        return count

    @on(OptionList.OptionSelected)
    def problem_selected(self, event: OptionList.OptionSelected) -> None:
        """Pass the chosen problem's row on."""
        event.stop()
        if event.option_index < len(self._problem_rows):
            self.post_message(self.ProblemChosen(self._problem_rows[event.option_index]))
