"""The runs screen: every run of the workspace with its status, best validation loss, general
drift (what the fine-tune costs general ability) and times.

Enter (or ``o``) opens the highlighted run on the training screen, following its events;
``r`` resumes a stopped or crashed run from its latest checkpoint, and on a finished run
offers to train longer (a new run from its final weights); ``e`` exports it (the
adapter, or a merged model); ``d`` deletes it after a confirmation; ``c`` copies its config
to the config screen for a new run; ``space`` marks runs and ``v`` draws the marked runs'
loss curves over each other. The list refreshes every two seconds in a thread worker that
reads only the new lines of each ``events.jsonl``.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from core.config import RunConfig
from core.rundir import CONFIG_FILE
from core.runs import RunIndex, RunInfo, delete_run, loss_history, resume_config, train_longer_config
from tui.messages import ChatRun, CloneConfig, FollowRun, StartRun
from tui.widgets.confirm import Answer, Confirm, Question
from tui.widgets.runs_plot import RunsLossPlot

REFRESH_SECONDS = 2.0
"""How often the list is read again."""
STATUS_STYLES = {"running": "bold green", "finished": "green", "stopped": "yellow", "failed": "bold red",
                 "damaged": "bold red"}
DETACHED_MARK = "⇱"
"""Marks a run that trains (or trained) in its own process."""
LEGEND = (f"{DETACHED_MARK} trains in its own process (survives closing the app) · Started, Last "
          "event: how long ago · space marks runs, v compares them")
"""The line under the table that explains its marks and columns."""
COLUMNS = ((" ", "mark"), ("Run", "name"), ("Status", "status"), ("Step", "step"),
           ("Best val", "best"), ("Drift", "drift"), ("Started", "started"),
           ("Last event", "updated"), ("Model", "model"))
"""(label, key) of the table's columns; the drift and model columns only where they fit."""
WIDE_COLUMNS = {"drift": 90, "model": 100}
"""Terminal width from which the table has each optional column (below it, the detail line
says the selected run's general drift and model)."""
EXPORT_KINDS = {"adapter": "export-adapter", "merged": "export-merged"}
"""Export kind -> folder inside the run (as ``tunetop export`` names it)."""


def format_age(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``."""
    seconds = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def ago(at: float | None, now: float) -> str:
    """How long before ``now`` ``at`` was (``5m ago``); an em dash when unknown."""
    return "—" if at is None else f"{format_age(now - at)} ago"


class ExportChoice(Question[str | None]):
    """Asks which export to write: the adapter alone, or a merged standalone model."""

    BINDINGS = [
        Binding("a", "answer('adapter')", "Adapter", id="export.adapter"),
        Binding("m", "answer('merged')", "Merged", id="export.merged"),
        Binding("escape", "answer(None)", "Cancel", id="export.cancel"),
    ]
    """``a`` exports the adapter, ``m`` a merged model, Escape cancels."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__(
            f"Export {run.name}: the adapter alone (small; load it over the base model), or a "
            f"merged standalone model (the base with the adapter folded in)? It is written to "
            f"{run.path}/export-adapter or export-merged.",
            (Answer("Cancel (esc)", None, "export-cancel"),
             Answer("Merged (m)", "merged", "export-merged"),
             Answer("Adapter (a)", "adapter", "export-adapter", "primary")))
        self.run = run


class LossOverlay(ModalScreen[None]):
    """The training loss of several runs over each other, for comparing them."""

    DEFAULT_CSS = """
    LossOverlay { align: center middle; }
    LossOverlay > RunsLossPlot {
        width: 95%;
        height: 90%;
        border: round $primary;
        border-title-color: $primary;
        background: $panel;
    }
    """

    BINDINGS = [
        Binding("escape,v,q", "dismiss", "Close", id="runs-overlay.close"),
    ]
    """Escape (or ``v`` again) closes the chart."""

    def __init__(self, curves: dict[str, list[tuple[int, float]]]) -> None:
        super().__init__()
        self.curves = curves

    def compose(self) -> ComposeResult:
        """One chart."""
        yield RunsLossPlot(self.curves)

    async def action_dismiss(self, result: None = None) -> None:
        """Close the overlay."""
        self.dismiss(result)


