"""The runs screen: every run of the workspace with its status, best validation loss and age.

Enter (or ``o``) opens the highlighted run on the training screen, following its events;
``r`` resumes a stopped or crashed run from its latest checkpoint, and on a finished run
offers to train longer (a new run from its final weights). The list refreshes every
two seconds in a thread worker that reads only the new lines of each ``events.jsonl``.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from core.runs import RunIndex, RunInfo, resume_config, train_longer_config
from tui.messages import FollowRun, StartRun
from tui.widgets.confirm import Confirm

REFRESH_SECONDS = 2.0
"""How often the list is read again."""
STATUS_STYLES = {"running": "bold green", "finished": "green", "stopped": "yellow", "failed": "bold red",
                 "damaged": "bold red"}


def format_age(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``."""
    seconds = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class RunsScreen(Screen):
    """All runs in the workspace; open one to watch it, or resume it."""

    CSS_PATH = "../styles/runs.tcss"

    BINDINGS = [
        Binding("o", "open_run", "Open", tooltip="on the Train screen",
                id="runs.open"),
        Binding("r", "resume_run", "Resume", tooltip="from the last checkpoint",
                id="runs.resume"),
        Binding("f5", "refresh", "Refresh", tooltip="the list", id="runs.refresh"),
    ]
    """Open (``o`` or Enter) follows the run on the training screen; ``r`` resumes it."""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.runs: list[RunInfo] = []
        """The runs shown, in table order."""
        self._index: RunIndex | None = None

    def compose(self) -> ComposeResult:
        """The runs table over a detail line."""
        yield Header()
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-detail")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table and start refreshing."""
        table = self.query_one(DataTable)
        table.add_column("Run", key="name")
        table.add_column("Status", key="status")
        table.add_column("Step", key="step")
        table.add_column("Best val", key="best")
        table.add_column("Age", key="age")
        table.add_column("Model", key="model")
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

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
        """Show a refreshed list, or why it could not be read."""
        if event.state == WorkerState.SUCCESS and event.worker.group == "runs-refresh":
            self._show_runs(event.worker.result)
        elif event.state == WorkerState.ERROR:
            self.query_one("#runs-detail", Static).update(
                Text(f"Could not read {self.workspace}: {event.worker.error}", style="red")
            )
        else:
            pass  # PENDING, RUNNING, CANCELLED: nothing to show

    def _show_runs(self, runs: list[RunInfo]) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_run
        self.runs = runs
        table.clear()
        for run in runs:
            best = f"{run.best_eval_loss:.4f}" if run.best_eval_loss is not None else "—"
            step = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
            model = f"{run.method} {run.model}".strip()
            status = Text(run.status + (" ⇱" if run.detached else ""), style=STATUS_STYLES.get(run.status, ""))
            table.add_row(run.name, status, step, best, format_age(run.age_seconds), model, key=str(run.path))
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
        detail.update(f"{run.path} · {run.status} ({where}): {run.detail}{resumable}")

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
        self.app.post_message(StartRun(config, detached=run.detached))

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
                self.app.post_message(StartRun(config, detached=run.detached))

        self.app.push_screen(Confirm(question, "Train longer", "Cancel"), answered)
