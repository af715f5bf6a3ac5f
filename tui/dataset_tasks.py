"""The dataset screen's slow work, done off the UI thread: plain functions over a row store.

Each function runs inside a thread worker of the screen's loader
(:class:`~tui.widgets.dataset_loader.DatasetLoader`) or Row pane
(:class:`~tui.widgets.row_detail.RowDetailPane`) and returns or yields values the worker
posts as messages: rows in batches (:func:`read_chunks`), token counts (:func:`count_chunks`),
what training does with every row at the max length and template in force
(:func:`check_training`), the content checks (:func:`check_rows`), a search
(:func:`search_rows`) and one row rendered for the model (:func:`render_row`). None of them
touches a widget. Long loops take a ``cancelled`` callable and stop when it says so. :class:`DatasetServices` holds what tests replace.
"""

from __future__ import annotations

import gc
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.data import (
    DataError,
    DatasetReport,
    DatasetStats,
    Example,
    Rendered,
    RenderOptions,
    TemplateInfo,
    TrainingOutcome,
)
from core.rows import (
    FIRST_PAGE,
    Opened,
    Progress,
    RowBatch,
    check_in_subprocess,
    outcome_in_subprocess,
    read_in_subprocess,
)
from tui.widgets.row_table import TOKENS_FAILED, TOKENS_UNKNOWN, RowStore

POST_SECONDS = 0.1
"""Shortest time between two batches posted by a worker (at most ~10 messages a second)."""
COUNT_NICE = 10
"""CPU priority drop of the token-counting threads, so keys are handled first (Linux)."""
GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of young objects once a tokenizer is loaded (Python's
default is 700; see :func:`settle_heap`)."""

Cancelled = Callable[[], bool]
"""Says whether the worker running a task was cancelled (a newer run replaced it)."""


def _load_tokenizer(ref: str) -> Any:
    """:func:`core.models.load_tokenizer`, imported on first use (it pulls in transformers)."""
    from core.models import load_tokenizer

    return load_tokenizer(ref)


@dataclass
class DatasetServices:
    """What the dataset screen calls; tests pass fakes via ``AppServices.dataset``."""

    load_tokenizer: Callable[[str], Any] = _load_tokenizer
    """The tokenizer for a model reference (the first use of the bundled model converts it)."""
    read_rows: Callable[[str, str], Iterator[Opened | Progress]] = read_in_subprocess
    """Rows of a dataset in batches; tests that patch ``core.data`` read in-process."""
    check_rows: Callable[..., DatasetStats | None] = check_in_subprocess
    """The content checks of ``(line, packed)`` rows (see :func:`core.rows.check_in_subprocess`)."""
    render_rows: Callable[..., TrainingOutcome | None] = outcome_in_subprocess
    """What training does with ``(line, packed)`` rows (see
    :func:`core.rows.outcome_in_subprocess`)."""


@dataclass
class ReadChunk:
    """Rows read since the last chunk, and how far the reader is."""

    batch: RowBatch
    done: float
    """Rows (or bytes) read so far, in the reader's unit."""
    total: float | None
    """The whole file in the same unit; ``None`` when unknown."""


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
    """Text beyond the max length (its start; empty unless truncated)."""
    error: str = ""
    """Why there is no rendering."""


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


def read_chunks(items: Iterator[Opened | Progress], cancelled: Cancelled
                ) -> Iterator[Opened | ReadChunk]:
    """The reader's output regrouped for the UI: its :class:`Opened` notice, the first page
    at once, then at most one chunk each :data:`POST_SECONDS`, and a last one with the totals.

    Closes ``items`` however it ends, which kills the reader process when cancelled.
    """
    import numpy  # noqa: F401  (filters and statistics need it: import it off the UI thread)

    pending, rows, last_post = RowBatch(), 0, 0.0
    try:
        for item in items:
            if cancelled():
                return
            if isinstance(item, Opened):
                yield item
                continue
            pending.extend(item.batch)
            rows += len(item.batch)
            now = time.monotonic()
            if rows == FIRST_PAGE or now - last_post >= POST_SECONDS:
                yield ReadChunk(pending, item.done, item.total)
                pending, last_post = RowBatch(), now
        yield ReadChunk(pending, rows, rows)
    finally:
        items.close()


def template_in_force(tokenizer: Any, options: RenderOptions | None = None
                      ) -> TemplateInfo | None:
    """Which template and system prompt rows get with ``options``, and how tool calls and
    reasoning are rendered; ``None`` when the template cannot be read."""
    from core.data import template_info

    try:
        return template_info(tokenizer, options)
    except DataError:
        return None