class RunsScreen(Screen):
    """All runs in the workspace; open, resume, export, delete, clone or compare them."""

    CSS_PATH = "../styles/runs.tcss"

    BINDINGS = [
        Binding("o", "open_run", "Open", tooltip="on the Train screen", id="runs.open"),
        Binding("r", "resume_run", "Resume", tooltip="from the last checkpoint", id="runs.resume"),
        Binding("e", "export_run", "Export", tooltip="the adapter or a merged model", id="runs.export"),
        Binding("d,delete", "delete_run", "Delete", show=False, tooltip="after asking", id="runs.delete"),
        Binding("c", "clone_config", "Clone", show=False, tooltip="its config to the Config screen",
                id="runs.clone"),
        Binding("t", "chat_run", "Chat", tooltip="with the run's model (beside its base)",
                id="runs.chat"),
        Binding("space", "mark_run", "Mark", show=False, tooltip="for comparing", id="runs.mark"),
        Binding("v", "compare_runs", "Compare", tooltip="the marked runs' loss curves", id="runs.compare"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="the list", id="runs.refresh"),
    ]
    """Open (``o`` or Enter) follows the run on the training screen; ``r`` resumes it; ``e``
    exports it; ``d`` deletes it; ``c`` clones its config; ``t`` talks to its model on the chat
    screen; ``space`` marks runs and ``v`` compares their loss curves; ``f5`` reads the
    workspace again."""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.runs: list[RunInfo] = []
        """The runs shown, in table order."""
        self.marked: set[Path] = set()
        """Runs marked for comparison (``space``)."""
        self.export_started: float | None = None
        """When the export under way began (None: none)."""
        self._export_label = ""
        self._index: RunIndex | None = None
        self._columns: tuple[str, ...] = ()
        """Keys of the table's columns, in order."""

    def compose(self) -> ComposeResult:
        """The runs table over a detail line and the legend."""
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-detail")
        yield Static("", id="runs-status")
        yield Static(LEGEND, id="runs-legend")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table and start refreshing."""
        self._add_columns()
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)
        self.set_interval(1.0, self._show_export_progress)

    @property
    def fitting_columns(self) -> tuple[str, ...]:
        """Keys of the columns that fit the screen's width (see :data:`WIDE_COLUMNS`)."""
        return tuple(key for _, key in COLUMNS if self.size.width >= WIDE_COLUMNS.get(key, 0))

    def _add_columns(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._columns = self.fitting_columns
        for label, key in COLUMNS:
            if key in self._columns:
                table.add_column(label, key=key)

    def on_resize(self) -> None:
        """Add or drop the drift and model columns when the terminal crosses their widths."""
        if self.is_mounted and self.fitting_columns != self._columns:
            self._add_columns()
            self._show_runs(self.runs)

    def on_screen_resume(self) -> None:
        """Coming back to the screen shows fresh statuses at once."""
        self.action_refresh()

    @property
    def workspace(self) -> str:
        """The app's workspace directory."""
        return str(self.app.workspace)

    def action_refresh(self) -> None:
        """Read the workspace again (in a thread)."""
        if self._index is None or str(self._index.workspace) != self.workspace:
            self._index = RunIndex(self.workspace)
        self._load_runs(self._index)

    @work(thread=True, exclusive=True, group="runs-refresh", exit_on_error=False)
    def _load_runs(self, index: RunIndex) -> list[RunInfo]:
        """List the runs off the UI thread (it reads files and checks processes)."""
        return index.refresh()

    @on(Worker.StateChanged)
    def handle_worker_state(self, event: Worker.StateChanged) -> None:
        """Refreshed lists, finished exports and deletions, loss curves; or why they failed."""
        worker, state = event.worker, event.state
        group = worker.group
        if state == WorkerState.SUCCESS and group == "runs-refresh":
            self._show_runs(worker.result)
        elif state == WorkerState.SUCCESS and group == "runs-export":
            self.export_started = None
            self._status(f"Exported {worker.result}", "green")
            self.notify(f"Exported to {worker.result}")
        elif state == WorkerState.SUCCESS and group == "runs-delete":
            self._status(f"Deleted {worker.result}", "")
            self.action_refresh()
        elif state == WorkerState.SUCCESS and group == "runs-curves":
            self.app.push_screen(LossOverlay(worker.result))
        elif state == WorkerState.ERROR and group == "runs-refresh":
            self._status(f"Could not read {self.workspace}: {worker.error}", "red")
        elif state == WorkerState.ERROR:
            if group == "runs-export":
                self.export_started = None
            what = {"runs-export": "Export", "runs-delete": "Delete", "runs-curves": "Reading the curves"}
            message = f"{what.get(group or '', group)} failed: {worker.error}"
            self._status(message, "red")
            self.notify(message, severity="error")
        else:
            pass  # PENDING, RUNNING, CANCELLED: nothing to show

    def _status(self, text: str, style: str) -> None:
        """Say how an export, a deletion or a refresh went (below the run's detail)."""
        status = self.query_one("#runs-status", Static)
        status.update(Text(text, style=style))
        status.set_class(bool(text), "-shown")

    def _show_runs(self, runs: list[RunInfo]) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_run
        self.runs = runs
        self.marked &= {run.path for run in runs}
        now = time.time()
        table.clear()
        for run in runs:
            best = f"{run.best_eval_loss:.4f}" if run.best_eval_loss is not None else "—"
            drift = f"{run.general_drift:+.3f}" if run.general_drift is not None else "—"
            step = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
            model = f"{run.kind} {run.model}".strip()
            status = Text(run.status + (f" {DETACHED_MARK}" if run.detached else ""),
                          style=STATUS_STYLES.get(run.status, ""))
            mark = "●" if run.path in self.marked else " "
            cells = {"mark": mark, "name": run.name, "status": status, "step": step, "best": best,
                     "drift": drift, "started": ago(run.started_at, now),
                     "updated": ago(run.updated_at, now), "model": model}
            table.add_row(*(cells[key] for key in self._columns), key=str(run.path))
        if selected is not None:
            for row, run in enumerate(runs):
                if run.path == selected.path:
                    table.move_cursor(row=row)
                    break
        self._show_detail()

    @property
    def selected_run(self) -> RunInfo | None:
        """The highlighted run."""
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None or not 0 <= table.cursor_row < len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#runs-detail", Static)
        run = self.selected_run
        if run is None:
            detail.update(
                f"No runs in {self.workspace}/ yet. Start one on the Train screen (3, then s)."
                if not self.runs else ""
            )
            return
        where = "detached" if run.detached else "in-app"
        resumable = (" · train longer (r)" if run.status == "finished" else
                     " · resumable (r)" if run.resumable and run.status != "running" else "")
        model = f" · {run.kind} {run.model}" if run.model else ""
        drift = (f" · general drift {run.general_drift:+.3f}"
                 if run.general_drift is not None and "drift" not in self._columns else "")
        detail.update(f"{run.path} · {run.status} ({where}): {run.detail}{resumable}{drift}{model}")

    @on(DataTable.RowSelected)
    def open_selected(self) -> None:
        """Enter on a row opens it."""
        self.action_open_run()

    def action_open_run(self) -> None:
        """Show the highlighted run on the training screen, following its events."""
        run = self.selected_run
        if run is None:
            return
        self.app.post_message(FollowRun(run.path))

    def action_chat_run(self) -> None:
        """Talk to the highlighted run's model, beside its base, on the chat screen."""
        run = self.selected_run
        if run is None:
            return
        self.app.post_message(ChatRun(run.path))

    def action_resume_run(self) -> None:
        """Continue the highlighted run from its latest checkpoint on the training screen
        (a finished run: offer to train longer instead)."""
        run = self.selected_run
        if run is None:
            return
        if run.status == "finished":
            self._offer_train_longer(run)
            return
        try:
            config = resume_config(run.path)
        except (ValueError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.post_message(StartRun(config))

    # --- export ---------------------------------------------------------------------------

    def action_export_run(self) -> None:
        """Ask adapter or merged, then export the highlighted run in a thread."""
        run = self.selected_run
        if run is None:
            return
        if self.export_started is not None:
            self.notify("An export is under way; wait for it to finish.", severity="warning")
            return

        def chosen(kind: str | None) -> None:
            if kind:
                target = run.path / EXPORT_KINDS[kind]
                self.export_started = time.monotonic()
                noun = "merged model" if kind == "merged" else "adapter"
                self._export_label = f"Exporting the {noun} of {run.name} to {target}"
                self._show_export_progress()
                self._export(run.path, kind, target)

        self.app.push_screen(ExportChoice(run), chosen)

    def _show_export_progress(self) -> None:
        if self.export_started is not None:
            seconds = time.monotonic() - self.export_started
            self._status(f"{self._export_label}… {format_age(seconds)}", "yellow")

    @work(thread=True, exclusive=True, group="runs-export", exit_on_error=False)
    def _export(self, run_dir: Path, kind: str, target: Path) -> Path:
        """Write the export (a merge loads the base model: seconds to minutes)."""
        from core.export import export_adapter, export_merged

        if kind == "merged":
            return export_merged(run_dir, target)[0]
        return export_adapter(run_dir, target)

    # --- delete ---------------------------------------------------------------------------

    def action_delete_run(self) -> None:
        """Delete the highlighted run and everything in it, after a confirmation."""
        run = self.selected_run
        if run is None:
            return
        if run.status == "running":
            self.notify(f"{run.name} is still running; stop it first (open it, then x).", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(run.path)

        self.app.push_screen(
            Confirm(f"Delete {run.name} with its checkpoints, output, exports and reviews? This "
                    f"cannot be undone.", "Delete", "Keep", yes_variant="error"),
            answered,
        )

    @work(thread=True, exclusive=True, group="runs-delete", exit_on_error=False)
    def _delete(self, run_dir: Path) -> str:
        """Remove the run directory (large checkpoints take a moment)."""
        delete_run(run_dir)
        return run_dir.name

    # --- clone and compare ----------------------------------------------------------------

    def action_clone_config(self) -> None:
        """Edit a copy of the highlighted run's config on the config screen, for a new run."""
        run = self.selected_run
        if run is None:
            return
        try:
            config = RunConfig.load(run.path / CONFIG_FILE)
        except (OSError, ValueError) as exc:
            self.notify(f"Cannot read {run.path / CONFIG_FILE}: {exc}", severity="error")
            return
        config.run_name = None  # a new run gets a new name
        self.app.post_message(CloneConfig(config, source=run.path))

    def action_mark_run(self) -> None:
        """Mark or unmark the highlighted run for comparison."""
        run = self.selected_run
        if run is None:
            return
        self.marked ^= {run.path}
        table = self.query_one(DataTable)
        table.update_cell(str(run.path), "mark", "●" if run.path in self.marked else " ")
        if table.cursor_row is not None and table.cursor_row + 1 < table.row_count:
            table.move_cursor(row=table.cursor_row + 1)

    def action_compare_runs(self) -> None:
        """Draw the marked runs' loss curves over each other (the highlighted run if none)."""
        paths = [run.path for run in self.runs if run.path in self.marked]
        if not paths and self.selected_run is not None:
            paths = [self.selected_run.path]
        if paths:
            self._read_curves(paths)

    @work(thread=True, exclusive=True, group="runs-curves", exit_on_error=False)
    def _read_curves(self, paths: list[Path]) -> dict[str, list[tuple[int, float]]]:
        """Each run's logged training losses."""
        return {path.name: loss_history(path) for path in paths}

    def _offer_train_longer(self, run: RunInfo) -> None:
        """A finished run is not resumed: ask, then start a new run from its final weights."""
        try:
            config = train_longer_config(run.path)
        except (ValueError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        o = config.optim
        schedule = f"{o.max_steps} steps" if o.max_steps > 0 else f"{o.num_train_epochs:g} epochs"
        question = (f"{run.name} finished all its {run.step} steps, so it is not resumed. Train "
                    f"longer instead? A new run, {config.run_name}, starts from its final "
                    f"weights with the same data and settings and a fresh schedule ({schedule}, "
                    "warm-up and decay again).")

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.post_message(StartRun(config))

        self.app.push_screen(Confirm(question, "Train longer", "Cancel"), answered)
