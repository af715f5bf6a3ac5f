"""The dataset's rows: a compact store and a virtual table that draws only the visible lines.

A million rows must scroll as smoothly as ten, and filtering must not rebuild widgets, so
``RowStore`` keeps rows in flat arrays (line numbers, flag bits, token counts) beside the
normalised rows packed as tuples of strings, and ``RowTable`` is a Line-API ``ScrollView``:
it renders the handful of rows on screen from the store and an optional filtered *view* (an
array of row indices). The store is written on the UI thread only (workers post batches).

Why tuples: ``core.data.Example`` objects (a dataclass holding a list) are tracked by the
cycle collector, and a million of them made each full collection, and freeing the dataset,
freeze the UI for seconds (bench/dataset_open.py). Tuples of strings are untracked; examples
are rebuilt on demand, a batch or a row at a time.
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections import Counter
from collections.abc import Sequence
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.data import Example, Problem, SourceReport, position_unit
from core.rows import Packed, RowBatch, turn_text, turns, unpack

ERROR = 1
"""Flag bit: the row has an error and was dropped."""
WARNING = 2
"""Flag bit: the row is kept with a warning from reading (a last turn with no answer...)."""
DUPLICATE = 4
"""Flag bit: the row repeats an earlier row exactly or nearly (or leaks into validation)."""
FINDING = 8
"""Flag bit: the content checks found something (refusal, short answer, duplicate...)."""
UNTRAINED = 16
"""Flag bit: training drops the row at the settings in force (no trained token, refused)."""
TRAINING_WARNING = 32
"""Flag bit: training keeps the row with a warning (end-of-turn token not trained...)."""
TRAINING_BITS = UNTRAINED | TRAINING_WARNING
PROBLEM_BITS = ERROR | WARNING | DUPLICATE | FINDING | TRAINING_BITS
"""A row with any of these has a problem."""
_KEEP_READ_BITS = bytes(f & (ERROR | WARNING | TRAINING_BITS) for f in range(256))
"""``bytes.translate`` table that clears the content-check bits of every row at once."""
_CLEAR_TRAINING_BITS = bytes(f & ~TRAINING_BITS for f in range(256))
"""``bytes.translate`` table that clears the training bits of every row at once."""

TOKENS_UNKNOWN = -1
"""Token count not computed yet."""
TOKENS_FAILED = -2
"""The chat template rejected the row, so it has no token count."""

DUPLICATE_FIELDS = ("exact_duplicate", "near_duplicate", "leakage")
"""``Problem.field`` values of :func:`core.data.dataset_stats` findings that mark duplicates."""

CHAT_COLUMNS = ("system", "user", "assistant")
COLUMNS = {
    "messages": CHAT_COLUMNS,
    "sharegpt": CHAT_COLUMNS,
    "alpaca": ("prompt", "answer"),
    "prompt_completion": ("prompt", "answer"),
    "text": ("text",),
}
"""Content columns shown for each data format."""
COLUMN_WEIGHTS = {"system": 1, "user": 2, "assistant": 2, "prompt": 1, "answer": 1, "text": 1}
"""Share of the free width each content column gets."""
COLUMN_ROLES = {"prompt": "user", "answer": "assistant"}
"""The chat role whose first turn a prompt/answer column shows."""

CELL_CHARS = 400
"""Characters of a turn looked at for a cell; the rest could never fit on one line."""
RELEASE_CHUNK = 20_000
"""Rows freed per step by :meth:`RowStore.release`."""
_FLATTEN = str.maketrans({"\n": " ⏎ ", "\r": " ", "\t": " "})

def flatten(text: str) -> str:
    """One line of cell text: newlines shown as ⏎, tabs and carriage returns as spaces."""
    return text[:CELL_CHARS].translate(_FLATTEN)


def short_reason(problem: Problem) -> str:
    """The kind of a problem without its details: ``malformed JSON``, ``unknown role 'bot'``."""
    return problem.message.split(":")[0].rstrip(".")[:60]


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` cells."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return text.rjust(width) if right else set_cell_size(text, width)


class RowStore:
    """Every row read from a dataset file, kept rows and dropped ones, in file order."""

    def __init__(self, source: str, kind: str, format: str, reason: str) -> None:  # noqa: A002
        self.source = source
        """The file as shown in messages."""
        self.kind = kind
        """How it is read: jsonl, json, csv, tsv, parquet, dataset or dataset_dict."""
        self.format = format
        """Detected (or configured) format: messages, sharegpt, alpaca, ..."""
        self.format_reason = reason
        """Why that format, as ``core.data.detect_format`` says."""
        self.columns = COLUMNS.get(format, CHAT_COLUMNS)
        """The content columns the table shows for this format."""
        self.rows: list[Packed] = []
        """Every row, packed (``None`` where dropped)."""
        self.lines = array("q")
        """Per row, its JSONL line (or row number), increasing."""
        self.flags = bytearray()
        """Per row, its :data:`ERROR`, :data:`WARNING`, :data:`DUPLICATE`, :data:`FINDING` bits."""
        self.tokens = array("i")
        """Per row, its token count, :data:`TOKENS_UNKNOWN` or :data:`TOKENS_FAILED`."""
        self.problems: dict[int, list[Problem]] = {}
        """Problems met reading each row, by row index."""
        self.findings: dict[int, list[Problem]] = {}
        """Content-check findings, by row index."""
        self.training: dict[int, list[Problem]] = {}
        """What training does wrong with each row at the settings in force (dropped, EOS not
        trained), by row index (:func:`core.data.training_outcome`)."""
        self.file_problems: list[Problem] = []
        """Problems of the whole file at those settings (the model has no chat template)."""
        self.raw: dict[int, Any] = {}
        """The raw data of dropped rows, by row index."""
        self.dropped = 0
        """Rows dropped because of an error."""
        self.drop_reasons: Counter[str] = Counter()
        """Dropped rows by the short reason of their first error."""
        self.sources: list[SourceReport] = []
        """In a mix, each source with its rows read, kept, dropped and used; else empty."""
        self.source_of = bytearray()
        """In a mix, per row, the index of its source in :attr:`sources`."""
        self.origin_lines = array("q")
        """In a mix, per row, its line (or row number) in its source; :attr:`lines` then
        number the rows of the mix."""

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, batch: RowBatch) -> None:
        """Append a batch of rows read by a worker."""
        start = len(self.lines)
        self.rows.extend(batch.rows)
        self.lines.extend(batch.lines)
        self.tokens.extend([TOKENS_UNKNOWN] * len(batch))
        flags = bytearray(len(batch))
        for offset, found in batch.problems.items():
            self.problems[start + offset] = list(found)
            flags[offset] = WARNING
        for offset, packed in enumerate(batch.rows):
            if packed is None:
                flags[offset] = ERROR
                self.dropped += 1
                errors = [p for p in batch.problems.get(offset, ()) if p.severity == "error"]
                self.drop_reasons[short_reason(errors[0]) if errors else "unreadable row"] += 1
        self.flags.extend(flags)
        for offset, data in batch.raw.items():
            self.raw[start + offset] = data
        self.source_of.extend(batch.sources)
        self.origin_lines.extend(batch.origins)

    @property
    def unit(self) -> str:
        """What :attr:`lines` count: ``line`` (JSONL text lines) or ``row`` (other formats)."""
        return position_unit(self.source)

    def origin(self, index: int) -> tuple[str, int] | None:
        """In a mix, the source and line (or row number) row ``index`` came from."""
        if index >= len(self.origin_lines):
            return None
        return self.sources[self.source_of[index]].label, self.origin_lines[index]

    def row_for_line(self, line: int) -> int | None:
        """The row read from ``line`` (JSONL line or row number), if any."""
        index = bisect.bisect_left(self.lines, line)
        if index < len(self.lines) and self.lines[index] == line:
            return index
        return None

    def add_findings(self, findings: Sequence[Problem]) -> None:
        """Attach content-check findings to their rows and set the warning/duplicate bits."""
        for problem in findings:
            if problem.line is None:
                continue
            index = self.row_for_line(problem.line)
            if index is None:
                continue
            self.findings.setdefault(index, []).append(problem)
            self.flags[index] |= FINDING | (DUPLICATE if problem.field in DUPLICATE_FIELDS else 0)

    def clear_findings(self) -> None:
        """Forget the content-check findings (the checks run again, e.g. on another split)."""
        self.findings.clear()
        self.flags = bytearray(self.flags.translate(_KEEP_READ_BITS))

    def add_training(self, problems: Sequence[Problem]) -> None:
        """Attach what training does wrong with rows at the settings in force, and set the
        :data:`UNTRAINED` (error: dropped) or :data:`TRAINING_WARNING` bits. ``problems``
        name rows by :attr:`lines`; in a mix each is renamed to its row's own source and line."""
        for problem in problems:
            if problem.line is None:
                self.file_problems.append(problem)
                continue
            index = self.row_for_line(problem.line)
            if index is None:
                continue
            origin = self.origin(index)
            if origin is not None:  # in a mix: the row's own source and line, as training says
                problem = replace(problem, source=origin[0], line=origin[1])
            self.training.setdefault(index, []).append(problem)
            self.flags[index] |= UNTRAINED if problem.severity == "error" else TRAINING_WARNING

    def clear_training(self) -> None:
        """Forget the training problems (another max length, model or loss mask)."""
        self.training.clear()
        self.file_problems.clear()
        self.flags = bytearray(self.flags.translate(_CLEAR_TRAINING_BITS))

    @property
    def problem_rows(self) -> set[int]:
        """Indices of the rows with any problem listed."""
        return {*self.problems, *self.findings, *self.training}

    def problem_count(self) -> int:
        """Problems listed, of every row and of the whole file."""
        return len(self.file_problems) + sum(
            len(v) for d in (self.problems, self.findings, self.training) for v in d.values())

    def row_problems(self, index: int) -> list[Problem]:
        """Everything wrong with row ``index``: reading problems, findings, then training."""
        return (self.problems.get(index, []) + self.findings.get(index, [])
                + self.training.get(index, []))

    def set_tokens(self, start: int, counts: Sequence[int | None]) -> None:
        """Store token counts of rows ``start..``; ``None`` marks a row the template rejected."""
        self.tokens[start:start + len(counts)] = array(
            "i", (TOKENS_FAILED if c is None else c for c in counts))

    def reset_tokens(self) -> None:
        """Forget every token count (another tokenizer counts differently)."""
        self.tokens = array("i", [TOKENS_UNKNOWN]) * len(self.lines)

    def example(self, index: int) -> Example | None:
        """Row ``index`` as an :class:`core.data.Example` (``None`` if it was dropped)."""
        return unpack(self.lines[index], self.rows[index])

    def examples(self, start: int = 0, stop: int | None = None) -> Iterator[Example]:
        """The kept rows among ``start..stop`` as examples, in order."""
        lines, rows = self.lines, self.rows
        for index in range(start, len(rows) if stop is None else min(stop, len(rows))):
            if rows[index] is not None:
                yield unpack(lines[index], rows[index])  # type: ignore[misc]

    def release(self) -> None:
        """Free every row a slice at a time: dropping a million rows in one go holds the GIL
        for seconds. The store is empty afterwards."""
        while self.rows:
            del self.rows[-RELEASE_CHUNK:]
        self.problems.clear()
        self.findings.clear()
        self.training.clear()
        self.file_problems.clear()
        self.raw.clear()
        self.lines = array("q")
        self.flags = bytearray()
        self.tokens = array("i")
        self.source_of = bytearray()
        self.origin_lines = array("q")

    def cell(self, index: int, column: str) -> str:
        """The text of one content cell (the first turn of that role), on one line."""
        packed = self.rows[index]
        if packed is None:
            return ""
        if isinstance(packed, str):
            return flatten(packed)
        role = COLUMN_ROLES.get(column, column)
        for turn in turns(packed):
            if turn[0] == role:
                return flatten(turn_text(turn))
        return ""

    def error_text(self, index: int) -> str:
        """The first error of a dropped row, on one line."""
        errors = [p for p in self.problems.get(index, ()) if p.severity == "error"]
        if not errors:
            return "dropped"
        first = errors[0]
        where = f"{first.field}: " if first.field else ""
        return flatten(f"{where}{first.message}")

    def search_text(self, index: int) -> str:
        """Everything searchable in a row, lower-cased: its turns, or its raw data if dropped."""
        packed = self.rows[index]
        if packed is None:
            data = self.raw.get(index)
            return (data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)).lower()
        if isinstance(packed, str):
            return packed.lower()
        return "\n".join("\n".join(turn[1:]) for turn in turns(packed)).lower()

    def matching(self, mode: str, max_length: int) -> Any:
        """Indices of rows shown by filter ``mode`` (``problems``, ``long`` or ``duplicates``).

        Vectorised with numpy over the flat arrays: milliseconds for a million rows.
        """
        import numpy as np

        if mode == "long":
            tokens = np.frombuffer(self.tokens, dtype=np.int32) if len(self.tokens) else np.zeros(0)
            return np.flatnonzero(tokens > max_length)
        bits = {"problems": PROBLEM_BITS, "duplicates": DUPLICATE}[mode]
        flags = np.frombuffer(self.flags, dtype=np.uint8) if self.flags else np.zeros(0, np.uint8)
        return np.flatnonzero(flags & bits)


