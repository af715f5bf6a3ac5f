"""The review screen's setup view: review sets to reopen, and the form for a new review.

It shows what a workspace scan offers (:class:`core.review.ReviewChoices`) and says what the
user asked for in messages: :class:`ReviewSetup.Started` (the form, checked) and
:class:`ReviewSetup.SetChosen` (Enter on a set). The screen owns the scan and the open set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from core.generate import DEFAULT_BATCH_SIZE, GenerationSettings
from core.review import FILE_PROMPTS, GenerationJob, ReviewChoices


class ReviewSetup(Vertical):
    """Review sets of the workspace (Enter reopens one) over the new-review form."""

    generating: reactive[bool] = reactive(False)
    """A generation is running (bound to the screen's): the form does not start another."""
    choices: ReviewChoices | None = None
    """The scan shown, once there is one."""

    @dataclass
    class Started(Message):
        """The form asks for a new review set; ``job`` says what to generate."""

        job: GenerationJob

    @dataclass
    class SetChosen(Message):
        """Enter on a review set: reopen the set in ``path``."""

        path: Path

    def compose(self) -> ComposeResult:
        """The sets table, then one row per choice of the form and the Generate button."""
        yield Static("Review sets (Enter reopens at the first unjudged item)",
                     classes="review-heading")
        yield DataTable(id="review-sets", cursor_type="row", zebra_stripes=True)
        yield Static("", id="review-sets-empty")
        yield Static("New blind review: B is compared against A", classes="review-heading")
        for label, select_id, prompt in (("Model A", "review-model-a", "choose model A"),
                                         ("Model B", "review-model-b", "choose model B"),
                                         ("Prompts", "review-prompts", "choose prompts")):
            with Horizontal(classes="review-row"):
                yield Label(label, classes="review-label")
                yield Select([], id=select_id, compact=True, allow_blank=True, prompt=prompt)
        with Horizontal(classes="review-row"):
            yield Label("File", classes="review-label")
            yield Input(placeholder="dataset path (when Prompts is 'file')",
                        id="review-prompts-path", compact=True)
        with Horizontal(classes="review-row", id="review-settings-row"):
            yield Label("Tokens", classes="review-label")
            yield Input(str(GenerationSettings.max_new_tokens), id="review-max-new-tokens",
                        type="integer", compact=True, classes="review-number")
            yield Label("Temp", classes="review-small-label")
            yield Input("0", id="review-temperature", type="number", compact=True,
                        classes="review-number")
            yield Label("Batch", classes="review-small-label")
            yield Input(str(DEFAULT_BATCH_SIZE), id="review-batch-size", type="integer",
                        compact=True, classes="review-number")
            yield Label("Limit", classes="review-small-label")
            yield Input("", placeholder="all", id="review-limit", type="integer",
                        compact=True, classes="review-number")
        with Horizontal(classes="review-row", id="review-start-row"):
            yield Button("Generate (ctrl+g)", id="review-start", variant="primary", compact=True)
            yield Static("", id="review-setup-note")

    def on_mount(self) -> None:
        """Name the columns of the sets table."""
        sets = self.query_one("#review-sets", DataTable)
        for label, key in (("Set", "name"), ("Judged", "judged"), ("A", "a"), ("B", "b")):
            sets.add_column(label, key=key)

    def note(self, text: str, error: bool = False) -> None:
        """Show a line beside the Generate button (red for a problem to fix)."""
        self.query_one("#review-setup-note", Static).update(
            Text(text, style="bold red" if error else "dim"))

    def show_choices(self, choices: ReviewChoices) -> None:
        """List the sets and offer the models and prompts; choices still on offer are kept."""
        self.choices = choices
        table = self.query_one("#review-sets", DataTable)
        table.clear()
        for info in choices.sets:
            table.add_row(info.name, f"{info.judged}/{info.total}", info.label_a, info.label_b,
                          key=str(info.path))
        selects = {"#review-model-a": (choices.models, choices.default_a),
                   "#review-model-b": (choices.models, choices.default_b),
                   "#review-prompts": (choices.prompts, choices.prompts[0][1])}
        for selector, (options, default) in selects.items():
            select = self.query_one(selector, Select)
            current = select.value
            select.set_options(options)
            values = [value for _, value in options]
            select.value = current if current in values else default
        table.display = bool(choices.sets)
        empty = self.query_one("#review-sets-empty", Static)
        empty.display = not choices.sets
        empty.update(Text(f"None yet in {choices.workspace}/. Start one below.", style="dim"))

    def choose_run(self, run_dir: Path) -> None:
        """Choose the run's output as B, its base as A and its validation split as prompts."""
        preset = self.choices.for_run(run_dir) if self.choices is not None else None
        if preset is None:
            self.note(f"Run {run_dir.name} has no final output to review yet.")
            return
        a, b, prompts = preset
        self.query_one("#review-model-b", Select).value = b
        if a is not None:
            self.query_one("#review-model-a", Select).value = a
        if prompts is not None:
            self.query_one("#review-prompts", Select).value = prompts

    @on(DataTable.RowSelected, "#review-sets")
    def set_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a review set asks the screen to reopen it."""
        event.stop()
        self.post_message(self.SetChosen(Path(str(event.row_key.value))))

    @on(Button.Pressed, "#review-start")
    def start_pressed(self) -> None:
        """The Generate button."""
        self.submit()

    def _read_settings(self) -> tuple[GenerationSettings, int | None] | str:
        """The settings from the form, or what is wrong with them."""
        def number(selector: str, kind: type, default: Any) -> Any:
            """The input's value as ``kind``, or ``default`` when empty."""
            text = self.query_one(selector, Input).value.strip()
            return kind(text) if text else default

        try:
            settings = GenerationSettings(
                max_new_tokens=number("#review-max-new-tokens", int, GenerationSettings.max_new_tokens),
                temperature=number("#review-temperature", float, 0.0),
                batch_size=number("#review-batch-size", int, DEFAULT_BATCH_SIZE),
            )
            limit = number("#review-limit", int, None)
        except ValueError as exc:
            return f"Settings must be numbers: {exc}."
        problems = settings.problems()
        if limit is not None and limit < 1:
            problems.append("limit must be at least 1. Fix: leave it empty for all prompts.")
        return " ".join(problems) if problems else (settings, limit)

    def submit(self) -> None:
        """Check the form; post :class:`Started`, or say what to fix beside the button."""
        if self.generating:
            self.notify("A generation is already running.", severity="warning")
            return
        if self.choices is None:
            self.note("Still reading the workspace; try again in a moment.")
            return
        read = self._read_settings()
        if isinstance(read, str):
            self.note(read, error=True)
            return
        settings, limit = read
        choices = []
        for selector, what in (("#review-model-a", "model A"), ("#review-model-b", "model B"),
                               ("#review-prompts", "the prompts")):
            value = self.query_one(selector, Select).value
            if not isinstance(value, tuple):
                self.note(f"Choose {what}.", error=True)
                return
            choices.append(value)
        choice_a, choice_b, (kind_p, p) = choices
        if choice_a == choice_b:
            self.note("Model A and model B are the same; choose two different models.", error=True)
            return
        if (kind_p, p) == FILE_PROMPTS:
            p = self.query_one("#review-prompts-path", Input).value.strip()
            if not p:
                self.note("Type the path of a prompts file, or choose other prompts.", error=True)
                return
        source = f"val:{p}" if kind_p == "val" else p
        self.note("Preparing…")
        self.post_message(self.Started(GenerationJob(
            settings=settings, choice_a=choice_a, choice_b=choice_b, prompts=source, limit=limit,
            workspace=self.choices.workspace)))
