"""The dataset screen, the app's first: open a file, browse its rows, see what the model sees.

A bar holds the dataset path, the model whose tokenizer and chat template render the rows,
and the max length. Below, the row table (virtual: a million rows scroll like ten) beside
three tabbed panes: the selected row in detail (turns, then the templated text with trained
tokens highlighted), statistics (rows, format, token-length histogram, content checks,
split) and the problems with their lines. At narrow sizes one of table and panes shows at a
time (``v`` switches).

Everything slow runs in a thread worker, one group each: ``read`` (rows in batches, the first
page at once), ``tokenizer``, ``tokens`` (batch token counts, :mod:`core.tokens`),
``checks`` (split, duplicates, refusals, leakage), ``render`` (the selected row) and
``search``. Workers post their results as messages (at most ~10 a second) and the screen,
on the UI thread, is the only writer of the row store.
"""

from __future__ import annotations

import gc
import heapq
import time
from array import array
from dataclasses import dataclass, field
from itertools import islice
from collections.abc import Iterator
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    Footer,
    Header,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState, get_current_worker

from core.data import DataError, DatasetStats, Example, Problem, Rendered
from core.rows import FIRST_PAGE, Opened, Progress, RowBatch, check_in_subprocess, read_in_subprocess
from tui.widgets.dataset_stats import StatsPanel, StatsSummary
from tui.widgets.length_histogram import LengthHistogram
from tui.widgets.row_table import (
    TOKENS_FAILED,
    TOKENS_UNKNOWN,
    RowStore,
    RowTable,
)
from tui.widgets.token_view import RowDetail, TokenView

