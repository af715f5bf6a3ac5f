"""One row in detail: the exact text the model sees with the loss mask, then its turns.

The templated text comes from :meth:`core.data.Rendered.segments`: trained runs are
highlighted, masked runs dimmed, and when the row is longer than ``max_length`` the part cut
off follows a marker, struck through. Styles are component classes, so they follow the theme.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.data import Example, Problem, Rendered

RAW_CHARS = 4000
"""Characters of a dropped row's raw data shown."""


@dataclass
class RowDetail:
    """Everything the detail pane shows about one row."""

    row: int
    """Index in the file's rows (0-based)."""
    line: int
    """JSONL line, or row number for other formats."""
    unit: str
    """What ``line`` counts: ``line`` or ``row`` (see :func:`core.data.position_unit`)."""
    example: Example | None
    """The normalised row; ``None`` when it was dropped."""
    raw: Any = None
    """The raw data of a dropped row."""
    problems: list[Problem] = field(default_factory=list)
    tokens: int | None = None
    """Token count from the statistics, shown until the row is rendered."""
    rendered: Rendered | None = None
    """The row rendered at ``max_length``."""
    cut_text: str = ""
    """Text beyond ``max_length`` (empty unless truncated)."""
    max_length: int = 512
    status: str = ""
    """Why there is no rendering yet (tokenizer loading, template error...)."""
    origin: str = ""
    """In a mix, where the row came from (``general.jsonl line 12``)."""


