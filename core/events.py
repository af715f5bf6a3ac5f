"""Typed events the engine emits while a run goes on.

Every event is a frozen dataclass of scalars and short strings, so it can cross a thread
boundary, be written as one JSON line to ``events.jsonl`` and be read back by another process
(``tunetop attach``) without loss.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple


@dataclass(frozen=True)
class Event:
    """Base of every engine event; ``time`` is the wall clock when it was made."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The event as a plain dict with its ``type`` name, ready for JSON."""
        return {"type": self.kind, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        """One JSON line (no newline) for ``events.jsonl``."""
        return json.dumps(self.to_dict(), allow_nan=True)


@dataclass(frozen=True)
class RunStarted(Event):
    """The model and data are ready and the first step is about to run."""

    kind: ClassVar[str] = "run_started"
    run_dir: str
    run_name: str
    model: str
    method: str
    device: str
    precision: str
    total_steps: int
    num_train_rows: int
    num_val_rows: int
    trainable_params: int
    total_params: int
    resumed_from_step: int = 0
    pid: int = 0
    general_prompts: int = 0
    """General prompts whose drift each evaluation measures; 0 when drift is not measured."""
    drift_threshold: float | None = None
    """``eval.drift_threshold`` of the run, for the drift alert; ``None`` when not measured."""
    eval_steps: int = 0
    """Steps between two evaluations (there is one at the last step too); 0 without a
    validation set, or in lines written before the field existed."""
    budget_seconds: float = 0.0
    """The run's time budget (``optim.time_budget``), setup included; 0 without one."""
    budget_started_at: float = 0.0
    """Wall clock the budget counts from (the run's process began); 0 without a budget."""
    objective: str = "sft"
    """``sft``, ``dpo`` or ``orpo`` (lines written before the field existed read as sft)."""


@dataclass(frozen=True)
class StepLogged(Event):
    """Training metrics for one logged optimizer step."""

    kind: ClassVar[str] = "step_logged"
    step: int
    total_steps: int
    epoch: float
    loss: float
    learning_rate: float
    grad_norm: float
    tokens_per_second: float
    samples_per_second: float
    elapsed_seconds: float
    eta_seconds: float
    """Seconds the remaining optimizer steps take at the measured step time; evaluation and
    checkpoint pauses are not in it (:meth:`core.runs.RunProgress.eta_seconds` adds them)."""
    reward_margin: float | None = None
    """Preference runs (DPO, ORPO): mean reward of the chosen minus the rejected answer; it
    grows as the model learns the preferences. ``None`` for SFT."""
    reward_accuracy: float | None = None
    """Preference runs: share of pairs whose chosen answer has the higher reward."""
    reward_chosen: float | None = None
    """Preference runs: mean reward of the chosen answers (a steady fall is a known DPO
    failure: both answers lose likelihood)."""
    reward_rejected: float | None = None
    """Preference runs: mean reward of the rejected answers."""


@dataclass(frozen=True)
class EvalLogged(Event):
    """Validation loss measured at ``step``; ``is_best`` marks a new best."""

    kind: ClassVar[str] = "eval_logged"
    step: int
    eval_loss: float
    best_eval_loss: float
    is_best: bool
    reward_margin: float | None = None
    """Preference runs: the reward margin on the held-out pairs."""
    reward_accuracy: float | None = None
    """Preference runs: preference accuracy on the held-out pairs."""
    general_loss: float | None = None
    """Mean loss per token on the base model's answers to the general prompts; ``None`` when
    drift is not measured (and in lines written before it was)."""
    general_drift: float | None = None
    """``general_loss`` minus the base model's own loss on those answers."""


@dataclass(frozen=True)
class EvalProgressed(Event):
    """Validation at ``step`` has run ``done`` of its ``total`` batches.

    Sent when an evaluation begins (``done`` 0), at most every half second while it runs,
    and at its last batch, so a long validation shows its own progress.
    """

    kind: ClassVar[str] = "eval_progressed"
    step: int
    done: int
    total: int
    elapsed_seconds: float
    """Seconds since this evaluation began."""


@dataclass(frozen=True)
class PhaseChanged(Event):
    """The run entered, or advanced in, a phase that takes a while outside the steps.

    Setup phases come before ``RunStarted`` (see :data:`SETUP_PHASES`; ``launch`` is the
    training process loading its libraries, before the engine exists); ``checkpoint`` and
    ``final`` are the pauses while a checkpoint or the final output is written. ``done`` of
    ``total`` counts the phase's items when it has any (rows tokenized, general prompts the base
    model answered), else both are 0.
    """

    kind: ClassVar[str] = "phase_changed"
    phase: str
    message: str
    done: int = 0
    total: int = 0


SETUP_PHASES = ("launch", "data", "tokenizer", "tokenize", "model", "general", "trainer")
"""Phases of :class:`PhaseChanged` before training begins, in order."""
SAVE_PHASES = ("checkpoint", "final")
"""Phases of :class:`PhaseChanged` while the run writes to disk."""


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """A complete checkpoint was written to ``path``."""

    kind: ClassVar[str] = "checkpoint_saved"
    step: int
    path: str


@dataclass(frozen=True)
class MessageLogged(Event):
    """A line for the log pane (``level`` is info, warning or error)."""

    kind: ClassVar[str] = "message_logged"
    level: str
    message: str
    early_stop: bool = False
    """Early stopping ends training here: the line says why (alerts use this flag, never
    the text; lines written before the flag existed read as ``False``)."""


@dataclass(frozen=True)
class RunStopped(Event):
    """The run was stopped on request; ``checkpoint`` is where it can resume from."""

    kind: ClassVar[str] = "run_stopped"
    status: ClassVar[str] = "stopped"
    """The run's status once this event ended it (not written: it follows from ``kind``)."""
    step: int
    reason: str
    checkpoint: str


@dataclass(frozen=True)
class RunFinished(Event):
    """The run ended normally and wrote its final adapter or model to ``output_path``."""

    kind: ClassVar[str] = "run_finished"
    status: ClassVar[str] = "finished"
    step: int
    output_path: str
    final_eval_loss: float | None
    best_eval_loss: float | None
    elapsed_seconds: float


@dataclass(frozen=True)
class RunFailed(Event):
    """The run ended on an error; ``reason`` and ``suggestion`` are readable sentences."""

    kind: ClassVar[str] = "run_failed"
    status: ClassVar[str] = "failed"
    step: int
    phase: str
    reason: str
    suggestion: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        StepLogged,
        EvalLogged,
        EvalProgressed,
        PhaseChanged,
        CheckpointSaved,
        MessageLogged,
        RunStopped,
        RunFinished,
        RunFailed,
    )
}