POST_SECONDS = 0.1
"""Shortest time between two batches posted by a worker (at most ~10 messages a second)."""
PROGRESS_AFTER = 1.0
"""Seconds a task runs before its progress bar appears."""
TICK_SECONDS = 0.25
"""Period of the status tick that applies throttled pane updates and shows progress."""
LENGTHS_SECONDS = 1.0
"""Shortest time between two recomputations of the length statistics while counting."""
DETAIL_DELAY = 0.06
"""Quiet time after the cursor moves before the row's detail is drawn and rendered."""
CHECK_ROWS = 100_000
"""Rows the content checks cover (said on screen): beyond this dataset_stats runs for minutes
and keeps several KB per row."""
COUNT_NICE = 10
"""CPU priority drop of the token-counting threads, so keys are handled first (Linux)."""
EOS_SAMPLE = 32
"""Rows rendered in full to check that the template trains the end-of-turn token."""
PROBLEM_LIST_LIMIT = 1000
"""Problems listed in the Problems pane; the problems filter shows every row."""
FULL_LENGTH = 1 << 30
"""A max length no row reaches: renders a row without truncating it."""
FILTERS = {"problems": "problems", "long": "over max length", "duplicates": "duplicates"}
"""Filter modes and how the info line names them."""
PANES = ("pane-row", "pane-stats", "pane-problems")
"""The tabs, in the order ``v`` visits them."""
FILTER_KEYS = Binding.Group("Filter", compact=True)
"""Footer group of the keys that choose the rows shown (/ p l d a)."""
EDIT_KEYS = Binding.Group("Edit", compact=True)
"""Footer group of the keys that focus an input of the bar (o m t)."""
GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of young objects once a tokenizer is loaded (Python's
default is 700; see :func:`settle_heap`)."""


def settle_heap() -> None:
    """Once transformers is imported (a tokenizer loaded), make garbage collection cheap.

    Measured on 100,000 rows with keys pressed (two cores): transformers leaves ~430,000
    long-lived objects that every full collection walked, and Textual's repaints make enough
    cyclic garbage (strips and their caches) that a full collection ran every two seconds and
    held the GIL for about half a second each time: 5 to 8 s of a 23 to 40 s token count, and
    the event loop's p99 lag (0.4 s). So: freeze what is alive now (out of every later walk;
    still freed by reference counting, only cycles among them are never collected, hence
    once), and collect young objects every :data:`GC_YOUNG_THRESHOLD` allocations instead of
    700, so far fewer survive into older generations: 26 full collections became one, and
    the lag's p99 fell to about 70 ms, while counting and while checking.
    """
    if not gc.get_freeze_count():
        gc.freeze()
    young, middle, old = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@dataclass
class DatasetServices:
    """What the dataset screen calls; tests pass fakes via ``AppServices.dataset``."""

    load_tokenizer: Callable[[str], Any] | None = None
    """The tokenizer for a model reference; default ``core.models.load_tokenizer``."""
    read_rows: Callable[[str, str], Iterator[Opened | Progress]] = read_in_subprocess
    """Rows of a dataset in batches; tests that patch ``core.data`` read in-process."""
    check_rows: Callable[..., DatasetStats | None] = check_in_subprocess
    """The content checks of ``(line, packed)`` rows (see :func:`core.rows.check_in_subprocess`)."""


@dataclass
class Phase:
    """A task shown in the status bar while it runs."""

    label: str
    started: float = field(default_factory=time.monotonic)
    done: float = 0
    total: float | None = None
    """``None`` when the size is unknown (the bar pulses)."""
    detail: str = ""
    """Shown after the label, e.g. ``350,000 rows``."""


@dataclass
class CheckResult:
    """The content checks of one dataset."""

    stats: DatasetStats
    """Findings of ``dataset_stats`` on the checked rows."""
    checked: int
    """Kept rows the checks covered (at most :data:`CHECK_ROWS`)."""
    kept: int
    """Kept rows in the file."""
    train_rows: int
    """Kept rows in the training split."""
    val_rows: int
    """Kept rows in the validation split."""


@dataclass
class RenderResult:
    """The selected row rendered with the current tokenizer and max length."""

    row: int
    """Store index of the rendered row."""
    max_length: int
    """The max length it was rendered at."""
    rendered: Rendered | None
    """``None`` when the chat template rejected the row."""
    cut_text: str = ""
    """Text beyond the max length (empty unless truncated)."""
    error: str = ""
    """Why there is no rendering."""


class DatasetScreen(Screen):
    """Open a dataset, browse and filter its rows, inspect one row and the whole file."""

    CSS_PATH = "../styles/dataset.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    BINDINGS = [
        Binding("slash", "search", "Search the rows", group=FILTER_KEYS, id="dataset.search"),
        Binding("p", "filter('problems')", "Only rows with problems", group=FILTER_KEYS,
                id="dataset.filter-problems"),
        Binding("l", "filter('long')", "Only rows over max length", group=FILTER_KEYS,
                id="dataset.filter-long"),
        Binding("d", "filter('duplicates')", "Only duplicates", group=FILTER_KEYS,
                id="dataset.filter-duplicates"),
        Binding("a", "show_all", "All rows", group=FILTER_KEYS, id="dataset.show-all"),
        Binding("o", "edit('#dataset-path')", "Open a dataset file", group=EDIT_KEYS,
                id="dataset.open"),
        Binding("m", "edit('#dataset-model')", "Change the model", group=EDIT_KEYS,
                id="dataset.model"),
        Binding("t", "edit('#dataset-max-length')", "Change max length", group=EDIT_KEYS,
                id="dataset.max-length"),
        Binding("v", "next_pane", "Pane", id="dataset.next-pane"),
        Binding("escape", "back", "Back", id="dataset.back"),
    ]
    """Search; filters (problems, too long, duplicates, all); open a file, change the model or
    max length; next pane; back from an input or a pane."""

    filter_mode: reactive[str] = reactive("all")
    """Rows shown: ``all``, ``problems``, ``long`` (over max length) or ``duplicates``."""
    search: reactive[str] = reactive("")
    """Text the shown rows contain (case-insensitive); empty for no search."""
    max_length: reactive[int] = reactive(512)
    """Token budget per row: marks long rows and cuts the rendered row."""
    model_ref: reactive[str] = reactive("")
    """Model whose tokenizer and chat template render the rows."""
    show_table: reactive[bool] = reactive(True)
    """At narrow sizes: the table is shown (else the panes)."""

    class DatasetOpened(Message):
        """A worker opened a dataset and detected its format."""

        def __init__(self, generation: int, store: RowStore) -> None:
            super().__init__()
            self.generation = generation
            self.store = store

    class RowsRead(Message):
        """A worker read and normalised more rows."""

        def __init__(self, generation: int, batch: RowBatch, done: float,
                     total: float | None) -> None:
            super().__init__()
            self.generation = generation
            self.batch = batch
            self.done = done
            self.total = total

    class TokensCounted(Message):
        """A worker counted the tokens of rows ``start..`` (store indices)."""

        def __init__(self, key: tuple[int, int], start: int, counts: list[int]) -> None:
            super().__init__()
            self.key = key
            self.start = start
            self.counts = counts

    class TemplateChecked(Message):
        """EOS is trained in ``trained`` of the ``sampled`` first rows rendered in full."""

        def __init__(self, key: tuple[int, int], trained: int, sampled: int) -> None:
            super().__init__()
            self.key = key
            self.trained = trained
            self.sampled = sampled

    def __init__(self, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.store: RowStore | None = None
        """Rows of the open dataset (``None`` before the first opens or after an error)."""
        self.dataset_ref = ""
        """The dataset reference last opened (a path or ``sample:<name>``)."""
        self.tokenizer: Any = None
        """The loaded tokenizer of ``model_ref`` (``None`` while loading or after an error)."""
        self.tokenizer_error = ""
        """Why the tokenizer could not be loaded."""
        self.summary = StatsSummary()
        """What the statistics pane shows, filled in as the workers finish."""
        self._generation = 0
        self._token_generation = 0
        self._read_done = False
        self._tokens_key: tuple[int, int] | None = None
        """(dataset, tokenizer) generations whose tokens are all counted."""
        self._tokens_running: tuple[int, int] | None = None
        self._checks_key: tuple[int, float, int] | None = None
        """(dataset generation, validation fraction, seed) the content checks last ran for."""
        self._opened_format = ""
        self._search_hits: Any = None
        self._phases: dict[str, Phase] = {}
        self._workers: dict[str, Worker] = {}
        """The latest worker of each group; results of older ones are ignored."""
        self._detail_timer: Timer | None = None
        self._detail_due = False
        self._problem_lines: list[int | None] = []
        self._summary_dirty = False
        self._lengths_dirty = False
        self._lengths_updated = 0.0
        self._lines: dict[str, str | Text] = {}
        """What each one-line label shows, to skip updates that change nothing."""

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Inputs bar, info line, table beside panes, status bar."""
        yield Header()
        with Horizontal(id="dataset-bar"):
            yield Label("Data", classes="bar-label")
            yield Input(id="dataset-path", compact=True,
                        placeholder="path, or sample:support-tickets")
            yield Label("Model", classes="bar-label")
            yield Input(id="dataset-model", compact=True, placeholder="model reference")
            yield Label("Max len", classes="bar-label")
            yield Input(id="dataset-max-length", compact=True, type="integer")
        with Horizontal(id="dataset-info"):
            yield Static(id="dataset-summary")
            yield Input(id="dataset-search", compact=True,
                        placeholder="search rows: Enter to search, Esc to cancel")
        yield Static(id="dataset-error")
        with Horizontal(id="dataset-main"):
            yield RowTable(id="rows")
            with TabbedContent(id="panes", initial="pane-row"):
                with TabPane("Row", id="pane-row"):
                    yield TokenView(id="row-detail")
                with TabPane("Stats", id="pane-stats"):
                    yield StatsPanel(id="stats")
                with TabPane("Problems", id="pane-problems"):
                    yield OptionList(id="problems")
        with Horizontal(id="dataset-status"):
            yield Label(id="status-text")
            yield ProgressBar(id="progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        """Fill the bar from the config, then load the tokenizer and open the dataset."""
        config = self.app.config
        self.query_one("#dataset-max-length", Input).value = str(config.data.max_length)
        self.max_length = config.data.max_length
        self.table.focus()
        self.set_interval(TICK_SECONDS, self._tick)
        self._set_model(config.model.name_or_path)
        self.open(config.data.path)

    def on_screen_resume(self) -> None:
        """Follow changes made on other screens (the config form edits the same config)."""
        config = self.app.config
        if config.model.name_or_path != self.model_ref:
            self._set_model(config.model.name_or_path)
        if config.data.max_length != self.max_length:
            self.query_one("#dataset-max-length", Input).value = str(config.data.max_length)
            self.max_length = config.data.max_length
        if config.data.path != self.dataset_ref or config.data.format != self._opened_format:
            self.open(config.data.path)
            return
        self._show_detail()  # assistant_only_loss may have changed
        self._schedule()  # a changed split checks again

    @property
    def table(self) -> RowTable:
        """The row table."""
        return self.query_one("#rows", RowTable)

    @property
    def busy(self) -> bool:
        """Whether a task is running or due (reading, counting, checks, render, search)."""
        return (bool(self._phases) or self._detail_due
                or any(w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                       for w in self._workers.values()))

    def _services(self) -> DatasetServices:
        return self.app.services.dataset

    def _current(self, worker: Worker) -> bool:
        """Whether ``worker`` is the latest of its group (older results are stale)."""
        return self._workers.get(worker.group) is worker

    # --- opening and reading ----------------------------------------------------------------

    def open(self, ref: str) -> None:
        """Open dataset ``ref`` (a path or ``sample:<name>``); the old one is dropped."""
        ref = ref.strip()
        self.dataset_ref = ref
        self.query_one("#dataset-path", Input).value = ref
        self._generation += 1
        self._read_done = False
        self._tokens_key = self._tokens_running = None
        self._search_hits = None
        if self.store is not None:
            self._release(self.store)
        self.store = None
        self.summary = StatsSummary(ref=ref, model=self.model_ref)
        for group in ("read", "tokens", "checks", "search", "render"):
            self.workers.cancel_group(self, group)
            self._workers.pop(group, None)
            self._phases.pop(group, None)
        table = self.table
        table.empty_text = f"Opening {ref}…"
        table.set_store(None)
        self.query_one(LengthHistogram).set_lengths(None, self.max_length)
        self._show_error("")
        self._show_problems()
        self._refresh_summary(now=True)
        self._phases["read"] = Phase("Reading rows")
        self._opened_format = self.app.config.data.format
        self._workers["read"] = self._read(ref, self._opened_format, self._generation)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="read", exit_on_error=False)
    def _read(self, ref: str, data_format: str, generation: int) -> int:
        """Follow the reader process (:mod:`core.rows`), posting its batches; rows read."""
        import numpy  # noqa: F401  (filters and statistics need it: import it off the UI thread)

        worker = get_current_worker()
        pending, rows, last_post = RowBatch(), 0, 0.0
        items = self._services().read_rows(ref, data_format)
        try:
            for item in items:
                if worker.is_cancelled:
                    return rows
                if isinstance(item, Opened):
                    self.post_message(self.DatasetOpened(
                        generation, RowStore(item.source, item.kind, item.format, item.reason)))
                    continue
                pending.extend(item.batch)
                rows += len(item.batch)
                now = time.monotonic()
                if rows == FIRST_PAGE or now - last_post >= POST_SECONDS:
                    self.post_message(self.RowsRead(generation, pending, item.done, item.total))
                    pending, last_post = RowBatch(), now
            self.post_message(self.RowsRead(generation, pending, rows, rows))
        finally:
            items.close()  # kills the reader when cancelled
        return rows

    @work(thread=True, exclusive=False, group="release", exit_on_error=False)
    def _release(self, store: RowStore) -> None:
        """Free a closed dataset's rows off the UI thread, a slice at a time (its result and
        errors are of no interest: workers still reading the store just stop finding rows)."""
        store.release()

    @on(DatasetOpened)
    def dataset_opened(self, message: DatasetOpened) -> None:
        """Set up the table for the new dataset's format."""
        if message.generation != self._generation:
            return
        self.store = store = message.store
        self.app.config.data.path = self.dataset_ref
        s = self.summary
        s.source, s.kind, s.reading = store.source, store.kind, True
        s.format, s.format_reason = store.format, store.format_reason
        table = self.table
        table.empty_text = "Reading rows…"
        table.set_store(store)
        self.refresh_bindings()
        self._refresh_summary(now=True)

    @on(RowsRead)
    def rows_read(self, message: RowsRead) -> None:
        """Add the rows to the store and show them."""
        if message.generation != self._generation or self.store is None:
            return
        first = not len(self.store)
        self.store.extend(message.batch)
        phase = self._phases.get("read")
        if phase is not None:
            phase.done, phase.total = message.done, message.total
            phase.detail = f"{len(self.store):,} rows"
        self._update_view()
        if first:
            self._show_problems()
        self._refresh_summary()

    def _read_finished(self, error: BaseException | None) -> None:
        self._phases.pop("read", None)
        self.summary.reading = False
        if error is not None:
            text = str(error) if isinstance(error, DataError) else (
                f"Reading failed: {type(error).__name__}: {error}")
            if self.store is None or not len(self.store):
                self.store = None
                self.table.empty_text = "No dataset open: fix the path and press o to retry."
                self.table.set_store(None)
                self._show_error(text)
                self.notify(text, title="Cannot open the dataset", severity="error", timeout=8)
            else:
                self.summary.read_error = text
                self.notify(text, title="Stopped reading", severity="warning", timeout=8)
        self._read_done = self.store is not None
        self.refresh_bindings()
        if self._read_done:
            if self.search:
                self._start_search()
            self._update_view()
            self._show_problems()
            self._schedule()
        self._refresh_summary(now=True)

    def _show_error(self, text: str) -> None:
        error = self.query_one("#dataset-error", Static)
        error.update(Text(text))
        error.set_class(bool(text), "-shown")

    # --- tokenizer, token counts and checks -------------------------------------------------

    def _set_model(self, ref: str) -> None:
        ref = ref.strip()
        self.model_ref = ref
        self.query_one("#dataset-model", Input).value = ref
        self.app.config.model.name_or_path = ref
        self._token_generation += 1
        self.tokenizer, self.tokenizer_error = None, ""
        self._tokens_key = self._tokens_running = None
        self.summary.model, self.summary.eos, self.summary.lengths = ref, None, None
        for group in ("tokens", "render"):
            self.workers.cancel_group(self, group)
            self._workers.pop(group, None)
            self._phases.pop(group, None)
        if self.store is not None:
            self.store.reset_tokens()
            self.table.refresh()
            self.query_one(LengthHistogram).set_lengths(None, self.max_length)
        self._phases["tokenizer"] = Phase(f"Loading the tokenizer of {ref}")
        self._workers["tokenizer"] = self._load_tokenizer(ref, self._services())
        self._show_detail()
        self._refresh_summary(now=True)

    @work(thread=True, exclusive=True, group="tokenizer", exit_on_error=False)
    def _load_tokenizer(self, ref: str, services: DatasetServices) -> Any:
        """Load the tokenizer (the first use of the bundled model converts it, ~30 s)."""
        if services.load_tokenizer is not None:
            tokenizer = services.load_tokenizer(ref)
        else:
            from core.models import load_tokenizer

            tokenizer = load_tokenizer(ref)
        settle_heap()
        return tokenizer

    def _tokenizer_finished(self, tokenizer: Any, error: BaseException | None) -> None:
        self._phases.pop("tokenizer", None)
        if error is not None:
            self.tokenizer_error = str(error)
            self.notify(str(error), title="Cannot load the tokenizer", severity="error",
                        timeout=8)
        else:
            self.tokenizer = tokenizer
        self._show_detail()
        self._refresh_summary(now=True)
        self._schedule()

    def _schedule(self) -> None:
        """Start what is due once rows are read: token counts, then the content checks."""
        if self.store is None or not self._read_done:
            return
        key = (self._generation, self._token_generation)
        if self.tokenizer is not None and key not in (self._tokens_key, self._tokens_running):
            self._tokens_running = key
            self._phases["tokens"] = Phase("Counting tokens", total=len(self.store))
            self._workers["tokens"] = self._count_tokens(self.tokenizer, self.store, key)
            return
        settled = self._tokens_key == key or (self.tokenizer is None
                                              and "tokenizer" not in self._phases)
        config = self.app.config
        checks = (self._generation, config.data.validation_fraction, config.optim.seed)
        if settled and self._checks_key != checks:
            if self._checks_key is not None and self._checks_key[0] == self._generation:
                self.store.clear_findings()  # another split of the same rows: check again
                self.summary.checks = None
                self._update_view()
                self._show_problems()
            self._checks_key = checks
            self._phases["checks"] = Phase("Checking duplicates, refusals and leakage")
            self._workers["checks"] = self._check(self.store, checks[1], checks[2])

    @work(thread=True, exclusive=True, group="tokens", exit_on_error=False)
    def _count_tokens(self, tokenizer: Any, store: RowStore, key: tuple[int, int]) -> None:
        """Check EOS on the first rows, then count every kept row's tokens in batches.

        Takes the store, not its list of examples: ``@work`` writes every argument's repr
        into the worker's description, on the UI thread.
        """
        from core.data import render_example
        from core.tokens import COUNT_BATCH, iter_token_counts

        worker = get_current_worker()
        rows = store.rows  # complete: counting starts once every row is read
        trained = sampled = 0
        for example in islice(store.examples(), EOS_SAMPLE):
            try:
                rendered = render_example(tokenizer, example, FULL_LENGTH)
            except DataError:
                continue
            sampled += 1
            trained += rendered.eos_trained
        self.post_message(self.TemplateChecked(key, trained, sampled))

        def batches():
            for start in range(0, len(rows), COUNT_BATCH):
                if worker.is_cancelled:
                    return
                yield list(store.examples(start, start + COUNT_BATCH))

        start = posted = 0
        pending: list[int] = []
        last_post = time.monotonic()
        for counts in iter_token_counts(tokenizer, batches(), nice=COUNT_NICE):
            found = iter(counts)
            for packed in rows[start:start + COUNT_BATCH]:
                n = TOKENS_UNKNOWN if packed is None else next(found)
                pending.append(TOKENS_FAILED if n is None else n)
            start += COUNT_BATCH
            now = time.monotonic()
            if now - last_post >= POST_SECONDS:
                self.post_message(self.TokensCounted(key, posted, pending))
                posted, pending, last_post = posted + len(pending), [], now
        if pending:
            self.post_message(self.TokensCounted(key, posted, pending))

    @on(TokensCounted)
    def tokens_counted(self, message: TokensCounted) -> None:
        """Store the counts; the token column, filter and lengths follow."""
        if message.key != (self._generation, self._token_generation) or self.store is None:
            return
        self.store.set_tokens(message.start, message.counts)
        done = message.start + len(message.counts)
        phase = self._phases.get("tokens")
        if phase is not None:
            phase.done, phase.detail = done, f"{done:,} of {len(self.store):,} rows"
        self.summary.counted = done
        if self.filter_mode == "long":
            self._update_view()
        else:
            self.table.refresh_rows(message.start, done)
        self._lengths_dirty = True
        self._refresh_summary()

    def _tokens_finished(self, error: BaseException | None) -> None:
        self._phases.pop("tokens", None)
        if error is not None:
            self.notify(f"Counting tokens failed: {type(error).__name__}: {error}",
                        severity="error")
        else:
            self._tokens_key = self._tokens_running
        self._tokens_running = None
        self._update_lengths()
        self._update_view()
        self._refresh_summary(now=True)
        self._schedule()

    @on(TemplateChecked)
    def template_checked(self, message: TemplateChecked) -> None:
        """Show how many sampled rows train the end-of-turn token."""
        if message.key == (self._generation, self._token_generation) and message.sampled:
            self.summary.eos = (message.trained, message.sampled)
            self._refresh_summary()

    def _update_lengths(self) -> None:
        """Recompute the token-length figures and the histogram from the counts so far."""
        import numpy as np

        from core.tokens import length_stats

        self._lengths_dirty = False
        self._lengths_updated = time.monotonic()
        if self.store is None:
            return
        tokens = np.frombuffer(self.store.tokens, dtype=np.int32)
        counted = tokens[tokens >= 0]
        del tokens  # release the buffer: the store's array must stay resizable
        self.summary.lengths = length_stats(counted, self.max_length) if counted.size else None
        self.query_one(LengthHistogram).set_lengths(counted, self.max_length)

    @work(thread=True, exclusive=True, group="checks", exit_on_error=False)
    def _check(self, store: RowStore, validation_fraction: float,
               seed: int) -> CheckResult | None:
        """Split as training will, then look for duplicates, refusals, short answers, leakage.

        ``dataset_stats`` runs in a child process (:func:`core.rows.check_in_subprocess`),
        which this worker kills when cancelled: quitting (or opening another file) never
        waits for it. ``None`` when cancelled.
        """
        from core.data import split_examples

        worker = get_current_worker()
        # split the kept rows' indices (split_examples only looks at positions), so that
        # only the checked rows are sent
        kept = [index for index, packed in enumerate(store.rows) if packed is not None]
        train, val = split_examples(kept, validation_fraction, seed)  # type: ignore[arg-type]
        checked = min(len(kept), CHECK_ROWS)
        end = kept[checked - 1] + 1 if checked else 0
        lines, rows = store.lines, store.rows
        stats = self._services().check_rows(
            [(lines[i], rows[i]) for i in train if i < end],
            [(lines[i], rows[i]) for i in val if i < end],
            store.source, lambda: worker.is_cancelled)
        if stats is None:
            return None
        return CheckResult(stats, checked, len(kept), len(train), len(val))

    def _checks_finished(self, result: CheckResult | None, error: BaseException | None) -> None:
        self._phases.pop("checks", None)
        if error is not None or result is None or self.store is None:
            if error is not None:
                self.notify(f"Checks failed: {type(error).__name__}: {error}", severity="error")
            self._refresh_summary(now=True)
            return
        self.store.add_findings(result.stats.findings)
        s = self.summary
        s.checks, s.checked_rows, s.kept = result.stats, result.checked, result.kept
        s.train_rows, s.val_rows = result.train_rows, result.val_rows
        if self._checks_key is not None:
            _, s.validation_fraction, s.seed = self._checks_key
        self._update_view()
        self._show_problems()
        self._show_detail()
        self._refresh_summary(now=True)

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

    def _detail_for(self, row: int) -> RowDetail:
        store = self.store
        assert store is not None
        tokens = store.tokens[row]
        status = (f"no model: {self.tokenizer_error}" if self.tokenizer_error else
                  "loading the tokenizer…" if self.tokenizer is None else "rendering…")
        return RowDetail(row=row, line=store.lines[row], example=store.example(row),
                         raw=store.raw.get(row), problems=store.row_problems(row),
                         tokens=tokens if tokens >= 0 else None, max_length=self.max_length,
                         status=status)

    def _show_detail(self) -> None:
        """Show the cursor row's turns and problems, and start rendering it for the model."""
        view = self.query_one("#row-detail", TokenView)
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_due = False
        row = self.table.current_row
        if self.store is None or row is None:
            view.show(None, "No row selected.")
            return
        view.show(self._detail_for(row))
        self._start_render()

    def _start_render(self) -> None:
        row = self.table.current_row
        if self.store is None or row is None or self.tokenizer is None:
            return
        example = self.store.example(row)
        if example is None:
            return
        self._workers["render"] = self._render_row(self.tokenizer, example, row, self.max_length,
                                               self.app.config.data.assistant_only_loss)

    @work(thread=True, exclusive=True, group="render", exit_on_error=False)
    def _render_row(self, tokenizer: Any, example: Example, row: int, max_length: int,
                    assistant_only_loss: bool) -> RenderResult:
        """Render the row at the max length; if cut, render it whole to show what is lost."""
        from core.data import render_example

        try:
            rendered = render_example(tokenizer, example, max_length, assistant_only_loss)
            cut = ""
            if rendered.truncated:
                whole = render_example(tokenizer, example, FULL_LENGTH, assistant_only_loss)
                cut = whole.text[len(rendered.text):]
        except DataError as exc:
            return RenderResult(row, max_length, None, error=str(exc))
        return RenderResult(row, max_length, rendered, cut)

    def _render_finished(self, result: RenderResult) -> None:
        if (self.store is None or result.row != self.table.current_row
                or result.max_length != self.max_length):
            return
        detail = self._detail_for(result.row)
        detail.rendered, detail.cut_text = result.rendered, result.cut_text
        detail.status = result.error
        self.query_one("#row-detail", TokenView).show(detail)

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

            hits = self._search_hits if self._search_hits is not None else np.zeros(0, np.int64)
            view = hits if view is None else np.intersect1d(view, hits, assume_unique=True)
        if view is None and table.view is None:
            table.rows_added()
        else:
            table.set_view(view)
        table.empty_text = self._empty_text()
        self._refresh_info()

    def _empty_text(self) -> str:
        if self.store is not None and not len(self.store):
            return "Reading rows…"
        if self.search and self._search_hits is None:
            return f"Searching for {self.search!r}…"
        if self.filter_mode == "long" and self._tokens_key is None:
            return "No row over max length so far (tokens are still being counted)."
        if self.filter_mode == "duplicates" and self.summary.checks is None:
            return "No duplicates so far (the checks have not finished)."
        return "No row matches. Press a to show all rows."

    def watch_filter_mode(self) -> None:
        """Show the rows the new filter selects."""
        self._update_view()

    def watch_search(self, search: str) -> None:
        """Search the rows for the new text (empty: show them all again)."""
        self.query_one("#dataset-info").set_class(bool(search), "-searching")
        self.query_one("#dataset-search", Input).value = search
        self._start_search()
        self._update_view()

    def watch_max_length(self, max_length: int) -> None:
        """Re-mark long rows, re-cut the histogram and re-render the selected row."""
        self.app.config.data.max_length = max_length
        self.table.max_length = max_length
        if self.store is None:
            return
        self._update_view()
        self._update_lengths()
        self._refresh_summary(now=True)
        self._show_detail()

    def _start_search(self) -> None:
        self._search_hits = None
        self.workers.cancel_group(self, "search")
        self._phases.pop("search", None)
        if self.store is None or not self.search or not self._read_done and not len(self.store):
            return
        self._phases["search"] = Phase(f"Searching for {self.search!r}", total=len(self.store))
        self._workers["search"] = self._search_rows(self.store, self.search.lower(),
                                                    len(self.store))

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search_rows(self, store: RowStore, query: str, upto: int) -> Any:
        """Indices of the first ``upto`` rows whose text contains ``query``."""
        import numpy as np

        worker = get_current_worker()
        hits = array("q")
        for index in range(upto):
            if index % 10_000 == 0 and worker.is_cancelled:
                break
            if query in store.search_text(index):
                hits.append(index)
        return np.frombuffer(hits, dtype=np.int64).copy()

    # --- problems ---------------------------------------------------------------------------

    def _show_problems(self) -> None:
        """List the problems (reading errors and warnings, then check findings) by line."""
        options = self.query_one("#problems", OptionList)
        options.clear_options()
        self._problem_lines = []
        store = self.store
        count = 0
        if store is not None:
            items: list[Option] = []
            rows = heapq.nsmallest(PROBLEM_LIST_LIMIT, {*store.problems, *store.findings})
            for row in rows:
                for problem in store.row_problems(row):
                    items.append(Option(self._problem_text(problem)))
                    self._problem_lines.append(problem.line)
            del items[PROBLEM_LIST_LIMIT:], self._problem_lines[PROBLEM_LIST_LIMIT:]
            options.add_options(items)
            count = sum(map(len, store.problems.values())) + sum(map(len, store.findings.values()))
            if count > len(items):
                options.add_option(Option(
                    f"… {count - len(items):,} more: press p to filter the rows with problems.",
                    disabled=True))
        tab = self.query_one("#panes", TabbedContent).get_tab("pane-problems")
        tab.label = f"Problems ({count:,})" if count else "Problems"

    def _problem_text(self, problem: Problem) -> Text:
        error = problem.severity == "error"
        where = f"line {problem.line:>6} " if problem.line is not None else "whole file  "
        text = Text(where, style="dim")
        text.append("✗ " if error else "! ", style="bold red" if error else "bold yellow")
        if problem.field:
            text.append(f"{problem.field}: ", style="bold")
        text.append(problem.message)
        return text

    @on(OptionList.OptionSelected, "#problems")
    def problem_chosen(self, event: OptionList.OptionSelected) -> None:
        """Enter on a problem: jump to its row in the table."""
        index = event.option_index
        if self.store is None or index >= len(self._problem_lines):
            return
        line = self._problem_lines[index]
        row = self.store.row_for_line(line) if line is not None else None
        if row is None:
            self.notify("This problem concerns the whole file, not one row.")
            return
        if not self.table.show_row(row):
            self.search = ""
            self.filter_mode = "all"
            self.table.show_row(row)
        self.show_table = True
        self.table.focus()

    # --- status, info and summary -----------------------------------------------------------

    def _refresh_info(self) -> None:
        info = Text()
        store = self.store
        if store is None:
            info.append(self.dataset_ref or "No dataset", style="bold")
        else:
            info.append(store.format, style="bold")
            info.append(f" · {len(store) - store.dropped:,} rows")
            if store.dropped:
                info.append(f" · {store.dropped:,} dropped", style="red")
            shown = len(self.table)
            if self.filter_mode != "all":
                info.append(f" │ only {FILTERS[self.filter_mode]}: {shown:,} rows",
                            style="bold yellow")
            if self.search:
                info.append(f" │ search {self.search!r}: {shown:,} rows", style="bold yellow")
        self._set_line("#dataset-summary", info)

    def _set_line(self, selector: str, content: str | Text) -> None:
        """Show ``content`` in a one-line label if it changed (no relayout: its size is fixed)."""
        if self._lines.get(selector) != content:
            self._lines[selector] = content
            self.query_one(selector, Static).update(content, layout=False)

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
        store = self.store
        s = self.summary
        if store is not None:
            s.rows, s.dropped = len(store), store.dropped
            s.drop_reasons = store.drop_reasons.most_common()
        s.counting = "tokens" in self._phases
        s.status = ("Checking…" if "checks" in self._phases else
                    "Waiting for the token counts…" if "tokens" in self._phases else
                    "No dataset." if store is None else "Waiting for the rows…")
        self.query_one(StatsPanel).show(s)

    def _tick(self) -> None:
        """Apply throttled updates, name the running task, show its bar after a second."""
        now = time.monotonic()
        if self._lengths_dirty and now - self._lengths_updated >= LENGTHS_SECONDS:
            self._update_lengths()
            self._summary_dirty = True
        if self._summary_dirty:
            self._refresh_summary(now=True)
        bar = self.query_one("#progress", ProgressBar)
        order = ("read", "tokenizer", "tokens", "checks", "search")
        phase = next((self._phases[name] for name in order if name in self._phases), None)
        if phase is None:
            self._set_line("#status-text", self._idle_status())
            bar.display = False
            return
        others = len(self._phases) - 1
        detail = f" {phase.detail}" if phase.detail else ""
        self._set_line("#status-text",
                       f"{phase.label}…{detail}" + (f" (+{others} more)" if others else ""))
        bar.display = now - phase.started >= PROGRESS_AFTER
        if bar.display:
            bar.update(total=phase.total, progress=phase.done)

    def _idle_status(self) -> str:
        if self.store is None:
            return "No dataset open. Press o, type a path, Enter."
        if self.tokenizer_error:
            return f"No token counts: {self.tokenizer_error.splitlines()[0]}"
        if self.has_class("-narrow") and not self.show_table:
            return "Esc: back to the rows · v: next pane"
        return "Enter: row details · /: search · p l d: filters · v: next pane"

    @on(TabbedContent.TabActivated, "#panes")
    def pane_shown(self, event: TabbedContent.TabActivated) -> None:
        """Draw the statistics now when their tab opens (the chart skips replots off screen)."""
        if event.pane.id == "pane-stats":
            self._refresh_summary(now=True)
            self.query_one(LengthHistogram).replot_now()

    # --- workers ----------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        """Route the latest worker of each group's result, or error, to where it shows."""
        worker, state = event.worker, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR) or not self._current(worker):
            return  # PENDING, RUNNING, CANCELLED (a newer run replaced it), or a stale run
        error = worker.error if state == WorkerState.ERROR else None
        group = worker.group
        if group == "read":
            self._read_finished(error)
        elif group == "tokenizer":
            self._tokenizer_finished(worker.result, error)
        elif group == "tokens":
            self._tokens_finished(error)
        elif group == "checks":
            self._checks_finished(worker.result, error)
        elif group == "render":
            if error is not None:
                self.notify(f"Rendering failed: {type(error).__name__}: {error}",
                            severity="error")
            else:
                self._render_finished(worker.result)
        elif group == "search":
            self._phases.pop("search", None)
            if error is not None:
                self.notify(f"Search failed: {type(error).__name__}: {error}", severity="error")
            else:
                self._search_hits = worker.result
                self._update_view()
        else:
            self.log.warning(f"worker group {group!r} ended ({state.name}) with no handler")

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
        self.query_one("#dataset-info").add_class("-searching")
        self.action_edit("#dataset-search")

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
        self.query_one({"pane-row": "#row-detail", "pane-stats": "#stats",
                        "pane-problems": "#problems"}.get(active, "#row-detail")).focus()

    def _show_table(self) -> None:
        self.show_table = True
        self.table.focus()

    def action_back(self) -> None:
        """Leave an input (a search is cancelled), or go back to the table."""
        focused = self.focused
        if isinstance(focused, Input) and focused.id == "dataset-search":
            focused.value = self.search
            self.query_one("#dataset-info").set_class(bool(self.search), "-searching")
        self._show_table()

    def watch_show_table(self, show: bool) -> None:
        """At narrow sizes, show the table or the panes."""
        self.set_class(not show, "-panes-shown")
        self.refresh_bindings()
        if self._summary_dirty and self._stats_shown():
            self._refresh_summary(now=True)

    @on(Input.Submitted, "#dataset-path")
    def path_submitted(self, event: Input.Submitted) -> None:
        """Open the typed path."""
        if event.value.strip():
            self.open(event.value)
            self._show_table()

    @on(Input.Submitted, "#dataset-model")
    def model_submitted(self, event: Input.Submitted) -> None:
        """Switch to the typed model: load its tokenizer and count again."""
        if event.value.strip() and event.value.strip() != self.model_ref:
            self._set_model(event.value)
        self._show_table()

    @on(Input.Submitted, "#dataset-max-length")
    def max_length_submitted(self, event: Input.Submitted) -> None:
        """Apply the typed max length (at least 16 tokens, as the config requires)."""
        try:
            value = int(event.value)
        except ValueError:
            value = 0
        if value < 16:
            self.notify("Max length must be a whole number of at least 16 tokens.",
                        severity="error")
            event.input.value = str(self.max_length)
            return
        self.max_length = value
        self._show_table()

    @on(Input.Submitted, "#dataset-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        """Search the rows for the typed text (empty: no search)."""
        self.search = event.value.strip()
        self.query_one("#dataset-info").set_class(bool(self.search), "-searching")
        self._show_table()