def check_training(tokenizer: Any, store: RowStore, max_length: int, assistant_only_loss: bool,
                   render: Callable[..., TrainingOutcome | None],
                   progress: Callable[[int], None], cancelled: Cancelled,
                   options: RenderOptions | None = None) -> TrainingOutcome | None:
    """Render every kept row as training will at ``max_length`` with ``options`` (template,
    system prompt, text chunking): which rows it keeps, drops or cuts, and where the
    end-of-turn token is trained (:func:`core.data.training_outcome`, the engine's own path).
    ``render`` is :attr:`DatasetServices.render_rows`, by default a child process killed when
    ``cancelled`` says so; ``None`` when cancelled.

    Every row, not a sample: ~2 ms a row, about a second for 640 rows and three minutes for
    100,000 in the background, with progress; a sample could not say how many rows are
    dropped, and the count of prompt tokens alone cannot tell which tokens the template marks.
    """
    lines, rows = store.lines, store.rows
    kept = [(lines[i], packed) for i, packed in enumerate(rows) if packed is not None]
    return render(tokenizer, kept, max_length, assistant_only_loss, store.source, progress,
                  cancelled, options)


def count_chunks(tokenizer: Any, store: RowStore, cancelled: Cancelled,
                 options: RenderOptions | None = None) -> Iterator[tuple[int, list[int]]]:
    """Every row's token count, as ``(first store index, counts)`` at most each
    :data:`POST_SECONDS`: dropped rows count :data:`TOKENS_UNKNOWN`, rows the template
    rejects :data:`TOKENS_FAILED`.

    Takes the store, not its list of examples: ``@work`` writes every argument's repr into
    the worker's description, on the UI thread.
    """
    from core.tokens import COUNT_BATCH, iter_token_counts

    rows = store.rows  # complete: counting starts once every row is read

    def batches() -> Iterator[list[Example]]:
        for start in range(0, len(rows), COUNT_BATCH):
            if cancelled():
                return
            yield list(store.examples(start, start + COUNT_BATCH))

    start = posted = 0
    pending: list[int] = []
    last_post = time.monotonic()
    for counts in iter_token_counts(tokenizer, batches(), nice=COUNT_NICE, options=options):
        found = iter(counts)
        for packed in rows[start:start + COUNT_BATCH]:
            n = TOKENS_UNKNOWN if packed is None else next(found)
            pending.append(TOKENS_FAILED if n is None else n)
        start += COUNT_BATCH
        now = time.monotonic()
        if now - last_post >= POST_SECONDS:
            yield posted, pending
            posted, pending, last_post = posted + len(pending), [], now
    if pending:
        yield posted, pending


def counted_lengths(store: RowStore) -> Any:
    """The token counts counted so far, as a numpy array (rows not counted are left out)."""
    import numpy as np

    tokens = np.frombuffer(store.tokens, dtype=np.int32)
    counted = tokens[tokens >= 0]
    del tokens  # release the buffer: the store's array must stay resizable
    return counted


def check_rows(store: RowStore, validation_fraction: float, seed: int,
               check: Callable[..., DatasetStats | None], cancelled: Cancelled
               ) -> DatasetReport | None:
    """Split as training will, then look for duplicates, refusals, short answers, leakage.

    :func:`core.data.dataset_report` splits and picks the rows to check, as for ``tunetop
    inspect``. ``check`` is :attr:`DatasetServices.check_rows`: by default ``dataset_stats`` in
    a child process, killed when ``cancelled`` says so (quitting, or opening another file, never
    waits for it). ``None`` when cancelled.
    """
    from core.data import dataset_report

    lines, rows = store.lines, store.rows
    # the kept rows' indices stand for the rows, so that only the checked rows are sent
    kept = [index for index, packed in enumerate(rows) if packed is not None]

    def run(train: list[int], val: list[int], source: str) -> DatasetStats | None:
        return check([(lines[i], rows[i]) for i in train], [(lines[i], rows[i]) for i in val],
                     source, cancelled)

    return dataset_report(kept, validation_fraction, seed, store.source, checks=run)


def source_findings(store: RowStore) -> list[dict[str, int]]:
    """In a mix, per source, the check findings of its rows by kind (``duplicate``,
    ``refusal``, ``short``, ``placeholder``, ``leakage``); empty for a single source."""
    from collections import Counter

    from core.data import finding_kind

    if not store.sources:
        return []
    counts: list[Counter[str]] = [Counter() for _ in store.sources]
    for index, found in store.findings.items():
        for problem in found:
            counts[store.source_of[index]][finding_kind(problem)] += 1
    return [dict(c) for c in counts]


def render_row(tokenizer: Any, example: Example, row: int, max_length: int,
               assistant_only_loss: bool, options: RenderOptions | None = None) -> RenderResult:
    """Render the row at the max length, with the start of what is cut off (rendering never
    tokenizes far past the max length, so a huge row costs no more than a short one)."""
    from core.data import render_example

    try:
        rendered = render_example(tokenizer, example, max_length, assistant_only_loss, options)
    except DataError as exc:
        return RenderResult(row, max_length, None, error=str(exc))
    return RenderResult(row, max_length, rendered, rendered.cut_text)


def search_rows(store: RowStore, query: str, upto: int, cancelled: Cancelled) -> Any:
    """Indices (a numpy array) of the first ``upto`` rows whose text contains ``query``
    (lower case); the hits so far when cancelled."""
    import numpy as np

    hits = array("q")
    for index in range(upto):
        if index % 10_000 == 0 and cancelled():
            break
        if query in store.search_text(index):
            hits.append(index)
    return np.frombuffer(hits, dtype=np.int64).copy()
