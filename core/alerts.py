"""Alerts computed from a run's event stream: pure functions and a small tracker.

Each check reads plain numbers or events and returns an :class:`Alert` or ``None``; the
:class:`AlertTracker` folds events one by one and returns each alert once. The training
screen shows the alerts; nothing here knows about the UI.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.events import Event, EvalLogged, MessageLogged, RunFailed, RunStarted, StepLogged

RISING_EVALS = 2
"""Validation losses in a row above the best one that count as overfitting."""
FLAT_WINDOW = 20
"""Logged training losses that must all be nearly equal to count as a plateau."""
FLAT_TOLERANCE = 0.005
"""Relative spread (max-min over mean) under which a window of losses counts as flat."""
DRIFT_RISES = 2
"""Evaluations in a row at which general drift rose, counting from the base model's 0."""


@dataclass(frozen=True)
class Alert:
    """Something the user should act on; ``key`` identifies it so it is raised once."""

    key: str
    """Stable identity, e.g. ``nonfinite`` or ``overfit``."""
    level: str
    """``error``, ``warning`` or ``info``."""
    title: str
    """A few words."""
    detail: str
    """What happened and what to do, in sentences."""
    stop_run: bool = False
    """Whether the UI should ask the engine to stop (non-finite values)."""


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def check_nonfinite(step: StepLogged) -> Alert | None:
    """NaN or infinite loss or gradient norm: training is broken and should stop."""
    bad = [
        (name, value)
        for name, value in (("loss", step.loss), ("gradient norm", step.grad_norm))
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value))
    ]
    if not bad:
        return None
    what = " and ".join(f"{name} {value}" for name, value in bad)
    return Alert(
        key="nonfinite",
        level="error",
        title="Non-finite values: run stopped",
        detail=(
            f"Step {step.step}: {what}. The run is being stopped; the last checkpoint before "
            f"this step is intact. Lower the learning rate (e.g. halve it), keep max_grad_norm "
            f"at 1.0, or train in fp32."
        ),
        stop_run=True,
    )


def check_rising_validation(
    evals: Sequence[tuple[int, float]], rising: int = RISING_EVALS
) -> Alert | None:
    """Validation loss above its best for ``rising`` evaluations in a row, each higher.

    ``evals`` is ``(step, eval_loss)`` in order. The best checkpoint stays on disk, so the
    alert says which one to keep.
    """
    finite = [(s, v) for s, v in evals if math.isfinite(v)]
    if len(finite) < rising + 1:
        return None
    best_step, best = min(finite, key=lambda sv: sv[1])
    tail = finite[-(rising + 1):]
    increasing = all(b[1] > a[1] for a, b in zip(tail, tail[1:]))
    if not increasing or tail[-1][1] <= best or best_step > tail[0][0]:
        return None
    path = " → ".join(_fmt(v) for _, v in tail)
    return Alert(
        key=f"overfit@{best_step}",
        level="warning",
        title="Validation loss rising: overfitting",
        detail=(
            f"Validation loss rose {rising} evaluations in a row ({path}); the model is "
            f"starting to memorise the training data. Keep the best checkpoint (step "
            f"{best_step}, {_fmt(best)}): the run exports it at the end when keep_best is on. "
            f"Stop now (x) or let early stopping end the run."
        ),
    )


def check_flat_loss(
    losses: Sequence[tuple[int, float]],
    window: int = FLAT_WINDOW,
    tolerance: float = FLAT_TOLERANCE,
) -> Alert | None:
    """The last ``window`` training losses all within ``tolerance`` of their mean."""
    if len(losses) < window:
        return None
    tail = [v for _, v in list(losses)[-window:]]
    if not all(math.isfinite(v) for v in tail):
        return None
    mean = sum(tail) / window
    if mean <= 0:
        return None
    spread = (max(tail) - min(tail)) / mean
    if spread > tolerance:
        return None
    first, last = losses[-window][0], losses[-1][0]
    return Alert(
        key="flat",
        level="warning",
        title="Training loss is flat",
        detail=(
            f"Training loss has stayed at {mean:.4f} (±{spread * 50:.2f}%) from step {first} to "
            f"{last}. The learning rate may be too low or the schedule has decayed to zero; if "
            f"validation loss is also flat the model has converged and you can stop (x)."
        ),
    )


