"""The review screen: blind A/B comparison of two models on the same prompts.

Three views in one screen:

- **setup**: reopen a review set of the workspace (Enter), or pick model A, model B and the
  prompts, the generation settings, and start (ctrl+g);
- **judge**: one item at a time, the prompt over two answers labelled only "Left" and
  "Right" (side by side, stacked below 100 columns). Each key press is written to
  ``judgements.jsonl`` and fsync-ed before the screen moves on. Generation runs in a thread
  worker, batch by batch, so reviewing starts as soon as the first pairs exist;
- **results**: counts of B against A, the win rate with its 95% Wilson interval, and after
  reveal (asked for, then confirmed) the per-item table with the automatic checks.

Generation is injectable: ``app.services.review_generator`` replaces
:func:`core.generate.generate_pairs` (tests pass a fake). torch is imported only inside the
generation worker.
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    ContentSwitcher,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    Select,
    Static,
)
from textual.worker import Worker, WorkerState

from core.config import RunConfig
from core.generate import (
    BASE,
    DEFAULT_BATCH_SIZE,
    GenerationSettings,
    ModelRef,
    PairGenerator,
    PairRequest,
    resolve_ref,
    run_dir_of,
)
from core.review import (
    OUTCOME_LABELS,
    VERDICT_LABELS,
    WIN_RATE_DEFINITION,
    ReviewItem,
    ReviewSet,
    ReviewSetInfo,
    default_set_name,
    find_review_sets,
    generate_into,
    load_prompts,
)
from core.rundir import CHECKPOINT_PREFIX, CHECKPOINTS_DIR, COMPLETE_MARKER, CONFIG_FILE, FINAL_DIR, checkpoint_step
from tui.messages import ReviewRun
from tui.widgets.review_pane import ReviewTextPane, render_conversation

HELD_OUT_SAMPLE = "sample:support-tickets-heldout"
"""The bundled held-out prompts, always offered."""
FILE_PROMPTS = ("file", "")
"""The prompts choice that reads the path typed below it."""
JUDGE_ACTIONS = frozenset({"judge", "undo", "move", "next_unjudged", "toggle_reference"})
"""Actions that only make sense while judging an item."""
MARK_FOR_OUTCOME = {"tie": ("tie", "tie"), "both_bad": ("bad", "bad"), "skip": ("skip", "skip")}
"""Pane marks (left, right) for verdicts that are not a side."""


MOVE_GROUP = Binding.Group("Move", compact=True)
"""``n`` and ``p`` share one footer entry."""
EXPORT_GROUP = Binding.Group("Export md/csv", compact=True)
"""``m`` and ``c`` share one footer entry."""


class ConfirmReveal(ModalScreen[bool]):
    """Asks before showing which model wrote which side: judging is no longer blind after."""

    DEFAULT_CSS = """
    ConfirmReveal { align: center middle; }
    ConfirmReveal > Vertical {
        width: 64;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $panel;
    }
    ConfirmReveal Label { width: 100%; margin-bottom: 1; }
    ConfirmReveal Horizontal { height: auto; align-horizontal: right; }
    ConfirmReveal Button { margin-left: 1; }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Reveal", id="confirm-reveal.yes"),
        Binding("n,escape", "answer(False)", "Stay blind", id="confirm-reveal.no"),
    ]
    """``y`` reveals, ``n`` or Escape keeps the sides hidden."""

    def __init__(self, unjudged: int) -> None:
        super().__init__()
        self.unjudged = unjudged

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        left = (f" {self.unjudged} item(s) are still unjudged; judgements made after this "
                "are marked as not blind." if self.unjudged else "")
        with Vertical():
            yield Label(f"Reveal which model wrote each side?{left}")
            with Horizontal():
                yield Button("Stay blind (n)", id="stay")
                yield Button("Reveal (y)", variant="warning", id="reveal")

    def action_answer(self, reveal: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(reveal)

    @on(Button.Pressed, "#reveal")
    def confirm(self) -> None:
        """The user chose to reveal."""
        self.dismiss(True)

    @on(Button.Pressed, "#stay")
    def cancel(self) -> None:
        """The user chose to stay blind."""
        self.dismiss(False)


@dataclass(frozen=True)
class ScanResult:
    """What the setup view offers: models, prompt sources and existing review sets."""

    models: list[tuple[str, tuple[str, str]]]
    """``(label, (kind, value))``: kind ``base`` (a model ref) or ``path`` (run/checkpoint)."""
    prompts: list[tuple[str, tuple[str, str]]]
    """``(label, (kind, source))`` for :func:`core.review.load_prompts`."""
    sets: list[ReviewSetInfo]
    default_a: tuple[str, str]
    default_b: tuple[str, str]


def scan_workspace(workspace: Path, app_model: str) -> ScanResult:
    """Base models, finished runs, complete checkpoints, validation splits and review sets."""
    bases: dict[str, None] = {app_model: None}
    runs: list[tuple[str, tuple[str, str]]] = []
    prompts: list[tuple[str, tuple[str, str]]] = [
        (f"held-out sample ({HELD_OUT_SAMPLE})", ("sample", HELD_OUT_SAMPLE))]
    run_dirs = sorted((p.parent for p in workspace.glob(f"*/{CONFIG_FILE}")),
                      key=lambda p: p.stat().st_mtime, reverse=True) if workspace.is_dir() else []
    newest_final: tuple[str, str] | None = None
    newest_base = app_model
    for run_dir in run_dirs:
        try:
            config = RunConfig.load(run_dir / CONFIG_FILE)
        except Exception:  # a broken config is the runs screen's business, not a choice here
            continue
        bases.setdefault(config.model.name_or_path, None)
        if (run_dir / FINAL_DIR).is_dir():
            runs.append((f"run {run_dir.name} (final)", ("path", str(run_dir))))
            if newest_final is None:
                newest_final, newest_base = ("path", str(run_dir)), config.model.name_or_path
        checkpoints = [p for p in (run_dir / CHECKPOINTS_DIR).glob(f"{CHECKPOINT_PREFIX}*")
                       if checkpoint_step(p) is not None and (p / COMPLETE_MARKER).is_file()]
        for ckpt in sorted(checkpoints, key=checkpoint_step, reverse=True):
            runs.append((f"run {run_dir.name} {ckpt.name}", ("path", str(ckpt))))
        if config.data.validation_fraction > 0:
            prompts.append((f"validation split of {run_dir.name}", ("val", str(run_dir))))
    prompts.append(("file (path below)", FILE_PROMPTS))
    models = [(f"base {b}", ("base", b)) for b in bases] + runs
    default_a = ("base", newest_base)
    default_b = newest_final or (runs[0][1] if runs else default_a)
    return ScanResult(models, prompts, find_review_sets(workspace), default_a, default_b)


@dataclass(frozen=True)
class GenerationJob:
    """A request to the generation worker: a new set, or the rest of an existing one."""

    settings: GenerationSettings
    choice_a: tuple[str, str] = ("", "")
    """``(kind, value)`` from the model select: ``base`` and a model ref, or ``path``."""
    choice_b: tuple[str, str] = ("", "")
    prompts: str = ""
    """A source for :func:`core.review.load_prompts`."""
    limit: int | None = None
    workspace: Path = Path("runs")
    """Where a set that belongs to no run is stored (``<workspace>/review/``)."""
    resume: ReviewSet | None = None
    """An existing set whose missing answers are generated instead."""


def resolve_choice(choice: tuple[str, str]) -> ModelRef:
    """The model reference for a model select value."""
    kind, value = choice
    return resolve_ref(BASE, value) if kind == "base" else resolve_ref(value)


class ReviewScreen(Screen):
    """Blind A/B review: generate both models' answers, judge them unseen, see the results."""

    CSS_PATH = "../styles/review.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    """Below 100 columns the two answers stack instead of sitting side by side."""

    BINDINGS = [
        Binding("l", "judge('left')", "Left", id="review.left"),
        Binding("r", "judge('right')", "Right", id="review.right"),
        Binding("t", "judge('tie')", "Tie", id="review.tie"),
        Binding("b", "judge('both_bad')", "Bad", id="review.both-bad"),
        Binding("s", "judge('skip')", "Skip", id="review.skip"),
        Binding("u", "undo", "Undo", id="review.undo"),
        Binding("n", "move(1)", "Next", id="review.next", group=MOVE_GROUP),
        Binding("p", "move(-1)", "Previous", id="review.previous", group=MOVE_GROUP),
        Binding("j", "next_unjudged", "Unjudged", id="review.next-unjudged"),
        Binding("v", "reveal", "Reveal", id="review.reveal"),
        Binding("o", "toggle_results", "Results", id="review.results"),
        Binding("e", "toggle_reference", "Ref", id="review.reference"),
        Binding("m", "export('markdown')", "Markdown", id="review.export-markdown",
                group=EXPORT_GROUP),
        Binding("c", "export('csv')", "CSV", id="review.export-csv", group=EXPORT_GROUP),
        Binding("g", "continue_generation", "Generate rest", id="review.continue"),
        Binding("ctrl+g", "generate", "Generate", id="review.generate"),
        Binding("ctrl+r", "rescan", "Rescan", id="review.rescan"),
        Binding("escape", "back", "Back", id="review.back"),
    ]
    """Judging: ``l``/``r`` left/right better, ``t`` tie, ``b`` both bad, ``s`` skip, ``u`` undo,
    ``n``/``p`` next/previous, ``j`` next unjudged, ``e`` reference answer. ``o`` results, ``v``
    reveal (confirmed), ``m``/``c`` export Markdown/CSV, ``g`` generate the rest of an
    interrupted set. Setup: ``ctrl+g`` generate, Enter on a set reopens it, ``ctrl+r`` rescan.
    Escape goes back one view."""

    view: reactive[str] = reactive("setup", bindings=True)
    """``setup``, ``judge`` or ``results``."""
    index: reactive[int] = reactive(0)
    """The item shown in the judge view."""
    generating: reactive[bool] = reactive(False, bindings=True)
    """A generation worker is running."""
    show_reference: reactive[bool] = reactive(False)
    """The reference answer pane is open."""

    class SetReady(Message):
        """The generation worker created (or reopened) the review set it fills."""

        def __init__(self, review: ReviewSet) -> None:
            super().__init__()
            self.review = review

    class PairsReady(Message):
        """New items were written to ``items.jsonl`` and can be judged."""

        def __init__(self, items: list[ReviewItem]) -> None:
            super().__init__()
            self.items = items

    class GenerationStatus(Message):
        """A line about what generation is doing (loading, which batch)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.review: ReviewSet | None = None
        """The open review set (owned by the UI thread)."""
        self.scan: ScanResult | None = None
        """The latest workspace scan."""
        self._stop = threading.Event()
        self._preselect: Path | None = None
        self._status = ""

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The three views in a switcher, between the header and the footer."""
        yield Header()
        with ContentSwitcher(initial="review-setup", id="review-views"):
            with Vertical(id="review-setup"):
                yield Static("Review sets (Enter reopens at the first unjudged item)",
                             classes="review-heading")
                yield DataTable(id="review-sets", cursor_type="row", zebra_stripes=True)
                yield Static("", id="review-sets-empty")
                yield Static("New blind review: B is compared against A", classes="review-heading")
                with Horizontal(classes="review-row"):
                    yield Label("Model A", classes="review-label")
                    yield Select([], id="review-model-a", compact=True, allow_blank=True,
                                 prompt="choose model A")
                with Horizontal(classes="review-row"):
                    yield Label("Model B", classes="review-label")
                    yield Select([], id="review-model-b", compact=True, allow_blank=True,
                                 prompt="choose model B")
                with Horizontal(classes="review-row"):
                    yield Label("Prompts", classes="review-label")
                    yield Select([], id="review-prompts", compact=True, allow_blank=True,
                                 prompt="choose prompts")
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
                    yield Button("Generate (ctrl+g)", id="review-start", variant="primary",
                                 compact=True)
                    yield Static("", id="review-setup-note")
            with Vertical(id="review-judge"):
                with Horizontal(id="review-status"):
                    yield Static("", id="review-counter")
                    yield ProgressBar(id="review-progress", show_eta=False)
                yield Static("", id="review-settings")
                yield ReviewTextPane("Prompt", id="review-prompt")
                yield ReviewTextPane("Reference answer", id="review-reference")
                with Container(id="review-outputs"):
                    yield ReviewTextPane("Left", id="review-left")
                    yield ReviewTextPane("Right", id="review-right")
            with Vertical(id="review-results"):
                yield Static("", id="review-summary")
                yield DataTable(id="review-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="review-results-hint")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        """Set up the tables and read the workspace."""
        sets = self.query_one("#review-sets", DataTable)
        for label, key in (("Set", "name"), ("Judged", "judged"), ("A", "a"), ("B", "b")):
            sets.add_column(label, key=key)
        table = self.query_one("#review-table", DataTable)
        for label in ("#", "Verdict", "A on", "A exact", "B exact", "A JSON", "B JSON",
                      "A len", "B len", "Checks", "Prompt"):
            table.add_column(label, key=label)
        self.query_one("#review-reference").display = False
        self.action_rescan()

    def on_unmount(self) -> None:
        """Leaving the app stops generation at the next token so the process can exit."""
        self._stop.set()

    @property
    def workspace(self) -> Path:
        """The app's workspace directory."""
        return Path(str(self.app.workspace))

    @property
    def app_model(self) -> str:
        """The model of the app's config, offered as a base."""
        return self.app.config.model.name_or_path

    # --- bindings ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show each key only in the view where it works."""
        if action in JUDGE_ACTIONS:
            return self.view == "judge"
        if action in ("generate", "rescan"):
            return self.view == "setup"
        if action == "toggle_results":
            return self.view in ("judge", "results")
        if action == "reveal":
            return self.view in ("judge", "results") and not (self.review and self.review.revealed)
        if action == "export":
            return self.view == "results"
        if action == "continue_generation":
            return (self.view != "setup" and self.review is not None
                    and not self.review.complete and not self.generating)
        if action == "back":
            return self.view != "setup"
        return True

    # --- scanning and opening ------------------------------------------------------------

    def action_rescan(self) -> None:
        """Read the workspace again: runs, checkpoints and review sets (in a thread)."""
        self._scan(self.workspace, self.app_model)

    @work(thread=True, exclusive=True, group="review-scan", exit_on_error=False)
    def _scan(self, workspace: Path, app_model: str) -> ScanResult:
        """List models, prompts and review sets off the UI thread."""
        return scan_workspace(workspace, app_model)

    @work(thread=True, exclusive=True, group="review-open", exit_on_error=False)
    def _open(self, path: Path) -> ReviewSet:
        """Read a review set and its judgement log off the UI thread."""
        return ReviewSet.open(path)

    def _show_scan(self, scan: ScanResult) -> None:
        self.scan = scan
        table = self.query_one("#review-sets", DataTable)
        table.clear()
        for info in scan.sets:
            table.add_row(info.name, f"{info.judged}/{info.total}", info.label_a, info.label_b,
                          key=str(info.path))
        selects = {"#review-model-a": (scan.models, scan.default_a),
                   "#review-model-b": (scan.models, scan.default_b),
                   "#review-prompts": (scan.prompts, scan.prompts[0][1])}
        for selector, (options, default) in selects.items():
            select = self.query_one(selector, Select)
            current = select.value
            select.set_options(options)
            values = [value for _, value in options]
            select.value = current if current in values else default
        if self._preselect is not None:
            self._apply_preselect(self._preselect)
            self._preselect = None
        table.display = bool(scan.sets)
        empty = self.query_one("#review-sets-empty", Static)
        empty.display = not scan.sets
        empty.update(Text(f"None yet in {self.workspace}/. Start one below.", style="dim"))

    def _apply_preselect(self, run_dir: Path) -> None:
        """Choose the run's output as B, its base as A and its validation split as prompts."""
        assert self.scan is not None
        values = {value for _, value in self.scan.models}
        b = ("path", str(run_dir))
        if b not in values:
            self._note(f"Run {run_dir.name} has no final output to review yet.")
            return
        self.query_one("#review-model-b", Select).value = b
        try:
            base = RunConfig.load(run_dir / CONFIG_FILE).model.name_or_path
        except Exception:  # keep the current A when the config cannot be read
            base = None
        if base is not None and ("base", base) in values:
            self.query_one("#review-model-a", Select).value = ("base", base)
        prompts = {value for _, value in self.scan.prompts}
        if ("val", str(run_dir)) in prompts:
            self.query_one("#review-prompts", Select).value = ("val", str(run_dir))

    @on(ReviewRun)
    def review_run(self, message: ReviewRun) -> None:
        """The training screen asks to review a finished run: preselect it in the setup view."""
        self._preselect = message.run_dir
        self.view = "setup"
        self.action_rescan()

    @on(DataTable.RowSelected, "#review-sets")
    def open_selected_set(self, event: DataTable.RowSelected) -> None:
        """Enter on a review set reopens it at its first unjudged item."""
        path = Path(str(event.row_key.value))
        if self.review is not None and path.resolve() == self.review.path.resolve():
            self.view = "judge"  # the open set (maybe still generating): back to it as it was
            self._refresh_item()
            return
        if self.generating:
            self.notify("Wait for the current generation to finish (or let it run and judge).",
                        severity="warning")
            return
        self._open(path)

    def _show_set(self, review: ReviewSet) -> None:
        """Make ``review`` the open set and go to its first unjudged item (or the results)."""
        self.review = review
        self.show_reference = False
        if not review.complete and not self.generating:
            self._status = _stopped(review)
        first = review.first_unjudged()
        if first is None and review.complete and review.items:
            self.index = max(review.items)
            self.view = "results"
        else:
            self.index = first if first is not None else (min(review.items) if review.items else 0)
            self.view = "judge"
        self._refresh_item()
        self.refresh_bindings()

    # --- generation ----------------------------------------------------------------------

    @on(Button.Pressed, "#review-start")
    def start_pressed(self) -> None:
        """The Generate button."""
        self.action_generate()

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

    def action_generate(self) -> None:
        """Create a review set from the form and generate it in a thread worker."""
        if self.generating:
            self.notify("A generation is already running.", severity="warning")
            return
        read = self._read_settings()
        if isinstance(read, str):
            self._note(read, error=True)
            return
        settings, limit = read
        choices = []
        for selector, what in (("#review-model-a", "model A"), ("#review-model-b", "model B"),
                               ("#review-prompts", "the prompts")):
            value = self.query_one(selector, Select).value
            if not isinstance(value, tuple):
                self._note(f"Choose {what}.", error=True)
                return
            choices.append(value)
        choice_a, choice_b, (kind_p, p) = choices
        if choice_a == choice_b:
            self._note("Model A and model B are the same; choose two different models.", error=True)
            return
        if (kind_p, p) == FILE_PROMPTS:
            p = self.query_one("#review-prompts-path", Input).value.strip()
            if not p:
                self._note("Type the path of a prompts file, or choose other prompts.", error=True)
                return
        source = f"val:{p}" if kind_p == "val" else p
        self._note("Preparing…")
        self._start(GenerationJob(settings=settings, choice_a=choice_a, choice_b=choice_b,
                                  prompts=source, limit=limit, workspace=self.workspace))

    def action_continue_generation(self) -> None:
        """Generate the missing answers of the open set (after an interruption)."""
        if self.review is None or self.review.complete or self.generating:
            return
        settings = GenerationSettings.from_dict(self.review.meta.get("generation", {}))
        self._start(GenerationJob(settings=settings, resume=self.review))

    def _start(self, job: GenerationJob) -> None:
        self._stop = threading.Event()
        self.generating = True
        self._status = "Starting…"
        self._generate(job, self._stop, self.app.services.review_generator)

    @work(thread=True, exclusive=True, group="review-generate", exit_on_error=False)
    def _generate(self, job: GenerationJob, stop: threading.Event,
                  generator: PairGenerator | None) -> int:
        """Create or reopen the set, then generate its missing answers batch by batch."""
        if job.resume is not None:
            review = job.resume
            ref_a = ModelRef.from_dict(review.meta["a"])
            ref_b = ModelRef.from_dict(review.meta["b"])
        else:
            ref_a, ref_b = resolve_choice(job.choice_a), resolve_choice(job.choice_b)
            prompts, described = load_prompts(job.prompts, job.limit)
            root = run_dir_of(ref_b) or run_dir_of(ref_a) or job.workspace
            review = ReviewSet.create(root, default_set_name(root, ref_a.label, ref_b.label),
                                      ref_a.to_dict(), ref_b.to_dict(), prompts, described,
                                      job.settings.to_dict(), secrets.randbelow(2**31))
        self.post_message(self.SetReady(review))
        if generator is None:  # torch loads here, in the worker thread
            from core.generate import generate_pairs as generator
        request = PairRequest(a=ref_a, b=ref_b, conversations=[p.messages for p in review.prompts],
                              settings=job.settings, stop=stop)
        return generate_into(review, request, generator,
                             on_status=lambda text: self.post_message(self.GenerationStatus(text)),
                             on_items=lambda items: self.post_message(self.PairsReady(items)))

    @on(SetReady)
    def set_ready(self, message: SetReady) -> None:
        """Show the new set at once; pairs arrive as they are generated."""
        self._note("")
        if message.review is not self.review:
            self._show_set(message.review)
        self._refresh_item()

    @on(PairsReady)
    def pairs_ready(self, message: PairsReady) -> None:
        """Take new items in; the first one fills the empty judge view."""
        if self.review is None:
            return
        was_empty = not self.review.items
        self.review.add_items(message.items)
        if was_empty:
            first = self.review.first_unjudged()
            self.index = first if first is not None else self.index
        self._refresh_item()

    @on(GenerationStatus)
    def generation_status(self, message: GenerationStatus) -> None:
        """Show what generation is doing."""
        self._status = message.text
        self._refresh_status()

    @on(Worker.StateChanged)
    def handle_worker_state(self, event: Worker.StateChanged) -> None:
        """Route worker results; every failure is shown, never swallowed."""
        group, state = event.worker.group, event.state
        if state == WorkerState.SUCCESS:
            if group == "review-scan":
                self._show_scan(event.worker.result)
            elif group == "review-open":
                self._show_set(event.worker.result)
            elif group == "review-generate":
                self._generation_ended(None)
        elif state == WorkerState.ERROR:
            error = event.worker.error
            if group == "review-generate":
                self._generation_ended(error)
            elif group == "review-open":
                self.notify(f"Could not open the review set: {error}", severity="error")
            else:
                self._note(f"Could not read {self.workspace}: {error}", error=True)
        elif state == WorkerState.CANCELLED and group == "review-generate":
            self._generation_ended(None)
        else:
            pass  # PENDING and RUNNING need nothing; cancelled scans are superseded

    def _generation_ended(self, error: BaseException | None) -> None:
        self.generating = False
        if error is not None:
            text = str(error).strip() or type(error).__name__
            self._status = f"Generation failed: {text}"
            if self.view == "setup" or self.review is None:
                self._note(self._status, error=True)
            self.notify(self._status, severity="error", timeout=10)
        elif self.review is not None and not self.review.complete:
            self._status = _stopped(self.review)
        else:
            self._status = "Generation finished."
        self._refresh_item()
        self.action_rescan()

    # --- judging -------------------------------------------------------------------------

    def _current(self) -> ReviewItem | None:
        if self.review is None:
            return None
        return self.review.items.get(self.index)

    def action_judge(self, verdict: str) -> None:
        """Record a verdict for the shown item (durably), then go to the next unjudged one."""
        item = self._current()
        if self.review is None or item is None:
            self.notify("No answers to judge yet: the first batch is still being generated.")
            return
        self.review.judge(item.index, verdict)
        following = self.review.next_unjudged(item.index)
        if following is not None:
            self.index = following
        elif self.review.complete:
            self.notify(f"All {self.review.total} items judged. o shows the results.")
        self._refresh_item()

    def action_undo(self) -> None:
        """Cancel the latest judgement (logged as an undo) and show its item again."""
        if self.review is None:
            return
        undone = self.review.undo()
        if undone is None:
            self.notify("Nothing to undo.")
            return
        self.index = undone.index
        self.notify(f"Undid “{VERDICT_LABELS[undone.verdict]}” on item {undone.index + 1}.")
        self._refresh_item()

    def action_move(self, step: int) -> None:
        """Show the next (``1``) or previous (``-1``) generated item."""
        if self.review is None or not self.review.items:
            return
        target = self.index + step
        if target < 0 or target >= self.review.total:
            return
        if target not in self.review.items:
            self.notify(f"Item {target + 1} is still being generated.")
            return
        self.index = target
        self._refresh_item()

    def action_next_unjudged(self) -> None:
        """Jump to the next item without a verdict (wrapping round)."""
        if self.review is None:
            return
        target = self.review.next_unjudged(self.index)
        if target is None:
            self.notify("Every generated item has a verdict.")
            return
        self.index = target
        self._refresh_item()

    def action_toggle_reference(self) -> None:
        """Show or hide the reference answer."""
        self.show_reference = not self.show_reference
        self._refresh_item()

    # --- results, reveal and export ------------------------------------------------------

    def action_toggle_results(self) -> None:
        """Switch between judging and the results."""
        if self.review is None:
            return
        self.view = "judge" if self.view == "results" else "results"
        self._refresh_item()

    def action_back(self) -> None:
        """Results go back to judging; judging goes back to the list of sets."""
        if self.view == "results":
            self.view = "judge"
        elif self.view == "judge":
            self.view = "setup"
            self.action_rescan()
        self._refresh_item()

    def action_reveal(self) -> None:
        """Ask, then show which model wrote each side and the per-item table."""
        if self.review is None or self.review.revealed:
            return
        unjudged = len(self.review.pending()) + sum(
            1 for i in self.review.items if i not in self.review.verdicts)
        self.app.push_screen(ConfirmReveal(unjudged), self._revealed)

    def _revealed(self, confirmed: bool | None) -> None:
        if not confirmed or self.review is None:
            return
        self.review.reveal()
        self.refresh_bindings()
        self.view = "results"
        self._refresh_item()

    def action_export(self, kind: str) -> None:
        """Write ``results.md`` or ``results.csv`` into the set's directory (after reveal)."""
        if self.review is None:
            return
        if not self.review.revealed:
            self.notify("The export names A and B per item: reveal first (v).", severity="warning")
            return
        try:
            path = self.review.export_markdown() if kind == "markdown" else self.review.export_csv()
        except OSError as exc:
            self.notify(f"Export failed: {exc}", severity="error")
            return
        self.notify(f"Wrote {path}")

    @on(DataTable.RowSelected, "#review-table")
    def open_table_item(self, event: DataTable.RowSelected) -> None:
        """Enter on a results row shows that item."""
        self.index = int(str(event.row_key.value))
        self.view = "judge"
        self._refresh_item()

    # --- rendering -----------------------------------------------------------------------

    def watch_view(self, view: str) -> None:
        """Switch the visible view."""
        self.query_one("#review-views", ContentSwitcher).current = f"review-{view}"
        if view == "judge":
            self.set_focus(None)
        elif view == "results":
            self.query_one("#review-table").focus()

    def _note(self, text: str, error: bool = False) -> None:
        self.query_one("#review-setup-note", Static).update(
            Text(text, style="bold red" if error else "dim"))

    def _labels(self, item: ReviewItem) -> tuple[str, str]:
        """Pane titles: ``Left``/``Right``, with the model once revealed."""
        if self.review is None or not self.review.revealed:
            return "Left", "Right"
        meta = self.review.meta
        names = {"a": f"A: {meta['a'].get('label', '')}", "b": f"B: {meta['b'].get('label', '')}"}
        left = names["a"] if item.a_side == "left" else names["b"]
        right = names["b"] if item.a_side == "left" else names["a"]
        return f"Left · {left}", f"Right · {right}"

    def _refresh_status(self) -> None:
        review = self.review
        counter = self.query_one("#review-counter", Static)
        bar = self.query_one("#review-progress", ProgressBar)
        if review is None:
            counter.update("")
            return
        judged = len(review.verdicts)
        verdict = review.verdict(self.index)
        mark = f" · {VERDICT_LABELS[verdict]}" if verdict else ""
        ready = "" if review.complete else f" · {len(review.items)} ready"
        text = Content.assemble(
            (f"Item {self.index + 1}/{review.total}", "bold"),
            f" · judged {judged}/{review.total}{ready}",
            (mark, "bold $text-success"),
        )
        counter.update(text)
        bar.display = self.generating or not review.complete
        bar.update(total=review.total, progress=len(review.items))
        settings = GenerationSettings.from_dict(review.meta.get("generation", {}))
        source = review.meta.get("prompts", {}).get("source", "")
        line = f"{settings.describe()} · prompts: {source}"
        if self._status and (self.generating or not review.complete):
            line = f"{self._status}  ·  {line}"
        self.query_one("#review-settings", Static).update(Text(line, style="dim"))

    def _refresh_item(self) -> None:
        """Render the open item, the counters and, in the results view, the results."""
        self._refresh_status()
        if self.view == "results":
            self._refresh_results()
        if self.view != "judge":
            return
        review, item = self.review, self._current()
        prompt = self.query_one("#review-prompt", ReviewTextPane)
        left = self.query_one("#review-left", ReviewTextPane)
        right = self.query_one("#review-right", ReviewTextPane)
        reference = self.query_one("#review-reference", ReviewTextPane)
        reference.display = self.show_reference
        if review is None or item is None:
            waiting = self._status or "Waiting for the first pairs…"
            prompt.content = Text(waiting, style="dim")
            left.content = right.content = ""
            left.mark = right.mark = ""
            return
        prompt.content = render_conversation(item.messages)
        prompt.border_title = f"Prompt {item.index + 1}"
        reference.content = (item.reference if item.reference is not None
                             else Text("(no reference answer for this prompt)", style="dim"))
        left.content = item.left or Text("(empty answer)", style="dim italic")
        right.content = item.right or Text("(empty answer)", style="dim italic")
        left.border_title, right.border_title = self._labels(item)
        verdict = review.verdict(item.index)
        if verdict in ("left", "right"):
            left.mark = "better" if verdict == "left" else "worse"
            right.mark = "better" if verdict == "right" else "worse"
        else:
            left.mark, right.mark = MARK_FOR_OUTCOME.get(verdict or "", ("", ""))

    def _refresh_results(self) -> None:
        review = self.review
        if review is None:
            return
        stats = review.stats()
        meta = review.meta
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        if review.revealed:
            grid.add_row("A", str(meta["a"].get("label", "")))
            grid.add_row("B", str(meta["b"].get("label", "")))
        else:
            grid.add_row("Sides", "hidden: v reveals which model wrote each side (asks first)")
        grid.add_row("Judged", f"{stats.judged} of {stats.total}"
                     + (f" ({stats.generated} generated)" if stats.generated < stats.total else ""))
        grid.add_row("Counts", f"B better {stats.wins} · A better {stats.losses} · tie "
                     f"{stats.ties} · both bad {stats.both_bad} · skipped {stats.skipped}")
        rate = stats.win_rate_text()
        grid.add_row("Win rate", Text(rate, style="bold"))
        grid.add_row("", Text(WIN_RATE_DEFINITION, style="dim"))
        if review.revealed and stats.checks_a:
            a, b = stats.checks_a, stats.checks_b
            grid.add_row("Checks", f"exact match A {_pct(a['exact_match'])} · B {_pct(b['exact_match'])}"
                         f"; valid JSON A {_pct(a['valid_json'])} · B {_pct(b['valid_json'])}")
            grid.add_row("", Text(f"judgement and exact match disagree on {stats.disagreements} "
                                  "item(s) (≠)", style="dim"))
        if stats.after_reveal:
            grid.add_row("", Text(f"{stats.after_reveal} verdict(s) made after reveal", style="yellow"))
        self.query_one("#review-summary", Static).update(grid)
        table = self.query_one("#review-table", DataTable)
        table.display = review.revealed
        hint = ("m exports Markdown, c exports CSV (into the set's folder) · Enter shows an item"
                if review.revealed else "The per-item table appears after reveal (v).")
        self.query_one("#review-results-hint", Static).update(Text(hint, style="dim"))
        if not review.revealed:
            return
        table.clear()
        for row in review.rows():
            item = review.items[row.index]
            ca, cb = row.checks_a, row.checks_b
            verdict = Text(OUTCOME_LABELS.get(row.outcome or "", "—"), justify="left",
                           style="bold red" if row.disagrees else "")
            checks = ("≠ " if row.disagrees else "") + (row.checks_prefer or "").upper()
            table.add_row(
                str(row.index + 1), verdict, row.a_side,
                _flag(ca.exact if ca else None), _flag(cb.exact if cb else None),
                _flag(ca.valid_json if ca else None), _flag(cb.valid_json if cb else None),
                str(len(item.output_a.strip())), str(len(item.output_b.strip())),
                Text(checks, justify="left", style="bold red" if row.disagrees else ""),
                _short(item.prompt_text), key=str(row.index))


def _stopped(review: ReviewSet) -> str:
    """The status of a set whose generation is not running and not finished."""
    return f"Generation stopped at {len(review.items)}/{review.total}; g generates the rest."


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _flag(value: bool | None) -> str:
    return "" if value is None else ("✓" if value else "✗")


def _short(text: str, limit: int = 40) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