class TokenView(VerticalScroll, can_focus=True):
    """Scrollable detail of the selected row: problems, templated text with the mask, turns."""

    COMPONENT_CLASSES = {
        "token-view--title",
        "token-view--role",
        "token-view--trained",
        "token-view--masked",
        "token-view--cut",
        "token-view--error",
        "token-view--warning",
        "token-view--muted",
    }
    DEFAULT_CSS = """
    TokenView {
        padding: 0 1;
        scrollbar-size-vertical: 1;
        & > .token-view--title { text-style: bold; color: $text-primary; }
        & > .token-view--role { text-style: bold; color: $text-secondary; }
        & > .token-view--trained { color: $text-success; background: $success-muted; }
        & > .token-view--masked { color: $text-muted; text-style: dim; }
        & > .token-view--cut { color: $text-error; text-style: strike; }
        & > .token-view--error { color: $text-error; }
        & > .token-view--warning { color: $text-warning; }
        & > .token-view--muted { color: $text-muted; }
        & > #token-view-body { width: 1fr; height: auto; }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.detail: RowDetail | None = None
        """The row shown, if any."""

    def compose(self) -> ComposeResult:
        """One static body, replaced on every update."""
        yield Static("Select a row.", id="token-view-body")

    def show(self, detail: RowDetail | None, message: str = "") -> None:
        """Show ``detail``, or ``message`` when there is no row."""
        self.detail = detail
        body = self.query_one("#token-view-body", Static)
        if detail is None:
            body.update(Text(message or "Select a row.", style=self._style("muted")))
            return
        body.update(self._build(detail))

    def _style(self, name: str) -> Any:
        return self.get_component_rich_style(f"token-view--{name}", partial=True)

    def _build(self, d: RowDetail) -> RenderableType:
        parts: list[RenderableType] = []
        turns = len(d.example.messages) if d.example and d.example.messages else 0
        head = Text(f"{d.unit.capitalize()} {d.line}", style=self._style("title"))
        # a JSONL line and the row's position differ (blank lines); a row number is the row
        facts = ([f"row {d.row + 1}"] if d.unit == "line" else []) + (
            [f"{turns} turns"] if turns else []) + ([f"from {d.origin}"] if d.origin else [])
        if facts:
            head.append("  ")
            head.append("·  " + "  ·  ".join(facts), style=self._style("muted"))
        parts.append(head)
        for problem in d.problems:
            error = problem.severity == "error"
            mark = "✗ " if error else "! "
            where = f"{problem.field}: " if problem.field else ""
            parts.append(Text(f"{mark}{where}{problem.message} Fix: {problem.fix}",
                              style=self._style("error" if error else "warning")))
        if d.example is None:
            raw = d.raw if isinstance(d.raw, str) else json.dumps(d.raw, ensure_ascii=False,
                                                                  indent=1)
            parts.append(Text("\nDropped. The row as read:", style=self._style("title")))
            parts.append(Text(raw[:RAW_CHARS] + ("…" if len(raw) > RAW_CHARS else "")))
            return Group(*parts)
        parts.append(self._model_input(d))
        parts.append(Text("\nConversation" if turns else "\nText", style=self._style("title")))
        parts.append(self._turns(d.example))
        return Group(*parts)

    def _turns(self, example: Example) -> RenderableType:
        # Text, not a Rich table: the pane is rebuilt for every row the cursor rests on.
        if example.messages is None:
            return Text(example.text or "")
        text = Text()
        if example.tools:
            names = ", ".join(t.get("function", {}).get("name", "?") for t in example.tools)
            text.append(f"tools: {names}\n", style=self._style("muted"))
        for i, message in enumerate(example.messages):
            role = message["role"] + (f" ({message['name']})" if message.get("name") else "")
            text.append(("\n" if i else "") + role, style=self._style("role"))
            if message.get("train") is False:
                text.append("  weight 0: not trained", style=self._style("muted"))
            if message.get("reasoning_content"):
                text.append("\nthinking: " + message["reasoning_content"],
                            style=self._style("muted"))
            if message["content"]:
                text.append("\n" + message["content"])
            for call in message.get("tool_calls") or ():
                function = call["function"]
                text.append(f"\n→ {function['name']}("
                            f"{json.dumps(function['arguments'], ensure_ascii=False)})")
        return text

    def _model_input(self, d: RowDetail) -> RenderableType:
        # Gaps between differently styled runs are runs of their own: a run that starts with
        # spaces loses them in some SVG renderers ("Model input168 tokens" in screenshots).
        title = Text("\nModel input", style=self._style("title"))
        title.append("  ")
        r = d.rendered
        if r is None:
            tokens = f"{d.tokens:,} tokens  ·  " if d.tokens is not None and d.tokens >= 0 else ""
            title.append(f"{tokens}{d.status or 'rendering…'}", style=self._style("muted"))
            return title
        eos = ("EOS trained ✓" if r.eos_trained else "EOS not trained ✗")
        title.append(f"{r.full_tokens:,} tokens · {r.num_trained:,} trained · ",
                     style=self._style("muted"))
        title.append(eos, style=self._style("muted" if r.eos_trained else "warning"))
        title.append(" ")
        title.append(f"· max_length {d.max_length:,}", style=self._style("muted"))
        legend = Text("  ")
        legend.append("trained", style=self._style("trained"))
        legend.append("  ")
        legend.append("masked", style=self._style("masked"))
        if r.truncated:
            legend.append("  ")
            legend.append("cut off", style=self._style("cut"))
        body = Text()
        for text, trained in r.segments():
            body.append(text, style=self._style("trained" if trained else "masked"))
        parts: list[RenderableType] = [title, legend, body]
        if r.truncated:
            parts.append(Text(f"✂ max_length {d.max_length:,} cuts here: {r.tokens_lost:,} "
                              f"tokens lost", style=self._style("error")))
            parts.append(Text(d.cut_text, style=self._style("cut")))
        if r.chunked:
            parts.append(Text(f"Trained as {len(r.lengths())} rows of at most "
                              f"{d.max_length:,} tokens (data.text_chunking).",
                              style=self._style("muted")))
        for note in r.notes:
            parts.append(Text(f"! {note}", style=self._style("warning")))
        if r.template_note:
            parts.append(Text(f"! {r.template_note}", style=self._style("warning")))
        return Group(*parts)
