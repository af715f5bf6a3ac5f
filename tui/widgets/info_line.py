"""The dataset screen's info line: format and row counts, what is filtered, and the search.

The line names the open dataset's format, its kept and dropped rows and, while the rows
are filtered or searched, how many are shown. The search input shares the line: it opens
with ``/``, Enter posts :class:`InfoLine.SearchSubmitted`, Esc puts the current search back.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

from tui.widgets.row_table import RowStore

FILTERS = {"problems": "problems", "long": "over max length", "duplicates": "duplicates"}
"""Filter modes and how the info line names them."""


def info_text(store: RowStore | None, ref: str, filter_mode: str, search: str,
              shown: int) -> Text:
    """The line for ``store`` (or the dataset ``ref`` not open yet), ``shown`` rows shown."""
    info = Text()
    if store is None:
        info.append(ref or "No dataset", style="bold")
        return info
    info.append(store.format, style="bold")
    info.append(f" · {len(store) - store.dropped:,} rows")
    if store.dropped:
        info.append(f" · {store.dropped:,} dropped", style="red")
    if filter_mode != "all":
        info.append(f" │ only {FILTERS[filter_mode]}: {shown:,} rows", style="bold yellow")
    if search:
        info.append(f" │ search {search!r}: {shown:,} rows", style="bold yellow")
    return info


class InfoLine(Horizontal):
    """The summary of the rows shown, and the search input beside it while searching."""

    _shown: Text | None = None
    """The summary on screen (an equal one is not drawn again)."""

    @dataclass
    class SearchSubmitted(Message):
        """Enter in the search input: show the rows containing ``search`` (empty: all)."""

        search: str

    def compose(self) -> ComposeResult:
        """The summary, then the (hidden) search input."""
        yield Static(id="dataset-summary")
        yield Input(id="dataset-search", compact=True,
                    placeholder="search rows: Enter to search, Esc to cancel")

    @property
    def search_input(self) -> Input:
        """The search input."""
        return self.query_one("#dataset-search", Input)

    def show(self, info: Text) -> None:
        """Show ``info`` if it changed (no relayout: the line's size is fixed)."""
        if info != self._shown:
            self._shown = info
            self.query_one("#dataset-summary", Static).update(info, layout=False)

    def open_search(self) -> None:
        """Show the search input, focused, its text selected for typing over."""
        self.add_class("-searching")
        self.search_input.focus()
        self.search_input.select_all()

    def show_search(self, search: str) -> None:
        """Show ``search`` in the input, which stays visible while a search is on."""
        self.search_input.value = search
        self.set_class(bool(search), "-searching")

    @on(Input.Submitted, "#dataset-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        """Pass the typed search on."""
        event.stop()
        search = event.value.strip()
        self.set_class(bool(search), "-searching")
        self.post_message(self.SearchSubmitted(search))