class RowMessage(Message):
    """A message about one row of a :class:`RowTable` (``row`` is the store index)."""

    def __init__(self, table: RowTable, row: int | None) -> None:
        super().__init__()
        self.table = table
        self.row = row

    @property
    def control(self) -> RowTable:
        """The table the message came from (for ``@on`` selectors)."""
        return self.table


class RowTable(ScrollView, can_focus=True):
    """Rows of a dataset: mark, line, one column per role, token count; a cursor row.

    Draws only what is on screen (the Line API), so its cost does not grow with the file.
    The cursor indexes the current *view*: every row, or the indices a filter selected.
    """

    COMPONENT_CLASSES = {
        "row-table--header",
        "row-table--cursor",
        "row-table--error",
        "row-table--warning",
        "row-table--duplicate",
        "row-table--long",
        "row-table--dim",
    }
    DEFAULT_CSS = """
    RowTable {
        background: $surface;
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        & > .row-table--header { text-style: bold; color: $text-accent; background: $panel; }
        & > .row-table--cursor { background: $surface-lighten-2; }
        &:focus > .row-table--cursor { background: $block-cursor-background;
                                       color: $block-cursor-foreground; }
        & > .row-table--error { color: $text-error; }
        & > .row-table--warning { color: $text-warning; }
        & > .row-table--duplicate { color: $text-accent; }
        & > .row-table--long { color: $text-warning; text-style: bold; }
        & > .row-table--dim { color: $text-muted; }
    }
    """

    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False, id="rows.up"),
        Binding("down", "cursor_down", "Down", show=False, id="rows.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="rows.page-up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="rows.page-down"),
        Binding("home", "first", "First row", show=False, id="rows.first"),
        Binding("end", "last", "Last row", show=False, id="rows.last"),
        Binding("enter", "select", "Row", id="rows.select"),
    ]
    """Move the cursor row; Enter opens its details."""

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)
    """Position of the cursor in the current view."""
    max_length: reactive[int] = reactive(512)
    """Token budget per row; longer rows' counts are highlighted."""

    class RowHighlighted(RowMessage):
        """The cursor moved to another row (``row`` is the store index, or ``None``)."""

    class RowSelected(RowMessage):
        """Enter was pressed on a row (``row`` is the store index)."""

        row: int

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.store: RowStore | None = None
        self.view: Any = None
        """Row indices shown (a numpy array), or ``None`` for every row."""
        self.empty_text = "No rows."
        """Shown when the store or the view is empty."""
        self._last_posted: int | None = -1
        """The row last announced; -1 forces the next announcement."""

    # --- data -------------------------------------------------------------------------------

    def __len__(self) -> int:
        if self.store is None:
            return 0
        return len(self.store) if self.view is None else len(self.view)

    def row_at(self, position: int) -> int | None:
        """The store index shown at ``position`` of the view."""
        if not 0 <= position < len(self):
            return None
        return position if self.view is None else int(self.view[position])

    @property
    def current_row(self) -> int | None:
        """Store index of the cursor row."""
        return self.row_at(self.cursor)

    def set_store(self, store: RowStore | None) -> None:
        """Show another dataset, cursor on its first row."""
        self.store = store
        self.view = None
        self._last_posted = -1
        self.scroll_to(y=0, animate=False, immediate=True)
        self._resized()
        self.cursor = 0

    def set_view(self, view: Any) -> None:
        """Show only the rows ``view`` lists (``None``: every row); the cursor stays on its row
        when it is still shown, else moves to the next shown row."""
        row = self.current_row
        self.view = view
        self._resized()
        if row is None:
            self.cursor = 0
        elif view is None:
            self.cursor = row
        else:
            self.cursor = min(bisect.bisect_left(view, row), max(len(view) - 1, 0))
        self._scroll_to_cursor()
        self.refresh()

    def rows_added(self) -> None:
        """The store or the view grew (rows read, tokens counted): redraw."""
        self._resized()
        if self._last_posted is None and len(self):
            self.cursor = self.cursor  # the first rows arrived: announce the cursor row
        self.refresh()

    def refresh_rows(self, start: int, stop: int) -> None:
        """Redraw if any store row in ``start..stop`` is on screen (token counts arrived)."""
        top = round(self.scroll_y)
        shown = [self.row_at(p) for p in range(top, min(top + self.page, len(self)))]
        if any(row is not None and start <= row < stop for row in shown):
            self.refresh()

    def show_row(self, row: int) -> bool:
        """Move the cursor to store row ``row``; ``False`` when the view does not show it."""
        if self.view is None:
            position = row if self.store is not None and row < len(self.store) else -1
        else:
            position = bisect.bisect_left(self.view, row)
            if position >= len(self.view) or int(self.view[position]) != row:
                position = -1
        if position < 0:
            return False
        self.cursor = position
        self._scroll_to_cursor(center=True)
        return True

    def _resized(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self) + 1)

    def on_resize(self) -> None:
        """Keep the virtual width equal to the visible width (no horizontal scrolling)."""
        self._resized()

    # --- cursor -----------------------------------------------------------------------------

    @property
    def page(self) -> int:
        """Rows visible at once (the header line excluded)."""
        return max(self.scrollable_content_region.height - 1, 1)

    def validate_cursor(self, cursor: int) -> int:
        """Clamp to the view."""
        return max(0, min(cursor, len(self) - 1))

    def watch_cursor(self) -> None:
        """Redraw and announce the new cursor row (once per row)."""
        self.refresh()
        row = self.current_row
        if row != self._last_posted:
            self._last_posted = row
            self.post_message(self.RowHighlighted(self, row))

    def watch_max_length(self) -> None:
        """Re-highlight counts against the new budget."""
        self.refresh()

    def _scroll_to_cursor(self, center: bool = False) -> None:
        top = round(self.scroll_y)
        if center:
            self.scroll_to(y=max(self.cursor - self.page // 2, 0), animate=False, immediate=True)
        elif self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + self.page:
            self.scroll_to(y=self.cursor - self.page + 1, animate=False, immediate=True)

    def _move(self, cursor: int) -> None:
        self.cursor = cursor
        self._scroll_to_cursor()

    def action_cursor_up(self) -> None:
        """Previous row."""
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        """Next row."""
        self._move(self.cursor + 1)

    def action_page_up(self) -> None:
        """One screen up."""
        self._move(self.cursor - self.page)

    def action_page_down(self) -> None:
        """One screen down."""
        self._move(self.cursor + self.page)

    def action_first(self) -> None:
        """First row."""
        self._move(0)

    def action_last(self) -> None:
        """Last row."""
        self._move(len(self) - 1)

    def action_select(self) -> None:
        """Open the cursor row's details."""
        row = self.current_row
        if row is not None:
            self.post_message(self.RowSelected(self, row))

    def on_click(self, event: events.Click) -> None:
        """Put the cursor on the clicked row."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        position = round(self.scroll_y) + offset.y - 1
        if position < len(self):
            self.cursor = position
            if event.chain == 2:
                self.action_select()

    # --- drawing ----------------------------------------------------------------------------

    def _widths(self, width: int) -> list[tuple[str, int]]:
        """Column names and widths filling ``width``: mark, line, contents, tokens."""
        assert self.store is not None
        line_width = max(len(str(self.store.lines[-1])) if len(self.store) else 1, 4)
        fixed = [("mark", 1), ("line", line_width)]
        tail = [("tokens", 6)]
        columns = self.store.columns
        free = width - sum(w for _, w in fixed + tail) - (len(columns) + 2)  # one-cell gaps
        weights = [COLUMN_WEIGHTS.get(c, 1) for c in columns]
        sizes = [max(free * w // sum(weights), 3) for w in weights]
        sizes[-1] += max(free - sum(sizes), 0)
        return fixed + list(zip(columns, sizes)) + tail

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the widget: the header, a row, or blank."""
        width = self.scrollable_content_region.width
        base = self.rich_style
        if self.store is None or not len(self):
            text = self.empty_text if y == 0 else ""
            return Strip([Segment(fit(text, width), base + self._part("dim"))], width)
        widths = self._widths(width)
        if y == 0:
            names = {"mark": "", "line": self.store.unit, "tokens": "tokens"}
            cells = [fit(names.get(n, n), w, right=n in ("line", "tokens")) for n, w in widths]
            return Strip([Segment(" ".join(cells),
                                  base + self._part("header"))],
                         width)
        position = round(self.scroll_y) + y - 1
        row = self.row_at(position)
        if row is None:
            return Strip.blank(width, base)
        return Strip(self._row_segments(row, widths, base, position == self.cursor), width)

    def _part(self, name: str) -> Style:
        """The style a component class adds (partial: the row's background shows through)."""
        return self.get_component_rich_style(f"row-table--{name}", partial=True)

    def _row_segments(self, row: int, widths: list[tuple[str, int]], base: Style,
                      is_cursor: bool) -> list[Segment]:
        store = self.store
        assert store is not None
        style = self._part
        if is_cursor:
            base = base + style("cursor")
        flags = store.flags[row]
        tokens = store.tokens[row]
        segments: list[Segment] = []
        contents = [name for name, _ in widths if name not in ("mark", "line", "tokens")]
        for name, w in widths:
            cell_style = base
            if name == "mark":
                if flags & (ERROR | UNTRAINED):
                    text, cell_style = "✗", base + style("error")
                elif flags & DUPLICATE:
                    text, cell_style = "≡", base + style("duplicate")
                elif flags & (WARNING | FINDING | TRAINING_WARNING):
                    text, cell_style = "!", base + style("warning")
                else:
                    text = " "
            elif name == "line":
                text, cell_style = fit(str(store.lines[row]), w, right=True), base + style(
                    "dim")
            elif name == "tokens":
                if flags & ERROR:
                    text = fit("", w)
                elif tokens == TOKENS_UNKNOWN:
                    text, cell_style = fit("·", w, right=True), base + style("dim")
                elif tokens == TOKENS_FAILED:
                    text, cell_style = fit("?", w, right=True), base + style("error")
                else:
                    text = fit(f"{tokens:,}", w, right=True)
                    if tokens > self.max_length:
                        cell_style = base + style("long")
            elif flags & ERROR:
                # a dropped row has no turns: its error spans the content columns
                if name != contents[0]:
                    continue
                span = sum(cw for cn, cw in widths if cn in contents) + len(contents) - 1
                text, cell_style = fit(store.error_text(row), span), base + style(
                    "error")
            else:
                text = fit(store.cell(row, name), w)
            if segments:
                segments.append(Segment(" ", base))
            segments.append(Segment(text, cell_style))
        return segments
