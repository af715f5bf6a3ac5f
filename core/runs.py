"""Runs in a workspace: progress folded from events, status, listing, resuming and training
longer.

A run directory holds ``config.yaml``, ``events.jsonl``, ``checkpoints/`` and ``final/``;
a detached run also ``worker.pid`` and ``worker.log``. Everything here reads those files
only, so listing runs never loads torch.

Lifecycle rules every entry point (the app, ``tunetop train``, the detached launcher and
worker, the engine) applies through this module and :mod:`core.rundir`: one process trains a
run at a time (:class:`core.rundir.RunLock`); a stopped or crashed run resumes from its newest
complete checkpoint; a finished run never trains again (it would step past its schedule and
rewrite ``final/``), and "train longer" is a new run that starts from its final weights
(:func:`train_longer_config`).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import copy

from core.config import RunConfig
from core.events import (
    TERMINAL_EVENTS,
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    Event,
    PhaseChanged,
    RunFinished,
    RunStarted,
    StepLogged,
    TerminalEvent,
    read_event_chunk,
    read_events,
)
from core.rundir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS_FILE,
    FINAL_DIR,
    RunLocked,
    RunRefused,
    complete_checkpoints,
    latest_checkpoint,
    lock_holder,
)

PID_FILE = "worker.pid"
LOG_FILE = "worker.log"
STOP_FILE = "STOP"
"""Created by ``attach`` (or by hand) to ask a detached run to stop after its current step."""
SAVE_FILE = "SAVE"
"""Created to ask a detached run for a checkpoint at its next step end."""

STATUSES = ("running", "finished", "stopped", "failed", "damaged")
"""``damaged``: the run's files could not be read at all (the detail says why)."""
STARTING_GRACE_SECONDS = 120.0
"""A run without a pid and without a final event counts as running this long after its last write."""
EVAL_ROW_SHARE = 1 / 3
"""What one validation row costs against one training row (forward only: no backward pass,
no optimizer step); guesses the length of an evaluation until one has been measured."""


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``D d H:MM:SS``); an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(max(seconds, 0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


@dataclass
class RunProgress:
    """Everything the figures panel and the runs list show, folded from events.

    The ETA is the remaining steps plus the remaining evaluations. Steps use the engine's own
    estimate (measured inside optimizer steps) when it sends one, otherwise an average of the
    time between logged steps, skipping intervals that contained an evaluation or a save.
    Evaluations use the measured length of the last one (or of the one running, from its
    progress), times those still due; before any was measured, a guess from the training
    throughput (:data:`EVAL_ROW_SHARE`).
    """

    run_dir: str = ""
    run_name: str = ""
    model: str = ""
    method: str = ""
    device: str = ""
    precision: str = ""
    pid: int = 0
    num_train_rows: int = 0
    num_val_rows: int = 0
    trainable_params: int = 0
    total_params: int = 0
    started_at: float | None = None
    last_event_at: float | None = None
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float | None = None
    samples_per_second: float | None = None
    engine_eta: float | None = None
    eval_loss: float | None = None
    best_eval_loss: float | None = None
    best_eval_step: int | None = None
    general_loss: float | None = None
    """Loss on the base model's answers to general prompts, at the last evaluation."""
    general_drift: float | None = None
    """``general_loss`` above the base model's own, at the last evaluation."""
    general_prompts: int = 0
    """General prompts drift is measured on; 0 when it is not measured."""
    checkpoints: list[str] = field(default_factory=list)
    objective: str = "sft"
    reward_margin: float | None = None
    """Preference runs: the latest logged reward margin (chosen minus rejected)."""
    reward_accuracy: float | None = None
    reward_chosen: float | None = None
    reward_rejected: float | None = None
    eval_reward_margin: float | None = None
    """Preference runs: the reward margin on the held-out pairs at the latest validation."""
    eval_reward_accuracy: float | None = None
    ended: TerminalEvent | None = None
    seconds_per_step: float | None = None
    eval_steps: int = 0
    """Steps between evaluations (0: none, or unknown)."""
    phase: str = ""
    """The phase outside the steps (``core.events.SETUP_PHASES``, ``checkpoint``, ``final``),
    empty while it trains."""
    phase_message: str = ""
    """What the run is doing in that phase (Loading the model …)."""
    phase_done: int = 0
    phase_total: int = 0
    evaluating: bool = False
    """Whether an evaluation is running now."""
    eval_done: int = 0
    eval_total: int = 0
    eval_started_at: float | None = None
    eval_seconds: float | None = None
    """Measured length of the last whole evaluation."""
    last_eval_step: int = 0
    resumed_from_step: int = 0
    budget_seconds: float = 0.0
    """The run's time budget (0: none)."""
    budget_started_at: float = 0.0
    """Wall clock the budget counts from."""
    _last_step_at: float | None = None
    _last_step: int = 0
    _paused: bool = False
    _eval_estimate: float | None = None

    @property
    def status(self) -> str:
        """``running`` until a final event, then ``finished``, ``stopped`` or ``failed``."""
        return self.ended.status if self.ended is not None else "running"

    def update(self, event: Event) -> None:
        """Fold one event in."""
        self.last_event_at = event.time
        if isinstance(event, RunStarted):
            resumed = event.resumed_from_step
            self.run_dir, self.run_name = event.run_dir, event.run_name
            self.model, self.method, self.objective = event.model, event.method, event.objective
            self.device, self.precision, self.pid = event.device, event.precision, event.pid
            self.total_steps = event.total_steps
            self.num_train_rows, self.num_val_rows = event.num_train_rows, event.num_val_rows
            self.trainable_params, self.total_params = event.trainable_params, event.total_params
            self.general_prompts = event.general_prompts
            self.step = self._last_step = resumed
            self.started_at = event.time
            self.ended = None
            self._last_step_at = event.time
            self._paused = False
            self.eval_steps, self.resumed_from_step = event.eval_steps, resumed
            self.budget_seconds, self.budget_started_at = event.budget_seconds, event.budget_started_at
            self.phase, self.phase_done, self.phase_total = "", 0, 0
        elif isinstance(event, StepLogged):
            self._fold_step(event)
            self.phase = ""
        elif isinstance(event, PhaseChanged):
            self.phase, self.phase_message = event.phase, event.message
            self.phase_done, self.phase_total = event.done, event.total
        elif isinstance(event, EvalProgressed):
            self.evaluating, self.eval_done, self.eval_total = True, event.done, event.total
            self.eval_started_at = event.time - max(event.elapsed_seconds, 0.0)
            # The length of this evaluation, extrapolated from the batches done so far.
            self._eval_estimate = event.elapsed_seconds * event.total / event.done if event.done else None
        elif isinstance(event, EvalLogged):
            self._paused = True
            if self.evaluating and self.eval_started_at is not None:
                self.eval_seconds = max(event.time - self.eval_started_at, 0.0)
            self.evaluating, self.eval_started_at, self._eval_estimate = False, None, None
            self.last_eval_step = max(self.last_eval_step, event.step)
            self.eval_loss = event.eval_loss
            if event.general_drift is not None:
                self.general_loss, self.general_drift = event.general_loss, event.general_drift
            self.eval_reward_margin = event.reward_margin
            self.eval_reward_accuracy = event.reward_accuracy
            if math.isfinite(event.eval_loss) and (
                self.best_eval_loss is None or event.eval_loss < self.best_eval_loss
            ):
                self.best_eval_loss, self.best_eval_step = event.eval_loss, event.step
        elif isinstance(event, CheckpointSaved):
            self._paused = True
            self.phase = ""
            if event.path not in self.checkpoints:
                self.checkpoints.append(event.path)
        elif isinstance(event, TERMINAL_EVENTS):
            self.ended = event
            self.evaluating, self.phase = False, ""
            self.step = max(self.step, event.step)
            if isinstance(event, RunFinished) and event.best_eval_loss is not None:
                if self.best_eval_loss is None or event.best_eval_loss < self.best_eval_loss:
                    self.best_eval_loss = event.best_eval_loss

    def _fold_step(self, event: StepLogged) -> None:
        if self.started_at is None:
            self.started_at = event.time - max(event.elapsed_seconds, 0.0)
        steps = event.step - self._last_step
        if self._last_step_at is not None and steps > 0 and not self._paused:
            took = (event.time - self._last_step_at) / steps
            if took > 0:
                self.seconds_per_step = (
                    took if self.seconds_per_step is None else 0.8 * self.seconds_per_step + 0.2 * took
                )
        self._last_step_at, self._last_step, self._paused = event.time, event.step, False
        self.step, self.total_steps, self.epoch = event.step, event.total_steps or self.total_steps, event.epoch
        self.loss, self.learning_rate, self.grad_norm = event.loss, event.learning_rate, event.grad_norm
        self.tokens_per_second = event.tokens_per_second
        self.samples_per_second = event.samples_per_second
        self.reward_margin, self.reward_accuracy = event.reward_margin, event.reward_accuracy
        self.reward_chosen, self.reward_rejected = event.reward_chosen, event.reward_rejected
        eta = event.eta_seconds
        self.engine_eta = eta if isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0 else None

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left: remaining steps and evaluations (``now`` for the one running);
        None when unknown."""
        if self.ended is not None:
            return 0.0
        if self.step >= self.total_steps > 0:
            steps = 0.0  # the last evaluation and saves are left
        elif self.engine_eta is not None:
            steps = self.engine_eta
        elif self.seconds_per_step is not None and self.total_steps:
            steps = max(self.total_steps - self.step, 0) * self.seconds_per_step
        else:
            return None
        return steps + self.eval_eta_seconds(now)

    def evals_left(self) -> int:
        """Evaluations still due after the one running (every ``eval_steps`` and at the end)."""
        if not self.eval_steps or not self.total_steps:
            return 0
        due = set(range(self.eval_steps, self.total_steps + 1, self.eval_steps)) | {self.total_steps}
        done = max(self.last_eval_step, self.resumed_from_step)
        if self.evaluating:
            done = max(done, self.step)
        return sum(1 for at in due if at > done and at >= self.step)

    def seconds_per_eval(self) -> float | None:
        """How long one evaluation takes: measured (the last whole one, else the one running,
        from its progress), or guessed from the training throughput; None when unknown."""
        if self.eval_seconds is not None:
            return self.eval_seconds
        if self._eval_estimate is not None:
            return self._eval_estimate
        if self.samples_per_second and self.num_val_rows:
            return self.num_val_rows / self.samples_per_second * EVAL_ROW_SHARE
        return None

    def eval_eta_seconds(self, now: float | None = None) -> float:
        """Seconds the evaluation running now (from ``now``) and those still due will take."""
        per_eval = self.seconds_per_eval()
        if per_eval is None:
            return 0.0
        current = 0.0
        if self.evaluating and self.eval_started_at is not None:
            length = self._eval_estimate if self._eval_estimate is not None else per_eval
            now = time.time() if now is None else now
            current = max(length - (now - self.eval_started_at), 0.0)
        return current + self.evals_left() * per_eval

    def elapsed_seconds(self, now: float | None = None) -> float | None:
        """Wall time since the run started, up to ``now`` while live or its end once ended."""
        if self.started_at is None:
            return None
        end = self.ended.time if self.ended is not None else (time.time() if now is None else now)
        return max(end - self.started_at, 0.0)

    def budget_left(self, now: float | None = None) -> float | None:
        """Seconds of the time budget left at ``now`` (negative once over); None without one."""
        if not self.budget_seconds:
            return None
        end = self.ended.time if self.ended is not None else (time.time() if now is None else now)
        return self.budget_seconds - (end - self.budget_started_at)

    @property
    def fraction(self) -> float:
        """Share of steps done, 0 to 1."""
        return min(self.step / self.total_steps, 1.0) if self.total_steps else 0.0


@dataclass(frozen=True)
class RunInfo:
    """One run of a workspace as the runs screen lists it."""

    path: Path
    name: str
    status: str
    """``running``, ``finished``, ``stopped`` or ``failed``."""
    detail: str
    """Why it has that status (the stop reason, the failure, "process gone")."""
    step: int
    total_steps: int
    best_eval_loss: float | None
    model: str
    method: str
    updated_at: float
    """Wall clock of the last event (or of the directory, without events)."""
    pid: int | None
    detached: bool
    resumable: bool
    """Whether a complete checkpoint exists to resume from."""
    general_drift: float | None = None
    """General drift at the last evaluation; ``None`` when not measured."""
    objective: str = "sft"
    """``sft``, or the preference objective (``dpo``, ``orpo``) the run trains."""
    started_at: float | None = None
    """Wall clock of the run's (latest) start; None before training began."""
    damaged_lines: int = 0
    """Lines of ``events.jsonl`` skipped as damaged (counted in ``detail`` too)."""

    @property
    def kind(self) -> str:
        """What the run trains: ``lora``, or ``dpo·lora`` for a preference run."""
        return self.method if self.objective == "sft" else f"{self.objective}·{self.method}"

    @property
    def age_seconds(self) -> float:
        """Seconds since the run last wrote an event."""
        return max(time.time() - self.updated_at, 0.0)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a zombie child is reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap our own exited detached children
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def read_pid(run_dir: str | Path) -> int | None:
    """The detached worker's pid from ``worker.pid``, if any."""
    try:
        return int(Path(run_dir, PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def derive_status(progress: RunProgress, pid: int | None, updated_at: float, now: float | None = None) -> tuple[str, str]:
    """(status, detail) of a run from its folded events and a live-process check."""
    ended = progress.ended
    if ended is not None:
        return ended.status, (f"output {ended.output_path}" if isinstance(ended, RunFinished)
                              else ended.reason)
    pid = pid or progress.pid or None
    if pid:
        if pid_alive(pid):
            return "running", f"pid {pid}"
        return "failed", f"process {pid} ended without a final event (killed or crashed)"
    now = time.time() if now is None else now
    if now - updated_at < STARTING_GRACE_SECONDS:
        return "running", "starting"
    return "failed", "no final event and no process: the run was interrupted"


class RunIndex:
    """Incremental reader of a workspace: each refresh reads only new event lines."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace)
        self._progress: dict[Path, tuple[RunProgress, int, int]] = {}

    def refresh(self) -> list[RunInfo]:
        """Every run of the workspace, newest first; a run that cannot be read is listed as
        ``damaged`` (it never hides the others)."""
        runs: list[RunInfo] = []
        if not self.workspace.is_dir():
            return runs
        for path in self.workspace.iterdir():
            try:
                if not path.is_dir() or not (
                    (path / EVENTS_FILE).exists() or (path / CONFIG_FILE).exists()
                ):
                    continue
                runs.append(self._info(path))
            except Exception as exc:  # any unreadable run: listed as damaged, never fatal
                self._progress.pop(path, None)
                runs.append(_damaged_run(path, exc))
        runs.sort(key=lambda r: r.updated_at, reverse=True)
        return runs

    def _info(self, path: Path) -> RunInfo:
        progress, offset, damaged = self._progress.get(path, (RunProgress(), 0, 0))
        events_path = path / EVENTS_FILE
        updated_at = path.stat().st_mtime
        if events_path.exists():
            if events_path.stat().st_size < offset:  # rewritten: start over
                progress, offset, damaged = RunProgress(), 0, 0
            chunk = read_event_chunk(str(events_path), offset)
            for event in chunk.events:
                progress.update(event)
            offset, damaged = chunk.offset, damaged + chunk.damaged
            updated_at = max(updated_at, events_path.stat().st_mtime)
        self._progress[path] = (progress, offset, damaged)
        worker_pid = read_pid(path)
        status, detail = derive_status(progress, worker_pid, updated_at)
        if damaged:
            detail += f"; {damaged} damaged event line{'s' if damaged != 1 else ''} skipped"
        model, method, objective = progress.model, progress.method, progress.objective
        if not model:
            model, method, objective = _config_model(path)
        return RunInfo(
            path=path,
            name=path.name,
            status=status,
            detail=detail,
            step=progress.step,
            total_steps=progress.total_steps,
            best_eval_loss=progress.best_eval_loss,
            model=model,
            method=method,
            updated_at=progress.last_event_at or updated_at,
            pid=worker_pid or progress.pid or None,
            detached=worker_pid is not None,
            resumable=bool(complete_checkpoints(path)),
            general_drift=progress.general_drift,
            objective=objective,
            started_at=progress.started_at,
            damaged_lines=damaged,
        )


def _damaged_run(path: Path, exc: Exception) -> RunInfo:
    """The runs-list entry of a run directory that could not be read."""
    try:
        updated_at = path.lstat().st_mtime
    except OSError:
        updated_at = 0.0
    reason = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
    return RunInfo(path=path, name=path.name, status="damaged",
                   detail=f"cannot read this run ({reason}); other runs are unaffected",
                   step=0, total_steps=0, best_eval_loss=None, model="", method="",
                   updated_at=updated_at, pid=None, detached=False, resumable=False)


def _config_model(path: Path) -> tuple[str, str, str]:
    try:
        config = RunConfig.load(path / CONFIG_FILE)
    except Exception:
        return "", "", "sft"
    return config.model.name_or_path, config.method, config.objective


def list_runs(workspace: str | Path) -> list[RunInfo]:
    """Every run in ``workspace`` with its status, newest first."""
    return RunIndex(workspace).refresh()


def run_progress(run_dir: str | Path) -> RunProgress:
    """A run's events folded into one :class:`RunProgress`."""
    progress = RunProgress()
    events_path = Path(run_dir) / EVENTS_FILE
    if events_path.exists():
        for event in read_events(str(events_path))[0]:
            progress.update(event)
    return progress


def finished_event(run_dir: str | Path) -> RunFinished | None:
    """The run's last ``RunFinished``, or None: once finished, a run never trains again."""
    path = Path(run_dir) / EVENTS_FILE
    if not path.exists():
        return None
    finished = [e for e in read_events(str(path))[0] if isinstance(e, RunFinished)]
    return finished[-1] if finished else None


def check_not_live(run_dir: str | Path) -> None:
    """Raise :class:`RunLocked` when a process trains ``run_dir`` right now: one holds its
    lock, or its detached worker is alive."""
    path = Path(run_dir)
    holder = lock_holder(path)
    if holder is not None:
        raise RunLocked(path, holder)
    info = RunIndex(path.parent)._info(path)
    if info.status == "running":
        raise RunLocked(path, info.pid)


def check_resumable(run_dir: str | Path) -> Path:
    """The checkpoint ``run_dir`` resumes from; :class:`RunRefused` with the fix when a
    finished run or one without a complete checkpoint is asked to resume."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).is_file():
        raise RunRefused(f"{path} has no {CONFIG_FILE}, so it is not a run directory.",
                         "give the directory of a run (tunetop runs lists them in the app, key 5).")
    finished = finished_event(path)
    if finished is not None:
        raise RunRefused(
            f"{path.name} finished all its {finished.step} steps and wrote {path / FINAL_DIR}; "
            "a finished run is not resumed (it would train past its schedule and overwrite "
            "its output).",
            f"to train longer, start a new run from its final weights with a fresh schedule: "
            f"`tunetop train --from {path}` (on the Runs screen, r offers it).")
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        progress = run_progress(path)
        when = f" (it ended at step {progress.step}, before its first checkpoint)" if progress.step else ""
        raise RunRefused(
            f"{path.name} has no complete checkpoint in {path / CHECKPOINTS_DIR} to resume "
            f"from{when}.",
            f"start it again as a new run: `tunetop train {path / CONFIG_FILE}`; lower "
            "eval.save_steps to save checkpoints more often.")
    return checkpoint


def resume_config(run_dir: str | Path) -> RunConfig:
    """The run's config with ``resume_from`` set to its directory, ready to continue.

    The engine continues in that directory from its latest complete checkpoint
    (``Engine(..., resume_dir=config.resume_from)``). Raises :class:`RunRefused` (a
    ``ValueError``) with the reason and the fix when the run is live, finished, or has no
    complete checkpoint.
    """
    path = Path(run_dir)
    check_not_live(path)
    check_resumable(path)
    config = RunConfig.load(path / CONFIG_FILE)
    # Runtime-only attribute: not a RunConfig field, so it is never saved into a config file.
    config.resume_from = str(path)  # type: ignore[attr-defined]
    return config


def loss_history(run_dir: str | Path) -> list[tuple[int, float]]:
    """The run's logged training losses as (step, loss), finite ones only, in step order
    (a resumed run's repeated steps keep their last value)."""
    events_path = Path(run_dir) / EVENTS_FILE
    if not events_path.exists():
        return []
    losses: dict[int, float] = {}
    for event in read_events(str(events_path))[0]:
        if isinstance(event, StepLogged) and math.isfinite(event.loss):
            losses[event.step] = event.loss
    return sorted(losses.items())


def delete_run(run_dir: str | Path) -> None:
    """Delete a run directory and everything in it (checkpoints, output, reviews).

    Raises ``ValueError`` with a readable message for a folder that is not a run, or for a
    run still training (stop it first).
    """
    path = Path(run_dir)
    if not path.is_dir() or not ((path / EVENTS_FILE).exists() or (path / CONFIG_FILE).exists()):
        raise ValueError(f"{path} is not a run directory (no {EVENTS_FILE} or {CONFIG_FILE}).")
    if RunIndex(path.parent)._info(path).status == "running":
        raise ValueError(f"{path.name} is still running; stop it before deleting it.")
    shutil.rmtree(path)


def resume_dir_of(config: RunConfig) -> str | None:
    """The run directory a config resumes, or None for a new run."""
    value = getattr(config, "resume_from", None)
    return str(value) if value else None


def train_longer_config(run_dir: str | Path, settings: RunConfig | None = None) -> RunConfig:
    """A new run that starts from a finished run's final weights, with a fresh schedule.

    The settings (data, schedule, steps) are the run's own unless ``settings`` gives others.
    A LoRA or QLoRA run is continued through ``model.adapter``; a full fine-tune starts from
    its ``final/`` model. The new run is named ``<run>-more`` (made unique on disk).
    """
    path = Path(run_dir)
    source = RunConfig.load(path / CONFIG_FILE)
    final = path / FINAL_DIR
    if finished_event(path) is None or not final.is_dir():
        raise RunRefused(
            f"{path.name} has not finished, so it has no final weights to start from.",
            f"resume it instead (`tunetop train --resume {path}`, or r on the Runs screen).")
    config = copy.deepcopy(settings if settings is not None else source)
    config.model = copy.deepcopy(source.model)  # the weights it starts from are the run's
    if source.method == "full":
        config.model.name_or_path, config.model.revision = str(final), None
        config.model.adapter = None
    else:
        config.model.adapter = str(path)
    config.run_name = f"{path.name}-more"
    return config


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already trained (a run started there, or left a checkpoint); the
    detached launcher's own first lines (its launch phase) are not a run."""
    events = run_dir / EVENTS_FILE
    started = events.exists() and any(isinstance(e, RunStarted) for e in read_events(str(events))[0])
    return started or bool(complete_checkpoints(run_dir))
