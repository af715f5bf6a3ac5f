"""The review screen's judge view: one item, the prompt over two answers "Left" and "Right".

Side by side, or stacked below 100 columns (the screen's ``-narrow`` class). It renders the
item the screen points at and names the models only once the set is revealed; the keys that
judge are the screen's, which owns the set and writes every verdict.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from core.generate import GenerationSettings
from core.review import VERDICT_LABELS, ReviewItem, ReviewSet
from tui.widgets.review_pane import ReviewTextPane, render_conversation

MARK_FOR_OUTCOME = {"tie": ("tie", "tie"), "both_bad": ("bad", "bad"), "skip": ("skip", "skip")}
"""Pane marks (left, right) for verdicts that are not a side."""


def pane_titles(review: ReviewSet, item: ReviewItem) -> tuple[str, str]:
    """Pane titles: ``Left``/``Right``, with the model once revealed."""
    if not review.revealed:
        return "Left", "Right"
    meta = review.meta
    names = {"a": f"A: {meta['a'].get('label', '')}", "b": f"B: {meta['b'].get('label', '')}"}
    left = names["a"] if item.a_side == "left" else names["b"]
    right = names["b"] if item.a_side == "left" else names["a"]
    return f"Left · {left}", f"Right · {right}"


class ReviewJudge(Vertical):
    """The counter and progress, the settings, the prompt, the reference and both answers."""

    show_reference: reactive[bool] = reactive(False)
    """The reference answer pane is open (bound to the screen's)."""
    show_system: reactive[bool] = reactive(False)
    """The system prompt is shown whole (bound to the screen's); one line otherwise."""

    def compose(self) -> ComposeResult:
        """Status line, settings line, prompt, reference, then the two answers."""
        with Horizontal(id="review-status"):
            yield Static("", id="review-counter")
            yield ProgressBar(id="review-progress", show_eta=False)
        yield Static("", id="review-settings")
        yield ReviewTextPane("Prompt", id="review-prompt")
        yield ReviewTextPane("Reference answer", id="review-reference")
        with Container(id="review-outputs"):
            yield ReviewTextPane("Left", id="review-left")
            yield ReviewTextPane("Right", id="review-right")

    def watch_show_reference(self, show: bool) -> None:
        """Open or close the reference pane."""
        self.query_one("#review-reference").display = show

    def show_status(self, review: ReviewSet | None, index: int, status: str,
                    generating: bool) -> None:
        """The counter (item, judged, ready), the progress of generation and the settings."""
        counter = self.query_one("#review-counter", Static)
        bar = self.query_one("#review-progress", ProgressBar)
        if review is None:
            counter.update("")
            return
        judged = len(review.verdicts)
        verdict = review.verdict(index)
        mark = f" · {VERDICT_LABELS[verdict]}" if verdict else ""
        ready = "" if review.complete else f" · {len(review.items)} ready"
        counter.update(Content.assemble(
            (f"Item {index + 1}/{review.total}", "bold"),
            f" · judged {judged}/{review.total}{ready}",
            (mark, "bold $text-success"),
        ))
        bar.display = generating or not review.complete
        bar.update(total=review.total, progress=len(review.items))
        settings = GenerationSettings.from_dict(review.meta.get("generation", {}))
        source = review.meta.get("prompts", {}).get("source", "")
        line = f"{settings.describe()} · prompts: {source}"
        if status and (generating or not review.complete):
            line = f"{status}  ·  {line}"
        self.query_one("#review-settings", Static).update(Text(line, style="dim"))

    def show_item(self, review: ReviewSet | None, index: int, status: str) -> None:
        """Item ``index`` with its verdict marked on the panes, or ``status`` while none is ready."""
        prompt = self.query_one("#review-prompt", ReviewTextPane)
        left = self.query_one("#review-left", ReviewTextPane)
        right = self.query_one("#review-right", ReviewTextPane)
        item = review.items.get(index) if review is not None else None
        if review is None or item is None:
            prompt.content = Text(status or "Waiting for the first pairs…", style="dim")
            left.content = right.content = ""
            left.mark = right.mark = ""
            return
        prompt.content = render_conversation(item.messages, self.show_system)
        prompt.border_title = f"Prompt {item.index + 1}"
        self.query_one("#review-reference", ReviewTextPane).content = (
            item.reference if item.reference is not None
            else Text("(no reference answer for this prompt)", style="dim"))
        left.content = item.left or Text("(empty answer)", style="dim italic")
        right.content = item.right or Text("(empty answer)", style="dim italic")
        left.border_title, right.border_title = pane_titles(review, item)
        verdict = review.verdict(item.index)
        if verdict in ("left", "right"):
            left.mark = "better" if verdict == "left" else "worse"
            right.mark = "better" if verdict == "right" else "worse"
        else:
            left.mark, right.mark = MARK_FOR_OUTCOME.get(verdict or "", ("", ""))