TerminalEvent = RunStopped | RunFinished | RunFailed
"""The events a run ends with (for annotations; ``isinstance`` takes :data:`TERMINAL_EVENTS`)."""
TERMINAL_EVENTS: tuple[type[Event], ...] = typing.get_args(TerminalEvent)

EventSink = Callable[[Event], None]


class EventChunk(NamedTuple):
    """What one read of ``events.jsonl`` found."""

    events: list[Event]
    offset: int
    """Byte offset after the last complete line: where the next read starts."""
    damaged: int
    """Complete lines skipped: not JSON, not an event, or a field of the wrong type."""


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.to_dict` output; unknown keys are ignored.

    Raises ``KeyError`` for an unknown type and ``TypeError`` for a missing field or one of
    the wrong type (``"step": "4"``, ``"loss": null``): a damaged line must not become an
    event that breaks whoever formats or folds it.
    """
    cls = EVENT_TYPES[data["type"]]
    types_ = _field_types(cls)
    kwargs = {}
    for name, expected in types_.items():
        if name in data:
            value = data[name]
            if not _has_type(value, expected):
                raise TypeError(f"{cls.kind}.{name} is {type(value).__name__}: {str(value)[:40]}")
            kwargs[name] = value
    return cls(**kwargs)


@functools.cache
def _field_types(cls: type[Event]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_SCALARS = (bool, int, float, str, type(None))


def _has_type(value: Any, expected: Any) -> bool:
    """Whether a JSON value fits a field annotation (an int fits a float field; a bool fits
    only a bool field). Annotations other than scalars are not checked."""
    options = typing.get_args(expected) or (expected,)
    if not all(option in _SCALARS for option in options):
        return True
    if value is None:
        return type(None) in options
    if isinstance(value, bool):
        return bool in options
    if isinstance(value, int):
        return int in options or float in options
    if isinstance(value, float):
        return float in options
    return isinstance(value, str) and str in options


def read_event_chunk(path: str, offset: int = 0) -> EventChunk:
    """Read complete event lines from ``path`` starting at byte ``offset``.

    A half-written last line is left for the next call; a complete line that is not a valid
    event is skipped and counted in :attr:`EventChunk.damaged` (one damaged line must not
    stop a follower, nor hide the run from the runs list).
    """
    events: list[Event] = []
    damaged = 0
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].splitlines():
        if line.strip():
            try:
                events.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                damaged += 1
    return EventChunk(events, offset + end, damaged)


def read_events(path: str, offset: int = 0) -> tuple[list[Event], int]:
    """The events of :func:`read_event_chunk` and the offset to read on from."""
    events, end, _ = read_event_chunk(path, offset)
    return events, end


def damaged_lines_message(count: int, path: str) -> MessageLogged:
    """The warning a follower shows when ``count`` lines of ``path`` were skipped."""
    lines = "line" if count == 1 else "lines"
    return MessageLogged(level="warning", message=f"{count} damaged event {lines} skipped in "
                                                  f"{path} (not JSON, or a field of the wrong type).")


def _rewards(margin: float | None, accuracy: float | None) -> str:
    """``, margin 0.42, accuracy 75%`` for a preference run's metrics; empty for SFT."""
    if margin is None:
        return ""
    return f", margin {margin:.3f}" + (f", accuracy {accuracy:.0%}" if accuracy is not None else "")


def describe_event(event: Event) -> str:
    """One readable sentence for ``event``, without markup: what the CLI prints and the
    training screen logs. Each caller adds only what differs between them (how to resume or
    review: a command on the command line, a key in the app)."""
    if isinstance(event, RunStarted):
        resumed = f", resumed at step {event.resumed_from_step}" if event.resumed_from_step else ""
        method = event.method if event.objective == "sft" else f"{event.objective} ({event.method})"
        return (f"Run {event.run_name}: {method} of {event.model} on {event.device} "
                f"({event.precision}), {event.total_steps} steps, {event.num_train_rows} train / "
                f"{event.num_val_rows} val rows, {event.trainable_params:,} of "
                f"{event.total_params:,} parameters trainable{resumed}"
                + (f"; steps sized to a time budget of {_duration(event.budget_seconds)}"
                   if event.budget_seconds else "")
                + (f"; general drift on {event.general_prompts} prompts"
                   if event.general_prompts else ""))
    if isinstance(event, StepLogged):
        return (f"Step {event.step}/{event.total_steps}: loss {event.loss:.4f}"
                f"{_rewards(event.reward_margin, event.reward_accuracy)}, "
                f"lr {event.learning_rate:.2e}, {event.tokens_per_second:,.0f} tok/s")
    if isinstance(event, EvalLogged):
        mark = " (new best)" if event.is_best else ""
        drift = ""
        if event.general_drift is not None and event.general_loss is not None:
            drift = (f"; general drift {event.general_drift:+.4f} (loss "
                     f"{event.general_loss:.4f} on the base model's answers)")
        return (f"Step {event.step}: validation loss {event.eval_loss:.4f}"
                f"{_rewards(event.reward_margin, event.reward_accuracy)}{mark}{drift}")
    if isinstance(event, EvalProgressed):
        return f"Step {event.step}: evaluating {event.done}/{event.total} batches"
    if isinstance(event, PhaseChanged):
        count = f" {event.done}/{event.total}" if event.total else ""
        return f"{event.message}{count}"
    if isinstance(event, CheckpointSaved):
        return f"Step {event.step}: checkpoint {event.path}"
    if isinstance(event, MessageLogged):
        return event.message
    if isinstance(event, RunFinished):
        best = f"{event.best_eval_loss:.4f}" if event.best_eval_loss is not None else "n/a"
        return (f"Finished at step {event.step} in {event.elapsed_seconds:.0f}s; best validation "
                f"loss {best}; output {event.output_path}")
    if isinstance(event, RunStopped):
        return f"Stopped at step {event.step}: {event.reason.rstrip('.')}"
    if isinstance(event, RunFailed):
        fix = f" Fix: {event.suggestion}" if event.suggestion else ""
        return f"Failed during {event.phase} at step {event.step}: {event.reason}{fix}"
    return event.kind


def _duration(seconds: float) -> str:
    from core.timing import describe_duration

    return describe_duration(seconds)