def check_drift(drifts: Sequence[tuple[int, float]], threshold: float, method: str = "",
                rises: int = DRIFT_RISES) -> Alert | None:
    """General drift above ``threshold`` that rose at each of the last ``rises`` evaluations.

    ``drifts`` is ``(step, general_drift)`` in order; the untouched base model's drift (0 at
    step 0) comes first, so a run whose drift rose from the start fires at its ``rises``-th
    evaluation. The fixes are the fine-tuning guides': a lower learning rate, LoRA instead of
    full fine-tuning (for ``method`` full), fewer steps, and general data mixed back in.
    """
    series = [(0, 0.0), *((s, d) for s, d in drifts if math.isfinite(d))]
    if len(series) < rises + 1:
        return None
    tail = series[-(rises + 1):]
    step, last = tail[-1]
    if last <= threshold or not all(b[1] > a[1] for a, b in zip(tail, tail[1:])):
        return None
    path = " → ".join(f"{d:+.3f}" for _, d in tail)
    fixes = ["lower optim.learning_rate (halve it)"]
    if method == "full":
        fixes.append("train LoRA instead of the full model (method: lora)")
    fixes += ["train fewer steps (optim.max_steps, or export an earlier checkpoint)",
              "mix general data back in (data.replay: 0.05 trains on the base model's own "
              "answers to general prompts)"]
    return Alert(
        key="drift",
        level="warning",
        title="General drift rising: forgetting",
        detail=(
            f"Step {step}: the model's loss on the base model's answers to general prompts is "
            f"{last:+.3f} per token above the base's (threshold {threshold:g}) and rose at each "
            f"of the last {rises} evaluations ({path}): the fine-tune is costing general "
            f"ability. Fixes: {'; '.join(fixes)}. Judge it in a review on general prompts."
        ),
    )


def check_early_stop(event: Event) -> Alert | None:
    """The engine's early-stopping message (a ``MessageLogged`` flagged ``early_stop``)."""
    if not (isinstance(event, MessageLogged) and event.early_stop):
        return None
    return Alert(
        key="early-stop",
        level="info",
        title="Early stop",
        detail=f"{event.message} The best checkpoint is kept and exported.",
    )


def check_failure(event: RunFailed) -> Alert:
    """The engine failed: its readable reason and suggestion."""
    nonfinite = any(w in event.reason.lower() for w in ("became nan", "became inf", "non-finite"))
    fix = f" Fix: {event.suggestion}" if event.suggestion else ""
    return Alert(
        key="nonfinite" if nonfinite else "failed",
        level="error",
        title="Non-finite values: run stopped" if nonfinite else f"Run failed during {event.phase}",
        detail=f"{event.reason}{fix}",
    )


class AlertTracker:
    """Folds events into alerts; :meth:`update` returns alerts not raised before."""

    def __init__(
        self,
        rising: int = RISING_EVALS,
        flat_window: int = FLAT_WINDOW,
        flat_tolerance: float = FLAT_TOLERANCE,
    ) -> None:
        self.rising = rising
        self.flat_window = flat_window
        self.flat_tolerance = flat_tolerance
        self.losses: deque[tuple[int, float]] = deque(maxlen=flat_window)
        self.evals: list[tuple[int, float]] = []
        self.drifts: list[tuple[int, float]] = []
        self.drift_threshold: float | None = None
        """The run's ``eval.drift_threshold``, from its :class:`RunStarted`."""
        self.method = ""
        self.raised: dict[str, Alert] = {}

    def update(self, event: Event) -> list[Alert]:
        """New alerts caused by ``event`` (each key at most once per run)."""
        found: list[Alert | None] = []
        if isinstance(event, StepLogged):
            found.append(check_nonfinite(event))
            self.losses.append((event.step, event.loss))
            found.append(check_flat_loss(self.losses, self.flat_window, self.flat_tolerance))
        elif isinstance(event, RunStarted):
            self.drift_threshold, self.method = event.drift_threshold, event.method
        elif isinstance(event, EvalLogged):
            self.evals.append((event.step, event.eval_loss))
            found.append(check_rising_validation(self.evals, self.rising))
            if event.general_drift is not None and self.drift_threshold is not None:
                self.drifts.append((event.step, event.general_drift))
                found.append(check_drift(self.drifts, self.drift_threshold, self.method))
        elif isinstance(event, MessageLogged):
            found.append(check_early_stop(event))
        elif isinstance(event, RunFailed):
            found.append(check_failure(event))
        new = []
        for alert in found:
            if alert is not None and alert.key not in self.raised:
                self.raised[alert.key] = alert
                new.append(alert)
        return new

    def update_all(self, events: Iterable[Event]) -> list[Alert]:
        """:meth:`update` over many events."""
        return [alert for event in events for alert in self.update(event)]
