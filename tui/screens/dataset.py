"""The dataset screen, the app's first: open a file, browse its rows, see what the model sees.

A bar (:class:`~tui.widgets.dataset_bar.DatasetBar`) holds the dataset path, the model whose
tokenizer and chat template render the rows, and the max length. Below, an info line with
the search, then the row table (virtual: a million rows scroll like ten) beside three tabbed
panes: the selected row in detail (turns, then the templated text with trained tokens
highlighted), statistics (rows, format, token-length histogram, what training keeps at the
max length in force, content checks, split) and the problems with their lines, including the
rows training will drop. At narrow sizes one of table and panes shows at a time
(``v`` switches).

The screen composes those views and keeps them in step: each view posts its own messages,
and so does the :class:`~tui.widgets.dataset_loader.DatasetLoader`, which reads and measures
the dataset in thread workers (the Row pane renders its row in one of its own). Nothing slow
runs on the UI thread.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from core.data import RenderOptions, position_unit, selection_ref
from tui.widgets.dataset_bar import DatasetBar
from tui.widgets.info_line import InfoLine, info_text
from tui.widgets.dataset_loader import DatasetLoader
from tui.widgets.dataset_stats import StatsPanel
from tui.widgets.length_histogram import LengthHistogram
from tui.widgets.problem_list import ProblemList
from tui.widgets.row_detail import RowDetailPane
from tui.widgets.row_table import RowStore, RowTable
from tui.widgets.status_line import StatusLine
from tui.widgets.token_view import RowDetail

TICK_SECONDS = 0.25
"""Period of the status tick that applies throttled pane updates and shows progress."""
LENGTHS_SECONDS = 1.0
"""Shortest time between two recomputations of the length statistics while counting."""
DETAIL_DELAY = 0.06
"""Quiet time after the cursor moves before the row's detail is drawn and rendered."""
PANES = ("pane-row", "pane-stats", "pane-problems")
"""The tabs, in the order ``v`` visits them."""
PANE_WIDGETS = {"pane-row": "#row-detail", "pane-stats": "#stats", "pane-problems": "#problems"}
"""The widget of each tab that takes the focus."""
PHASE_ORDER = ("read", "tokenizer", "tokens", "training", "checks", "search")
"""Which running task the status line names first."""
class DatasetScreen(Screen):
    """Open a dataset, browse and filter its rows, inspect one row and the whole file."""

    CSS_PATH = "../styles/dataset.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    AUTO_FOCUS = "#rows"  # not the bar's first input: screen keys must work on arrival

    BINDINGS = [
        Binding("slash", "search", "Search", tooltip="the rows", id="dataset.search"),
        Binding("p", "filter('problems')", "Problems", tooltip="only (again: all rows)",
                id="dataset.filter-problems"),
        Binding("l", "filter('long')", "Over max length", show=False,
                tooltip="only", id="dataset.filter-long"),
        Binding("d", "filter('duplicates')", "Duplicates", show=False,
                tooltip="only (exact, near, leaked into validation)", id="dataset.filter-duplicates"),
        Binding("a", "show_all", "All rows", show=False,
                tooltip="(no filter, no search)", id="dataset.show-all"),
        Binding("o", "edit('#dataset-path')", "Open", tooltip="another dataset file",
                id="dataset.open"),
        Binding("m", "edit('#dataset-model')", "Model", show=False,
                tooltip="to render and count with (tokenizer, chat template)", id="dataset.model"),
        Binding("t", "edit('#dataset-max-length')", "Max len",
                tooltip="(tokens per row: the config's data.max_length)",
                id="dataset.max-length"),
        Binding("v", "next_pane", "Pane", tooltip="(next of row, statistics, problems)",
                id="dataset.next-pane"),
        Binding("escape", "back", "Back", id="dataset.back"),
    ]
    """In the footer: search, problems filter, open a file, max length, next pane (and back
    from an input or a pane); under ``?`` and in the palette also the other filters (long
    rows, duplicates, all rows) and the model."""

    filter_mode: reactive[str] = reactive("all")
    """Rows shown: ``all``, ``problems``, ``long`` (over max length) or ``duplicates``."""
    search: reactive[str] = reactive("")
    """Text the shown rows contain (case-insensitive); empty for no search."""
    max_length: reactive[int] = reactive(512)
    """Token budget per row: marks long rows and cuts the rendered row."""
    show_table: reactive[bool] = reactive(True)
    """At narrow sizes: the table is shown (else the panes)."""

    def __init__(self, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._detail_timer: Timer | None = None
        self._detail_due = False
        self._summary_dirty = False
        self._lengths_dirty = False
        self._lengths_updated = 0.0
        self._notices_handled = 0
        """The loader's notices this screen has handled (see :attr:`settled`)."""
        self._typed_path: str | None = None
        """A path typed in the bar, made the config's once it opens."""

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Inputs bar, info line, table beside panes, status line (and the loader, unseen)."""
        yield Header()
        yield DatasetBar(id="dataset-bar")
        yield InfoLine(id="dataset-info")
        yield Static(id="dataset-error")
        with Horizontal(id="dataset-main"):
            yield RowTable(id="rows")
            with TabbedContent(id="panes", initial="pane-row"):
                with TabPane("Row", id="pane-row"):
                    yield RowDetailPane(id="row-detail")
                with TabPane("Stats", id="pane-stats"):
                    yield StatsPanel(id="stats")
                with TabPane("Problems", id="pane-problems"):
                    yield ProblemList(id="problems")
        yield StatusLine(id="dataset-status")
        yield Footer()
        yield DatasetLoader()

    def on_mount(self) -> None:
        """Fill the bar from the config, then load the tokenizer and open the dataset."""
        config = self.app.config
        self.query_one(DatasetBar).show(max_length=config.data.max_length)
        self.max_length = config.data.max_length
        self.table.focus()
        self.set_interval(TICK_SECONDS, self._tick)
        self._set_model(config.model.name_or_path)
        self._open_config()

    def _config_ref(self) -> str:
        """What the config reads: its path, or its sources as JSON (see ``selection_ref``)."""
        config = self.app.config
        return selection_ref(config.data, config.optim.seed)

    def _open_config(self) -> None:
        """Open what the config's data section names (one source, or a mix)."""
        data = self.app.config.data
        self.open(self._config_ref(), shown=(f"{len(data.sources)} sources (data.sources)"
                                             if data.sources else data.path))

    def on_screen_resume(self) -> None:
        """Follow changes made on other screens (the config form edits the same config)."""
        config, loader = self.app.config, self.loader
        if (config.model.name_or_path != loader.model_ref
                or RenderOptions.from_config(config.data) != loader.options):
            self._set_model(config.model.name_or_path)
        if config.data.max_length != self.max_length:
            self.query_one(DatasetBar).show(max_length=config.data.max_length)
            self.max_length = config.data.max_length
        if self._config_ref() != loader.ref or config.data.format != loader.data_format:
            self._open_config()
            return
        self._show_detail()  # assistant_only_loss may have changed
        loader.schedule()  # a changed split checks again

    def on_screen_suspend(self) -> None:
        """Text typed in the bar but never entered is dropped: it is not what the app uses."""
        self.query_one(DatasetBar).revert()

    @property
    def loader(self) -> DatasetLoader:
        """Reads and measures the dataset; holds its rows, tokenizer and figures."""
        return self.query_one(DatasetLoader)

    @property
    def store(self) -> RowStore | None:
        """Rows of the open dataset (``None`` before the first opens or after an error)."""
        return self.loader.store

    @property
    def table(self) -> RowTable:
        """The row table."""
        return self.query_one("#rows", RowTable)

    @property
    def busy(self) -> bool:
        """Whether a task is running or due (reading, counting, checks, render, search)."""
        return (self.loader.busy or self._detail_due
                or self.query_one(RowDetailPane).rendering)

    @property
    def settled(self) -> bool:
        """Whether everything is computed and drawn: no task running or due (:attr:`busy`),
        every notice of the loader handled (a task's end reaches the screen after the loader
        is idle), no throttled redraw pending (token lengths; statistics and histogram when
        shown) and the status line back to its idle hint. Tests wait for this, not for time:
        under load a fixed pause says nothing."""
        shown = self._stats_shown()
        return (not self.busy and self._notices_handled == self.loader.notices
                and not self._lengths_dirty and not (shown and self._summary_dirty)
                and not (shown and self.query_one(LengthHistogram).replot_pending)
                and self.query_one(StatusLine).text == self._idle_status())

    # --- the dataset and the model (the loader's messages) ----------------------------------

    def open(self, ref: str, shown: str | None = None) -> None:
        """Open dataset ``ref`` (a path or ``sample:<name>``, or the JSON of the config's
        sources, shown in the bar as ``shown``); the old one is dropped."""
        ref = ref.strip()
        shown = ref if shown is None else shown
        self._typed_path = None
        self.query_one(DatasetBar).show(path=shown)
        self.loader.open(ref)
        table = self.table
        table.empty_text = f"Opening {shown}…"
        table.set_store(None)
        self.query_one(LengthHistogram).set_lengths(None, self.max_length)
        self._show_error("")
        self._show_problems()
        self._refresh_summary(now=True)
        self.refresh_bindings()

    @on(DatasetLoader.Notice)
    def notice_handled(self) -> None:
        """Count a loader notice as handled (its own handler ran first)."""
        self._notices_handled += 1

    @on(DatasetLoader.DatasetOpened)
    def dataset_opened(self, message: DatasetLoader.DatasetOpened) -> None:
        """Set up the table for the new dataset's format; a typed path becomes the config's."""
        if self._typed_path is not None:
            data = self.app.config.data
            data.path, data.sources, self._typed_path = self._typed_path, [], None
        table = self.table
        table.empty_text = "Reading rows…"
        table.set_store(message.store)
        self.refresh_bindings()
        self._refresh_summary(now=True)

    @on(DatasetLoader.RowsRead)
    def rows_read(self, message: DatasetLoader.RowsRead) -> None:
        """Show the new rows."""
        self._update_view()
        if message.first:
            self._show_problems()
        self._refresh_summary()

    @on(DatasetLoader.ReadFinished)
    def read_finished(self, message: DatasetLoader.ReadFinished) -> None:
        """Show every row and problem, or why the dataset could not be opened."""
        if message.failure:
            self.table.empty_text = "No dataset open: fix the path and press o to retry."
            self.table.set_store(None)
            self._show_error(message.failure)
        self.refresh_bindings()
        if self.loader.read_done:
            self._update_view()
            self._show_problems()
        self._refresh_summary(now=True)

    def _show_error(self, text: str) -> None:
        error = self.query_one("#dataset-error", Static)
        error.update(Text(text))
        error.set_class(bool(text), "-shown")

    def _set_model(self, ref: str) -> None:
        ref = ref.strip()
        self.query_one(DatasetBar).show(model=ref)
        self.app.config.model.name_or_path = ref
        self.loader.set_model(ref, RenderOptions.from_config(self.app.config.data))
        if self.store is not None:
            self.table.refresh()
            self.query_one(LengthHistogram).set_lengths(None, self.max_length)
        self._show_detail()
        self._refresh_summary(now=True)

    @on(DatasetLoader.TokenizerLoaded)
    def tokenizer_loaded(self) -> None:
        """Render the selected row with the new tokenizer."""
        self._show_detail()
        self._refresh_summary(now=True)

    @on(DatasetLoader.TokensCounted)
    def tokens_counted(self, message: DatasetLoader.TokensCounted) -> None:
        """The token column, the filter and the lengths follow the new counts."""
        if self.filter_mode == "long":
            self._update_view()
        else:
            self.table.refresh_rows(message.start, message.start + len(message.counts))
        self._lengths_dirty = True
        self._refresh_summary()

    @on(DatasetLoader.CountingFinished)
    def counting_finished(self) -> None:
        """Show the final token lengths."""
        self._update_lengths()
        self._update_view()
        self._refresh_summary(now=True)

    @on(DatasetLoader.TemplateChecked)
    def template_checked(self) -> None:
        """Show which template and system prompt are in force."""
        self._refresh_summary()

    @on(DatasetLoader.TrainingChecked)
    @on(DatasetLoader.ChecksFinished)
    @on(DatasetLoader.TrainingCleared)
    @on(DatasetLoader.FindingsCleared)
    def findings_changed(self, message: DatasetLoader.Notice) -> None:
        """What training drops or what the content checks found is known, or went (the split,
        max length, model, template settings or loss mask changed): show it in the table, the
        problem list, the row and the figures."""
        checked = isinstance(message, (DatasetLoader.TrainingChecked, DatasetLoader.ChecksFinished))
        if not checked or message.found:
            self._update_view()
            self._show_problems()
            self._show_detail()
        self._refresh_summary(now=True)

    @on(DatasetLoader.SearchFinished)
    def search_finished(self) -> None:
        """Show the rows found."""
        self._update_view()

    def _update_lengths(self) -> None:
        """Recompute the token-length figures and the histogram from the counts so far."""
        self._lengths_dirty = False
        self._lengths_updated = time.monotonic()
        if self.store is not None:
            counted = self.loader.measure_lengths(self.max_length)
            self.query_one(LengthHistogram).set_lengths(counted, self.max_length)

    # --- the selected row -------------------------------------------------------------------

    @on(RowTable.RowHighlighted, "#rows")
    def row_highlighted(self) -> None:
        """Show the row once the cursor rests (holding a key only moves the table)."""
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_due = True
        self._detail_timer = self.set_timer(DETAIL_DELAY, self._show_detail)

    @on(RowTable.RowSelected, "#rows")
    def row_selected(self) -> None:
        """Enter on a row: open its detail pane."""
        self.query_one("#panes", TabbedContent).active = "pane-row"
        if self.has_class("-narrow"):
            self.show_table = False
            self.query_one("#row-detail").focus()

    def _show_detail(self) -> None:
        """Show the cursor row's turns and problems, and render it for the model."""
        pane = self.query_one(RowDetailPane)
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_due = False
        store, row, loader = self.store, self.table.current_row, self.loader
        if store is None or row is None:
            pane.show_row(None, "No row selected.")
            return
        tokens = store.tokens[row]
        status = (f"no model: {loader.tokenizer_error}" if loader.tokenizer_error else
                  "loading the tokenizer…" if loader.tokenizer is None else "rendering…")
        origin = store.origin(row)
        pane.show_row(RowDetail(row=row, line=store.lines[row], unit=store.unit,
                                example=store.example(row),
                                raw=store.raw.get(row), problems=store.row_problems(row),
                                tokens=tokens if tokens >= 0 else None,
                                max_length=self.max_length, status=status,
                                origin=f"{origin[0]} {position_unit(origin[0])} {origin[1]}"
                                if origin else ""),
                      tokenizer=loader.tokenizer,
                      assistant_only_loss=self.app.config.data.assistant_only_loss,
                      options=loader.options)

    # --- filters and search -----------------------------------------------------------------

    def _update_view(self) -> None:
        """Apply the filter and the search to the rows read so far."""
        if self.store is None:
            return
        table = self.table
        view = None
        if self.filter_mode != "all":
            view = self.store.matching(self.filter_mode, self.max_length)
        if self.search:
            import numpy as np

            hits = self.loader.search_hits
            hits = hits if hits is not None else np.zeros(0, np.int64)
            view = hits if view is None else np.intersect1d(view, hits, assume_unique=True)
        if view is None and table.view is None:
            table.rows_added()
        else:
            table.set_view(view)
        table.empty_text = self._empty_text()
        self._refresh_info()

    def _empty_text(self) -> str:
        loader = self.loader
        if self.store is not None and not len(self.store):
            return "Reading rows…"
        if self.search and loader.search_hits is None:
            return f"Searching for {self.search!r}…"
        if self.filter_mode == "long" and not loader.counted:
            return "No row over max length so far (tokens are still being counted)."
        if self.filter_mode == "duplicates" and loader.summary.checks is None:
            return "No duplicates so far (the checks have not finished)."
        return "No row matches. Press a to show all rows."

    def watch_filter_mode(self) -> None:
        """Show the rows the new filter selects."""
        self._update_view()

    def watch_search(self, search: str) -> None:
        """Search the rows for the new text (empty: show them all again)."""
        self.query_one(InfoLine).show_search(search)
        self.loader.search(search)
        self._update_view()

    def watch_max_length(self, max_length: int) -> None:
        """Re-mark long rows, re-cut the histogram, re-render the selected row, and render
        every row again to see what training does at the new max length."""
        self.app.config.data.max_length = max_length
        self.table.max_length = max_length
        if self.store is None:
            return
        self.loader.schedule()
        self._update_view()
        self._update_lengths()
        self._refresh_summary(now=True)
        self._show_detail()

    # --- problems, info, status and statistics ----------------------------------------------

    def _show_problems(self) -> None:
        """List the problems and count them in the tab's label."""
        count = self.query_one(ProblemList).show(self.store)
        tab = self.query_one("#panes", TabbedContent).get_tab("pane-problems")
        tab.label = f"Problems ({count:,})" if count else "Problems"

    @on(ProblemList.ProblemChosen)
    def problem_chosen(self, message: ProblemList.ProblemChosen) -> None:
        """Enter on a problem: jump to its row in the table."""
        if self.store is None:
            return
        row = message.row
        if row is None:
            self.notify("This problem concerns the whole file, not one row.")
            return
        if not self.table.show_row(row):
            self.search = ""
            self.filter_mode = "all"
            self.table.show_row(row)
        self.show_table = True
        self.table.focus()

    def _refresh_info(self) -> None:
        self.query_one(InfoLine).show(info_text(self.store, self.loader.ref, self.filter_mode,
                                                self.search, len(self.table)))

    def _stats_shown(self) -> bool:
        panes = self.query_one("#panes", TabbedContent)
        return panes.active == "pane-stats" and (not self.has_class("-narrow")
                                                 or not self.show_table)

    def _refresh_summary(self, now: bool = False) -> None:
        """Redraw the statistics pane now, or at the next tick (streaming updates); while the
        pane is hidden it is only marked for redrawing when shown."""
        self._refresh_info()
        if not now or not self._stats_shown():
            self._summary_dirty = True
            return
        self._summary_dirty = False
        self.query_one(StatsPanel).show(self.loader.summary_now())

    def _tick(self) -> None:
        """Apply throttled updates, name the running task, show its bar after a second."""
        if self._lengths_dirty and time.monotonic() - self._lengths_updated >= LENGTHS_SECONDS:
            self._update_lengths()
            self._summary_dirty = True
        if self._summary_dirty:
            self._refresh_summary(now=True)
        phases = self.loader.phases
        running = [phases[name] for name in PHASE_ORDER if name in phases]
        self.query_one(StatusLine).show(running[0] if running else None, len(phases) - 1,
                                        self._idle_status())

    def _idle_status(self) -> str:
        if self.store is None:
            return "No dataset open. Press o, type a path, Enter."
        if self.loader.tokenizer_error:
            return f"No token counts: {self.loader.tokenizer_error.splitlines()[0]}"
        if self.has_class("-narrow") and not self.show_table:
            return "Esc: back to the rows · v: next pane"
        return "Enter: row details · /: search · p l d: filters · v: next pane"

    @on(TabbedContent.TabActivated, "#panes")
    def pane_shown(self, event: TabbedContent.TabActivated) -> None:
        """Draw the statistics now when their tab opens (the chart skips replots off screen)."""
        if event.pane.id == "pane-stats":
            self._refresh_summary(now=True)
            self.query_one(LengthHistogram).replot_now()

    # --- actions ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Filters need rows; Back shows only when there is somewhere to go back from."""
        if action in ("filter", "show_all", "search"):
            return True if self.store is not None else None
        if action == "back":
            return isinstance(self.focused, Input) or (self.has_class("-narrow")
                                                       and not self.show_table)
        return True

    def action_edit(self, selector: str) -> None:
        """Focus one of the bar's inputs, its text selected for typing over."""
        field_input = self.query_one(selector, Input)
        field_input.focus()
        field_input.select_all()

    def action_filter(self, mode: str) -> None:
        """Show only rows with problems, over max length, or duplicated; again for all rows."""
        self.filter_mode = "all" if self.filter_mode == mode else mode
        self._show_table()

    def action_show_all(self) -> None:
        """Drop the filter and the search."""
        self.filter_mode = "all"
        self.search = ""
        self._show_table()

    def action_search(self) -> None:
        """Open the search field."""
        self.query_one(InfoLine).open_search()

    def action_next_pane(self) -> None:
        """Next pane (row, statistics, problems); at narrow sizes the table is one of them."""
        panes = self.query_one("#panes", TabbedContent)
        index = PANES.index(panes.active) if panes.active in PANES else 0
        if self.has_class("-narrow"):
            if self.show_table:
                self.show_table = False
                self._focus_pane()
                return
            if index == len(PANES) - 1:
                panes.active = PANES[0]
                self._show_table()
                return
        panes.active = PANES[(index + 1) % len(PANES)]
        if not self.show_table:
            self._focus_pane()

    def _focus_pane(self) -> None:
        active = self.query_one("#panes", TabbedContent).active
        self.query_one(PANE_WIDGETS.get(active, "#row-detail")).focus()

    def _show_table(self) -> None:
        self.show_table = True
        self.table.focus()

    def action_back(self) -> None:
        """Leave an input (a search is cancelled), or go back to the table."""
        info = self.query_one(InfoLine)
        if self.focused is info.search_input:
            info.show_search(self.search)
        self._show_table()

    def watch_show_table(self, show: bool) -> None:
        """At narrow sizes, show the table or the panes."""
        self.set_class(not show, "-panes-shown")
        self.refresh_bindings()
        if self._summary_dirty and self._stats_shown():
            self._refresh_summary(now=True)

    @on(DatasetBar.PathSubmitted)
    def path_submitted(self, message: DatasetBar.PathSubmitted) -> None:
        """Open the typed path (with the config's dataset, split and revision; it replaces
        the config's sources once it opens)."""
        from dataclasses import replace

        data = self.app.config.data
        typed = message.path.strip()
        self.open(selection_ref(replace(data, path=typed, sources=[]), self.app.config.optim.seed),
                  shown=typed)
        self._typed_path = typed
        self._show_table()

    @on(DatasetBar.ModelSubmitted)
    def model_submitted(self, message: DatasetBar.ModelSubmitted) -> None:
        """Switch to the typed model: load its tokenizer and count again."""
        if message.model.strip() and message.model.strip() != self.loader.model_ref:
            self._set_model(message.model)
        self._show_table()

    @on(DatasetBar.MaxLengthSubmitted)
    def max_length_submitted(self, message: DatasetBar.MaxLengthSubmitted) -> None:
        """Apply the typed max length."""
        self.max_length = message.max_length
        self._show_table()

    @on(InfoLine.SearchSubmitted)
    def search_submitted(self, message: InfoLine.SearchSubmitted) -> None:
        """Search the rows for the typed text (empty: no search)."""
        self.search = message.search
        self._show_table()
