"""The dataset screen's loader: reads the dataset and measures it, off the UI thread.

A widget without a display (Textual runs workers on a node of the DOM) that owns the open
dataset's rows (:class:`~tui.widgets.row_table.RowStore`), the model's tokenizer and the
figures of the statistics pane (:class:`~tui.widgets.dataset_stats.StatsSummary`). It keeps
them current in thread workers, one group each, doing the work of :mod:`tui.dataset_tasks`:
``read`` (rows in batches, the first page at once), ``tokenizer``, ``tokens`` (batch token
counts), ``training`` (every row rendered as training will at the max length, model and loss
mask in force: rows dropped, cut, EOS trained; again when one of them changes), ``checks``
(split, duplicates, refusals, leakage) and ``search``. The workers'
messages are handled here first, on the UI thread (the loader is the only writer of the
store), then bubble to the screen, which redraws its views; so do the loader's own messages
when a task ends. Each task's failure is notified here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from core.data import DataError, DatasetReport, RenderOptions, TemplateInfo, TrainingOutcome
from core.rows import Opened
from tui import dataset_tasks as tasks
from tui.dataset_tasks import DatasetServices
from tui.widgets.dataset_stats import StatsSummary
from tui.widgets.row_table import RowBatch, RowStore
from tui.widgets.status_line import Phase


class DatasetLoader(Widget):
    """The open dataset and its model's tokenizer, read and measured in thread workers."""

    DEFAULT_CSS = """
    DatasetLoader { display: none; }
    """

    class Notice(Message):
        """Something the screen redraws for: a task ended, or the findings or training
        problems were cleared. The loader counts those it posts (:attr:`notices`)."""

    @dataclass
    class DatasetOpened(Message):
        """A dataset opened and its format is known; its rows follow."""

        generation: int
        store: RowStore

    @dataclass
    class RowsRead(Message):
        """More rows were read and added to the store (``first``: the first ones)."""

        generation: int
        batch: RowBatch
        done: float
        total: float | None
        first: bool = False

    @dataclass
    class ReadFinished(Notice):
        """Reading ended; ``failure`` says why nothing could be read (empty when rows were)."""

        failure: str = ""

    @dataclass
    class TokenizerLoaded(Notice):
        """The model's tokenizer loaded, or failed to (see ``tokenizer_error``)."""

    @dataclass
    class TemplateChecked(Message):
        """``info`` says which template and system prompt are in force (``None`` when the
        template cannot be read)."""

        key: tuple[int, int]
        info: TemplateInfo | None = None

    @dataclass
    class TrainingProgress(Message):
        """``done`` rows were rendered as training will, for the settings ``key``."""

        key: tuple
        done: int

    @dataclass
    class TrainingCleared(Notice):
        """The max length, model, rendering options or loss mask changed: the training
        problems went."""

    @dataclass
    class TrainingChecked(Notice):
        """What training does with the rows is known (``found``: in the store and summary)."""

        found: bool

    @dataclass
    class TokensCounted(Message):
        """The tokens of rows ``start..`` (store indices) were counted."""

        key: tuple[int, int]
        start: int
        counts: list[int]

    @dataclass
    class CountingFinished(Notice):
        """Token counting ended (every kept row counted, unless it failed)."""

    @dataclass
    class FindingsCleared(Notice):
        """The split changed: the old check findings went and the checks run again."""

    @dataclass
    class ChecksFinished(Notice):
        """The content checks ended; ``found``: their findings are in the store."""

        found: bool

    @dataclass
    class SearchFinished(Notice):
        """The search found its rows (``search_hits``)."""

    def __init__(self) -> None:
        super().__init__()
        self.store: RowStore | None = None
        """Rows of the open dataset (``None`` before the first opens or after an error)."""
        self.ref = ""
        """The dataset reference last opened (a path or ``sample:<name>``, or the JSON of
        several sources, :func:`core.data.selection_ref`)."""
        self.options = RenderOptions()
        """The rendering options (template, system prompt) rows are counted and shown with."""
        self.data_format = ""
        """The format it was opened with (the config's ``data.format``)."""
        self.model_ref = ""
        """The model whose tokenizer renders and counts the rows."""
        self.tokenizer: Any = None
        """The loaded tokenizer of ``model_ref`` (``None`` while loading or after an error)."""
        self.tokenizer_error = ""
        """Why the tokenizer could not be loaded."""
        self.summary = StatsSummary()
        """What the statistics pane shows, filled in as the workers finish."""
        self.phases: dict[str, Phase] = {}
        """The running tasks, by worker group, for the status line."""
        self.read_done = False
        """Every row is read (and the store is open)."""
        self.search_text = ""
        """The search (as typed); ``search_hits`` are its rows once found."""
        self.search_hits: Any = None
        self._generation = 0
        self._token_generation = 0
        self._tokens_key: tuple[int, int] | None = None
        """(dataset, tokenizer) generations whose tokens are all counted."""
        self._tokens_running: tuple[int, int] | None = None
        self._checks_key: tuple[int, float, int] | None = None
        """(dataset generation, validation fraction, seed) the content checks last ran for."""
        self._training_key: tuple | None = None
        """(dataset, tokenizer generations, rendering options, max length, assistant-only
        loss) the training outcome last ran for."""
        self._workers: dict[str, Worker] = {}
        """The latest worker of each group; results of older ones are ignored."""
        self.notices = 0
        """:class:`Notice` messages posted so far; the screen counts those it has handled,
        so that it knows when everything computed is also drawn."""

    @property
    def services(self) -> DatasetServices:
        """What the workers call (the app's, so tests can pass fakes)."""
        return self.app.services.dataset

    @property
    def counted(self) -> bool:
        """Whether every row's tokens are counted with the current tokenizer."""
        return self._tokens_key is not None

    @property
    def busy(self) -> bool:
        """Whether a task is running (reading, loading, counting, checks, search)."""
        return bool(self.phases) or any(
            w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self._workers.values())

    def summary_now(self) -> StatsSummary:
        """:attr:`summary` with the row counts as of now and what the pane waits for."""
        store, phases, s = self.store, self.phases, self.summary
        if store is not None:
            s.rows, s.dropped = len(store), store.dropped
            s.drop_reasons = store.drop_reasons.most_common()
        s.counting = "tokens" in phases
        s.chunking = self.options.text_chunking
        s.training_running = "training" in phases
        s.status = ("Checking…" if "checks" in phases else
                    "Waiting for the token counts…" if "tokens" in phases else
                    "No dataset." if store is None else "Waiting for the rows…")
        return s

    def measure_lengths(self, max_length: int) -> Any:
        """The token counts so far (a numpy array), their figures kept in :attr:`summary`."""
        from core.data import length_stats

        assert self.store is not None
        counted = tasks.counted_lengths(self.store)
        self.summary.lengths = length_stats(counted, max_length) if counted.size else None
        return counted

    def _notice(self, message: Notice) -> None:
        """Post ``message`` for the screen, counted in :attr:`notices`."""
        self.notices += 1
        self.post_message(message)

    def _start(self, group: str, worker: Worker, phase: Phase) -> None:
        """Remember ``worker`` as the latest of ``group``, named by ``phase`` while it runs."""
        self._workers[group] = worker
        self.phases[group] = phase

    def _cancel(self, *groups: str) -> None:
        """Cancel the workers of ``groups``; whatever they still post is ignored."""
        for group in groups:
            self.workers.cancel_group(self, group)
            self._workers.pop(group, None)
            self.phases.pop(group, None)

    # --- reading ----------------------------------------------------------------------------

    def open(self, ref: str) -> None:
        """Open dataset ``ref`` in the config's data format; the old one is dropped."""
        self.ref = ref
        self._generation += 1
        self.read_done = False
        self._tokens_key = self._tokens_running = self._training_key = None
        self.search_hits = None
        if self.store is not None:
            self._release(self.store)
        self.store = None
        # a mix is named by its sources (the File line), not by the JSON that selects it
        self.summary = StatsSummary(ref="" if ref.lstrip().startswith("{") else ref,
                                    model=self.model_ref)
        self._cancel("read", "tokens", "training", "checks", "search")
        self.data_format = self.app.config.data.format
        self._start("read", self._read(ref, self.data_format, self._generation),
                    Phase("Reading rows"))

    @work(thread=True, exclusive=True, group="read", exit_on_error=False)
    def _read(self, ref: str, data_format: str, generation: int) -> None:
        """Follow the reader process (:mod:`core.rows`), posting its batches."""
        worker = get_current_worker()
        items = self.services.read_rows(ref, data_format)
        for item in tasks.read_chunks(items, lambda: worker.is_cancelled):
            if isinstance(item, Opened):
                store = RowStore(item.source, item.kind, item.format, item.reason)
                store.sources = item.sources
                self.post_message(self.DatasetOpened(generation, store))
            else:
                self.post_message(self.RowsRead(generation, item.batch, item.done, item.total))

    @work(thread=True, exclusive=False, group="release", exit_on_error=False)
    def _release(self, store: RowStore) -> None:
        """Free a closed dataset's rows off the UI thread, a slice at a time (its result and
        errors are of no interest: workers still reading the store just stop finding rows)."""
        store.release()

    @on(DatasetOpened)
    def dataset_opened(self, message: DatasetOpened) -> None:
        """Keep the new dataset's store (a stale one goes no further)."""
        if message.generation != self._generation:
            message.stop()
            return
        self.store = store = message.store
        s = self.summary
        s.source, s.kind, s.reading = store.source, store.kind, True
        s.format, s.format_reason = store.format, store.format_reason
        s.sources = store.sources

    @on(RowsRead)
    def rows_read(self, message: RowsRead) -> None:
        """Add the rows to the store."""
        if message.generation != self._generation or self.store is None:
            message.stop()
            return
        message.first = not len(self.store)
        self.store.extend(message.batch)
        phase = self.phases.get("read")
        if phase is not None:
            phase.done, phase.total = message.done, message.total
            phase.detail = f"{len(self.store):,} rows"

    def _read_finished(self, error: BaseException | None) -> None:
        self.phases.pop("read", None)
        self.summary.reading = False
        failure = ""
        if error is not None:
            text = str(error) if isinstance(error, DataError) else (
                f"Reading failed: {type(error).__name__}: {error}")
            if self.store is None or not len(self.store):
                self.store, failure = None, text
                self.notify(text, title="Cannot open the dataset", severity="error", timeout=8)
            else:
                self.summary.read_error = text
                self.notify(text, title="Stopped reading", severity="warning", timeout=8)
        self.read_done = self.store is not None
        if self.read_done:
            if self.search_text:
                self.search(self.search_text)
            self.schedule()
        self._notice(self.ReadFinished(failure))

    # --- tokenizer, token counts and checks -------------------------------------------------

    def set_model(self, ref: str, options: RenderOptions | None = None) -> None:
        """Load model ``ref``'s tokenizer, then count the tokens again with it, rendering rows
        with ``options`` (template, system prompt)."""
        self.model_ref = ref
        self.options = options or RenderOptions()
        self._token_generation += 1
        self.tokenizer, self.tokenizer_error = None, ""
        self._tokens_key = self._tokens_running = None
        self.summary.model, self.summary.lengths = ref, None
        self.summary.template = None
        self._cancel("tokens")
        self._clear_training()
        if self.store is not None:
            self.store.reset_tokens()
        self._start("tokenizer", self._load_tokenizer(ref, self.services),
                    Phase(f"Loading the tokenizer of {ref}"))

    @work(thread=True, exclusive=True, group="tokenizer", exit_on_error=False)
    def _load_tokenizer(self, ref: str, services: DatasetServices) -> Any:
        """Load the tokenizer (the first use of the bundled model converts it, ~30 s)."""
        tokenizer = services.load_tokenizer(ref)
        tasks.settle_heap()
        return tokenizer

    def _tokenizer_finished(self, tokenizer: Any, error: BaseException | None) -> None:
        self.phases.pop("tokenizer", None)
        if error is not None:
            self.tokenizer_error = str(error)
            self.notify(str(error), title="Cannot load the tokenizer", severity="error",
                        timeout=8)
        else:
            self.tokenizer = tokenizer
        self._notice(self.TokenizerLoaded())
        self.schedule()

    def schedule(self) -> None:
        """Start what is due once rows are read: token counts, then what training does with
        the rows at the config's max length and loss mask, and the content checks of the
        config's split (each again when its settings changed)."""
        if self.store is None or not self.read_done:
            return
        key = (self._generation, self._token_generation)
        if self.tokenizer is not None and key not in (self._tokens_key, self._tokens_running):
            self._tokens_running = key
            self._start("tokens", self._count_tokens(self.tokenizer, self.store, key,
                                                     self.options),
                        Phase("Counting tokens", total=len(self.store)))
            return
        settled = self._tokens_key == key or (self.tokenizer is None
                                              and "tokenizer" not in self.phases)
        config = self.app.config
        training = (*key, self.options, config.data.max_length, config.data.assistant_only_loss)
        if self._training_key not in (None, training):
            self._clear_training()
        if self._tokens_key == key and self.tokenizer is not None and self._training_key is None:
            self._training_key = training
            self._start("training", self._check_training(
                self.tokenizer, self.store, training, self.services),
                Phase(f"Rendering rows at max_length {config.data.max_length:,}",
                      total=len(self.store) - self.store.dropped))
        checks = (self._generation, config.data.validation_fraction, config.optim.seed)
        if settled and self._checks_key != checks:
            if self._checks_key is not None and self._checks_key[0] == self._generation:
                self.store.clear_findings()  # another split of the same rows: check again
                self.summary.checks = None
                self._notice(self.FindingsCleared())
            self._checks_key = checks
            self._start("checks", self._check(self.store, checks[1], checks[2]),
                        Phase("Checking duplicates, refusals and leakage"))

    @work(thread=True, exclusive=True, group="tokens", exit_on_error=False)
    def _count_tokens(self, tokenizer: Any, store: RowStore, key: tuple[int, int],
                      options: RenderOptions) -> None:
        """Say which template is in force, then count every kept row's tokens in batches."""
        worker = get_current_worker()
        self.post_message(self.TemplateChecked(key, tasks.template_in_force(tokenizer, options)))
        for start, counts in tasks.count_chunks(tokenizer, store, lambda: worker.is_cancelled,
                                                options):
            self.post_message(self.TokensCounted(key, start, counts))

    @on(TemplateChecked)
    def template_checked(self, message: TemplateChecked) -> None:
        """Keep which template and system prompt are in force."""
        if message.key != (self._generation, self._token_generation):
            message.stop()
            return
        self.summary.template = message.info

    # --- what training does with the rows ---------------------------------------------------

    def _clear_training(self) -> None:
        """Forget the training outcome (the settings changed); it runs again when due."""
        self._cancel("training")
        had = self._training_key is not None
        self._training_key = None
        self.summary.training = None
        if self.store is not None and (had or self.store.training or self.store.file_problems):
            self.store.clear_training()
            self._notice(self.TrainingCleared())

    @work(thread=True, exclusive=True, group="training", exit_on_error=False)
    def _check_training(self, tokenizer: Any, store: RowStore, key: tuple,
                        services: DatasetServices) -> TrainingOutcome | None:
        """Render every kept row as training will (:func:`tui.dataset_tasks.check_training`)."""
        worker = get_current_worker()
        options, max_length, assistant_only_loss = key[-3:]
        return tasks.check_training(
            tokenizer, store, max_length, assistant_only_loss, services.render_rows,
            lambda done: self.post_message(self.TrainingProgress(key, done)),
            lambda: worker.is_cancelled, options)

    @on(TrainingProgress)
    def training_progress(self, message: TrainingProgress) -> None:
        """Show how far the rendering is."""
        message.stop()
        phase = self.phases.get("training")
        if message.key == self._training_key and phase is not None:
            phase.done = message.done
            phase.detail = f"{message.done:,} of {phase.total or 0:,.0f} rows"

    def _training_finished(self, result: TrainingOutcome | None,
                           error: BaseException | None) -> None:
        self.phases.pop("training", None)
        if error is not None:
            self.notify(f"Rendering the rows failed: {type(error).__name__}: {error}",
                        severity="error")
        found = error is None and result is not None and self.store is not None
        if found:
            self.store.add_training(result.problems)
            self.summary.training = result
        self._notice(self.TrainingChecked(found))

    @on(TokensCounted)
    def tokens_counted(self, message: TokensCounted) -> None:
        """Store the counts."""
        if message.key != (self._generation, self._token_generation) or self.store is None:
            message.stop()
            return
        self.store.set_tokens(message.start, message.counts)
        done = message.start + len(message.counts)
        phase = self.phases.get("tokens")
        if phase is not None:
            phase.done, phase.detail = done, f"{done:,} of {len(self.store):,} rows"
        self.summary.counted = done

    def _tokens_finished(self, error: BaseException | None) -> None:
        self.phases.pop("tokens", None)
        if error is not None:
            self.notify(f"Counting tokens failed: {type(error).__name__}: {error}",
                        severity="error")
        else:
            self._tokens_key = self._tokens_running
        self._tokens_running = None
        self._notice(self.CountingFinished())
        self.schedule()

    @work(thread=True, exclusive=True, group="checks", exit_on_error=False)
    def _check(self, store: RowStore, validation_fraction: float,
               seed: int) -> DatasetReport | None:
        """The content checks (:func:`tui.dataset_tasks.check_rows`); ``None`` if cancelled."""
        worker = get_current_worker()
        return tasks.check_rows(store, validation_fraction, seed, self.services.check_rows,
                                lambda: worker.is_cancelled)

    def _checks_finished(self, result: DatasetReport | None, error: BaseException | None) -> None:
        self.phases.pop("checks", None)
        if error is not None:
            self.notify(f"Checks failed: {type(error).__name__}: {error}", severity="error")
        found = error is None and result is not None and self.store is not None
        if found:
            self.store.add_findings(result.stats.findings)
            s = self.summary
            s.checks, s.checked_rows, s.kept = result.stats, result.checked, result.kept
            s.train_rows, s.val_rows = result.train_rows, result.val_rows
            s.source_findings = tasks.source_findings(self.store)
            if self._checks_key is not None:
                _, s.validation_fraction, s.seed = self._checks_key
        self._notice(self.ChecksFinished(found))

    # --- search -----------------------------------------------------------------------------

    def search(self, query: str) -> None:
        """Find the rows whose text contains ``query`` (any case); none for an empty one."""
        self.search_text = query
        self.search_hits = None
        self.workers.cancel_group(self, "search")  # stays the latest until another starts
        self.phases.pop("search", None)
        if self.store is None or not query or not self.read_done and not len(self.store):
            return
        self._start("search", self._search_rows(self.store, query.lower(), len(self.store)),
                    Phase(f"Searching for {query!r}", total=len(self.store)))

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search_rows(self, store: RowStore, query: str, upto: int) -> Any:
        """Indices of the first ``upto`` rows whose text contains ``query``."""
        worker = get_current_worker()
        return tasks.search_rows(store, query, upto, lambda: worker.is_cancelled)

    def _search_finished(self, hits: Any, error: BaseException | None) -> None:
        self.phases.pop("search", None)
        if error is not None:
            self.notify(f"Search failed: {type(error).__name__}: {error}", severity="error")
            return
        self.search_hits = hits
        self._notice(self.SearchFinished())

    # --- workers ----------------------------------------------------------------------------

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        """Route the latest worker of each group's result, or error, to its handler."""
        worker, state = event.worker, event.state
        if (state not in (WorkerState.SUCCESS, WorkerState.ERROR)
                or self._workers.get(worker.group) is not worker):
            return  # PENDING, RUNNING, CANCELLED (a newer run replaced it), or a stale run
        error = worker.error if state == WorkerState.ERROR else None
        group = worker.group
        if group == "read":
            self._read_finished(error)
        elif group == "tokenizer":
            self._tokenizer_finished(worker.result, error)
        elif group == "tokens":
            self._tokens_finished(error)
        elif group == "training":
            self._training_finished(worker.result, error)
        elif group == "checks":
            self._checks_finished(worker.result, error)
        elif group == "search":
            self._search_finished(worker.result, error)
        else:
            self.log.warning(f"worker group {group!r} ended ({state.name}) with no handler")
