"""The review screen: blind A/B comparison of two models on the same prompts.

Three views, one at a time, composed from widgets:

- **setup** (:class:`~tui.widgets.review_setup.ReviewSetup`): reopen a review set of the
  workspace (Enter), or pick model A, model B and the prompts, the generation settings, and
  start (ctrl+g);
- **judge** (:class:`~tui.widgets.review_judge.ReviewJudge`): one item at a time, the prompt
  over two answers labelled only "Left" and "Right". Each key press is written to
  ``judgements.jsonl`` and fsync-ed before the screen moves on. Generation runs in a thread
  worker, batch by batch, so reviewing starts as soon as the first pairs exist;
- **results** (:class:`~tui.widgets.review_results.ReviewResults`): counts of B against A,
  the win rate with its 95% Wilson interval, and after reveal (asked for, then confirmed)
  the per-item table with the automatic checks.

The screen owns the state (the open set, the view, the item, generation) and every key, so
keys work whatever has focus; the views render that state and post what the user chose in
them. Generation is injectable: ``app.services.review_generator`` replaces
:func:`core.generate.generate_pairs` (tests pass a fake). torch is imported only inside the
generation worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header
from textual.worker import Worker, WorkerState

from core.generate import GenerationSettings, PairGenerator
from core.review import (
    VERDICT_LABELS,
    GenerationJob,
    ReviewChoices,
    ReviewItem,
    ReviewSet,
    generate_into,
    prepare_job,
    scan_workspace,
)
from tui.messages import ReviewRun, StartRun
from tui.widgets.confirm import Confirm
from tui.widgets.review_judge import ReviewJudge
from tui.widgets.review_results import ReviewResults
from tui.widgets.review_setup import ReviewSetup

JUDGE_ACTIONS = frozenset({"judge", "undo", "move", "next_unjudged", "toggle_reference",
                           "toggle_system"})
"""Actions that only make sense while judging an item."""


class ReviewScreen(Screen):
    """Blind A/B review: generate both models' answers, judge them unseen, see the results."""

    CSS_PATH = "../styles/review.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    """Below 100 columns the two answers stack instead of sitting side by side."""

    BINDINGS = [
        Binding("l", "judge('left')", "Left", tooltip="is better", id="review.left"),
        Binding("r", "judge('right')", "Right", tooltip="is better",
                id="review.right"),
        Binding("t", "judge('tie')", "Tie", tooltip="(both as good)", id="review.tie"),
        Binding("b", "judge('both_bad')", "Bad", tooltip="(both answers)",
                id="review.both-bad"),
        Binding("s", "judge('skip')", "Skip", tooltip="this item", id="review.skip"),
        Binding("u", "undo", "Undo", tooltip="the last judgement", id="review.undo"),
        Binding("n", "move(1)", "Next", show=False, tooltip="item", id="review.next"),
        Binding("p", "move(-1)", "Previous", show=False, tooltip="item",
                id="review.previous"),
        Binding("j", "next_unjudged", "Next unjudged", show=False,
                tooltip="item", id="review.next-unjudged"),
        Binding("o", "toggle_results", "Results", tooltip="(again: back to judging)",
                id="review.results"),
        Binding("v", "reveal", "Reveal", show=False,
                tooltip="which model wrote each side (asks first)", id="review.reveal"),
        Binding("e", "toggle_reference", "Reference", show=False,
                tooltip="answer, shown or hidden", id="review.reference"),
        Binding("y", "toggle_system", "System prompt", show=False,
                tooltip="whole or one line", id="review.system"),
        Binding("m", "export('markdown')", "Markdown", tooltip="export",
                id="review.export-markdown"),
        Binding("c", "export('csv')", "CSV", tooltip="export",
                id="review.export-csv"),
        Binding("d", "train_on_votes", "Train DPO", tooltip="on the Left/Right votes (asks first)",
                id="review.train-dpo"),
        Binding("g", "continue_generation", "Generate rest", show=False,
                tooltip="of an interrupted set", id="review.continue"),
        Binding("ctrl+g", "generate", "Generate", tooltip="a new review set",
                id="review.generate"),
        Binding("ctrl+r", "rescan", "Rescan", tooltip="the workspace",
                id="review.rescan"),
        Binding("escape", "back", "Back", show=False, id="review.back"),
    ]
    """In the footer, per view: judging ``l``/``r`` left/right better, ``t`` tie, ``b`` both
    bad, ``s`` skip, ``u`` undo, ``o`` results; results ``m``/``c`` export Markdown/CSV;
    ``d`` trains model B by DPO on the votes (asks first); setup ``ctrl+g`` generate,
    ``ctrl+r`` rescan (Enter on a set reopens it). Under ``?`` and
    in the palette also: ``n``/``p`` next/previous, ``j`` next unjudged, ``e`` reference
    answer, ``v`` reveal (confirmed), ``g`` generate the rest of an interrupted set, Escape
    back one view."""

    view: reactive[str] = reactive("setup", bindings=True)
    """``setup``, ``judge`` or ``results``."""
    index: reactive[int] = reactive(0)
    """The item shown in the judge view."""
    generating: reactive[bool] = reactive(False, bindings=True)
    """A generation worker is running."""
    show_reference: reactive[bool] = reactive(False)
    """The reference answer pane is open."""
    show_system: reactive[bool] = reactive(False)
    """The prompt's system turn is shown whole."""

    @dataclass
    class SetReady(Message):
        """The generation worker created (or reopened) the review set it fills."""

        review: ReviewSet

    @dataclass
    class PairsReady(Message):
        """New items were written to ``items.jsonl`` and can be judged."""

        items: list[ReviewItem]

    @dataclass
    class GenerationStatus(Message):
        """A line about what generation is doing (loading, which batch)."""

        text: str

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.review: ReviewSet | None = None
        """The open review set (owned by the UI thread)."""
        self.scan: ReviewChoices | None = None
        """The latest workspace scan."""
        self._stop = threading.Event()
        self._preselect: Path | None = None
        self._status = ""

    # --- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The three views in a switcher, between the header and the footer."""
        yield Header()
        with ContentSwitcher(initial="review-setup", id="review-views"):
            yield ReviewSetup(id="review-setup").data_bind(ReviewScreen.generating)
            yield ReviewJudge(id="review-judge").data_bind(ReviewScreen.show_reference,
                                                            ReviewScreen.show_system)
            yield ReviewResults(id="review-results")
        yield Footer()

    def on_mount(self) -> None:
        """Read the workspace."""
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

    @property
    def setup_view(self) -> ReviewSetup:
        """The setup view."""
        return self.query_one(ReviewSetup)

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
        if action in ("export", "train_on_votes"):
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
    def _scan(self, workspace: Path, app_model: str) -> ReviewChoices:
        """List models, prompts and review sets off the UI thread."""
        return scan_workspace(workspace, app_model)

    @work(thread=True, exclusive=True, group="review-open", exit_on_error=False)
    def _open(self, path: Path) -> ReviewSet:
        """Read a review set and its judgement log off the UI thread."""
        return ReviewSet.open(path)

    def _show_scan(self, scan: ReviewChoices) -> None:
        self.scan = scan
        self.setup_view.show_choices(scan)
        if self._preselect is not None:
            self.setup_view.choose_run(self._preselect)
            self._preselect = None

    @on(ReviewRun)
    def review_run(self, message: ReviewRun) -> None:
        """The training screen asks to review a finished run: preselect it in the setup view."""
        self._preselect = message.run_dir
        self.view = "setup"
        self.action_rescan()

    @on(ReviewSetup.SetChosen)
    def open_chosen_set(self, message: ReviewSetup.SetChosen) -> None:
        """Reopen the chosen set at its first unjudged item (the open one as it was)."""
        if self.review is not None and message.path.resolve() == self.review.path.resolve():
            self.view = "judge"  # the open set (maybe still generating): back to it as it was
            self._refresh_item()
            return
        if self.generating:
            self.notify("Wait for the current generation to finish (or let it run and judge).",
                        severity="warning")
            return
        self._open(message.path)

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

    def action_generate(self) -> None:
        """Create a review set from the setup form and generate it in a thread worker."""
        self.setup_view.submit()

    @on(ReviewSetup.Started)
    def start_new_set(self, message: ReviewSetup.Started) -> None:
        """The setup form was filled in: generate the new set."""
        self._start(message.job)

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
        review, request = prepare_job(job, stop)
        self.post_message(self.SetReady(review))
        if generator is None:  # torch loads here, in the worker thread
            from core.generate import generate_pairs as generator
        return generate_into(review, request, generator,
                             on_status=lambda text: self.post_message(self.GenerationStatus(text)),
                             on_items=lambda items: self.post_message(self.PairsReady(items)))

    @on(SetReady)
    def set_ready(self, message: SetReady) -> None:
        """Show the new set at once; pairs arrive as they are generated."""
        self.setup_view.note("")
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
                self.setup_view.note(f"Could not read {self.workspace}: {error}", error=True)
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
                self.setup_view.note(self._status, error=True)
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

    def action_toggle_system(self) -> None:
        """Show the prompt's system turn whole, or as one line."""
        self.show_system = not self.show_system
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
        left = (f" {unjudged} item(s) are still unjudged; judgements made after this "
                "are marked as not blind." if unjudged else "")
        self.app.push_screen(Confirm(f"Reveal which model wrote each side?{left}", "Reveal",
                                     "Stay blind"), self._revealed)

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

    def action_train_on_votes(self) -> None:
        """Write the decided votes as preference pairs, then ask to start a DPO run of model B
        on them (a new run from B's weights, on the Train screen)."""
        from core.review.preferences import preference_run_config, write_preferences

        if self.review is None:
            return
        try:
            path, pairs = write_preferences(self.review)
            config = preference_run_config(self.review, path)
        except (ValueError, OSError) as exc:  # no decided vote, a file that cannot be written
            self.notify(str(exc), severity="warning", timeout=10)
            return
        start = config.model.adapter or config.model.name_or_path
        question = (f"Train {config.run_name} by DPO on {pairs.summary()}? It starts from "
                    f"{start} as a new run (pairs in {path.name} of this set).")

        def started(confirmed: bool | None) -> None:
            if confirmed:
                self.app.post_message(StartRun(config))

        self.app.push_screen(Confirm(question, "Train", "Cancel"), started)

    @on(ReviewResults.ItemChosen)
    def show_chosen_item(self, message: ReviewResults.ItemChosen) -> None:
        """Enter on a results row shows that item."""
        self.index = message.index
        self.view = "judge"
        self._refresh_item()

    # --- rendering -----------------------------------------------------------------------

    def watch_view(self, view: str) -> None:
        """Switch the visible view."""
        self.query_one("#review-views", ContentSwitcher).current = f"review-{view}"
        if view == "judge":
            self.set_focus(None)
        elif view == "results":
            self.query_one(ReviewResults).focus_table()

    def _refresh_status(self) -> None:
        """Render the counter, the progress of generation and the settings line."""
        self.query_one(ReviewJudge).show_status(self.review, self.index, self._status,
                                                self.generating)

    def _refresh_item(self) -> None:
        """Render the counters and the current view: the open item, or the results."""
        self._refresh_status()
        if self.view == "judge":
            self.query_one(ReviewJudge).show_item(self.review, self.index, self._status)
        elif self.view == "results" and self.review is not None:
            self.query_one(ReviewResults).show(self.review)


def _stopped(review: ReviewSet) -> str:
    """The status of a set whose generation is not running and not finished."""
    return f"Generation stopped at {len(review.items)}/{review.total}; g generates the rest."
