"""Alerts computed from a run's event stream: pure functions and a small tracker.

Each check reads plain numbers or events and returns an :class:`Alert` or ``None``; the
:class:`AlertTracker` folds events one by one and returns each alert once. :data:`ALERT_RULES`
says in words, with the thresholds below, what makes each alert fire (the training screen
shows them while none has). Nothing here knows about the UI.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.events import Event, EvalLogged, MessageLogged, RunFailed, RunStarted, StepLogged

RISING_EVALS = 2
"""Validation losses in a row above the best one that count as overfitting."""
FLAT_WINDOW = 20
"""Logged training losses compared for a plateau: the newer half against the older half."""
FLAT_TOLERANCE = 0.01
"""The newer half of the window must average at least this share below the older half, or
the loss counts as flat. Means of halves, not single values, so batch-to-batch noise (a few
percent on real data) neither hides a plateau nor fakes one."""
DIVERGE_WINDOW = 5
"""Logged training losses averaged when looking for a rising (diverging) loss."""
DIVERGE_FACTOR = 1.5
"""The average of the last ``DIVERGE_WINDOW`` losses at this multiple of its lowest value
counts as diverging."""
DRIFT_RISES = 2
"""Evaluations in a row at which general drift rose, counting from the base model's 0."""
MARGIN_WINDOW = 10
"""Logged reward margins of a preference run compared for a stall: newer half against older."""
CHOSEN_WINDOW = 5
"""Logged chosen rewards of a preference run averaged when looking for a fall."""
CHOSEN_FLOOR = -0.5
"""A mean chosen reward below this: the preferred answers grow less likely than under the
reference (DPO's known failure: the margin grows because both answers sink)."""


@dataclass(frozen=True)
class AlertRule:
    """What makes one alert fire, in words, for the user (thresholds included)."""

    key: str
    """The key (or key prefix) of the alerts this rule raises."""
    level: str
    title: str
    when: str
    """The condition, in a sentence."""
    short: str
    """The condition in a few words, for a one-line summary."""
    preference: bool = False
    """Only preference runs (DPO, ORPO) raise it."""
    drift: bool = False
    """Only runs that measure general drift (``eval.general_sample`` > 0) raise it."""


ALERT_RULES: tuple[AlertRule, ...] = (
    AlertRule("nonfinite", "error", "Non-finite values",
              "a training loss, gradient norm, validation loss or trainable weight is NaN or "
              "infinite; the run stops at once and nothing from that step is saved",
              "NaN (stops)"),
    AlertRule("diverging", "warning", "Training loss rising",
              f"the mean of the last {DIVERGE_WINDOW} logged training losses reaches "
              f"{DIVERGE_FACTOR:g}x its lowest: the learning rate is too high",
              f"loss {DIVERGE_FACTOR:g}x low"),
    AlertRule("overfit", "warning", "Validation loss rising",
              f"validation loss rises {RISING_EVALS} evaluations in a row after its best: the "
              "model is memorising the training data",
              f"val up {RISING_EVALS}x"),
    AlertRule("flat", "warning", "Training loss flat",
              f"the last {FLAT_WINDOW // 2} logged training losses average less than "
              f"{FLAT_TOLERANCE:.0%} below the {FLAT_WINDOW // 2} before them",
              f"flat {FLAT_WINDOW} logs"),
    AlertRule("margin-stalled", "warning", "Reward margin stalled",
              f"in a DPO/ORPO run, the last {MARGIN_WINDOW // 2} logged reward margins average "
              f"no more than the {MARGIN_WINDOW // 2} before them while preference accuracy is "
              "below 100%", "margin not growing", preference=True),
    AlertRule("chosen-falling", "warning", "Chosen reward falling",
              f"in a DPO/ORPO run, the last {CHOSEN_WINDOW} logged chosen rewards average below "
              f"{CHOSEN_FLOOR:g}: the preferred answers become less likely than before training",
              f"chosen reward < {CHOSEN_FLOOR:g}", preference=True),
    AlertRule("drift", "warning", "General drift rising: forgetting",
              "general drift (the loss per token on the base model's own answers to general "
              "prompts, above the base's) passes eval.drift_threshold and rose at each of the "
              f"last {DRIFT_RISES} evaluations: the fine-tune is costing general ability",
              "drift > {threshold} rising", drift=True),
    AlertRule("early-stop", "info", "Early stop",
              "validation loss has not improved for eval.early_stopping_patience evaluations",
              "early stop"),
    AlertRule("failed", "error", "Run failed",
              "the run ends on an error; the alert gives the reason and the fix", "failure"),
)
"""Every alert the tracker raises, with what triggers it."""


def rules_summary(preference: bool = False, drift_threshold: float | None = None) -> str:
    """One line listing what makes each alert fire (shown while none has; it fits 80 columns
    for an SFT run, the README's Alerts table says each rule in full); the rules of preference
    runs only when ``preference``, the drift rule only with the run's ``drift_threshold`` (a
    run that measures general drift)."""
    return "Alerts: " + " · ".join(
        r.short.format(threshold=f"{drift_threshold:g}") if r.drift else r.short
        for r in ALERT_RULES
        if r.key != "failed" and (preference or not r.preference)
        and (drift_threshold is not None or not r.drift))


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
    """The newer half of the last ``window`` training losses averages less than
    ``tolerance`` below the older half: training has stopped making progress."""
    if len(losses) < window:
        return None
    tail = [v for _, v in list(losses)[-window:]]
    if not all(math.isfinite(v) for v in tail):
        return None
    half = window // 2
    older, newer = sum(tail[:half]) / half, sum(tail[half:]) / (window - half)
    if older <= 0 or newer < older * (1 - tolerance):
        return None
    first, last = losses[-window][0], losses[-1][0]
    change = (newer - older) / older
    return Alert(
        key="flat",
        level="warning",
        title="Training loss is flat",
        detail=(
            f"Training loss averaged {older:.4f} then {newer:.4f} ({change:+.2%}) from step "
            f"{first} to {last}. The learning rate may be too low or the schedule has decayed "
            f"to zero; if validation loss is also flat the model has converged and you can "
            f"stop (x)."
        ),
    )


def check_diverging(
    losses: Sequence[tuple[int, float]],
    lowest: float | None,
    window: int = DIVERGE_WINDOW,
    factor: float = DIVERGE_FACTOR,
) -> Alert | None:
    """The mean of the last ``window`` training losses is ``factor`` times ``lowest`` (the
    lowest such mean seen in the run) or more."""
    if lowest is None or lowest <= 0 or len(losses) < window:
        return None
    tail = [v for _, v in list(losses)[-window:]]
    mean = sum(tail) / window
    if not math.isfinite(mean) or mean < lowest * factor:
        return None
    return Alert(
        key="diverging",
        level="warning",
        title="Training loss rising: diverging",
        detail=(
            f"Training loss averages {mean:.4f} over the last {window} logged steps (to step "
            f"{losses[-1][0]}), {mean / lowest:.1f}x its lowest average {lowest:.4f}. The learning "
            f"rate is too high for this model: stop (x) and start again with about half of it."
        ),
    )


def check_margin_stalled(steps: Sequence[StepLogged], window: int = MARGIN_WINDOW) -> Alert | None:
    """A preference run whose reward margin stopped growing before the pairs are learnt: the
    newer half of the last ``window`` logged margins averages no more than the older half,
    and the latest preference accuracy is below 1."""
    rows = [s for s in steps if s.reward_margin is not None][-window:]
    if len(rows) < window:
        return None
    margins = [s.reward_margin for s in rows]
    if not all(math.isfinite(m) for m in margins):
        return None
    half = window // 2
    older, newer = sum(margins[:half]) / half, sum(margins[half:]) / (window - half)
    accuracy = rows[-1].reward_accuracy
    if newer > older or (accuracy is not None and accuracy >= 1.0):
        return None
    return Alert(
        key="margin-stalled",
        level="warning",
        title="Reward margin stalled",
        detail=(
            f"The reward margin averaged {older:.3f} then {newer:.3f} from step {rows[0].step} "
            f"to {rows[-1].step}, with preference accuracy at "
            f"{'?' if accuracy is None else f'{accuracy:.0%}'}. The learning rate may be too "
            f"low, or beta too high (preference.beta) for the model to move; or the pairs "
            f"disagree with each other."
        ),
    )


def check_chosen_falling(steps: Sequence[StepLogged], window: int = CHOSEN_WINDOW,
                         floor: float = CHOSEN_FLOOR) -> Alert | None:
    """A preference run whose chosen reward averages below ``floor`` over the last
    ``window`` logs: the margin may still grow, but because both answers sink."""
    chosen = [s.reward_chosen for s in steps if s.reward_chosen is not None][-window:]
    if len(chosen) < window or not all(math.isfinite(c) for c in chosen):
        return None
    mean = sum(chosen) / window
    if mean >= floor:
        return None
    return Alert(
        key="chosen-falling",
        level="warning",
        title="Chosen reward falling",
        detail=(
            f"The chosen answers' reward averages {mean:.3f} over the last {window} logged "
            f"steps: the model makes the answers you preferred less likely than before training "
            f"(the margin grows only because the rejected ones sink faster). Raise "
            f"preference.beta, lower the learning rate, or train fewer steps; try objective: "
            f"orpo, whose SFT term keeps the chosen answers likely."
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


@dataclass(eq=False)
class AlertTracker:
    """Folds events into alerts; :meth:`update` returns alerts not raised before."""

    rising: int = RISING_EVALS
    flat_window: int = FLAT_WINDOW
    flat_tolerance: float = FLAT_TOLERANCE
    losses: deque[tuple[int, float]] = field(init=False)
    """The latest logged training losses (enough for the flat and diverging checks)."""
    lowest_mean: float | None = field(default=None, init=False)
    """The lowest mean of ``DIVERGE_WINDOW`` consecutive logged losses so far."""
    evals: list[tuple[int, float]] = field(default_factory=list, init=False)
    preference_steps: deque[StepLogged] = field(
        default_factory=lambda: deque(maxlen=max(MARGIN_WINDOW, CHOSEN_WINDOW)), init=False)
    """The latest logged steps of a preference run (those with rewards)."""
    drifts: list[tuple[int, float]] = field(default_factory=list, init=False)
    drift_threshold: float | None = field(default=None, init=False)
    """The run's ``eval.drift_threshold``, from its :class:`RunStarted`."""
    method: str = field(default="", init=False)
    raised: dict[str, Alert] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.losses = deque(maxlen=max(self.flat_window, DIVERGE_WINDOW))

    def update(self, event: Event) -> list[Alert]:
        """New alerts caused by ``event`` (each key at most once per run)."""
        found: list[Alert | None] = []
        if isinstance(event, StepLogged):
            found.append(check_nonfinite(event))
            self.losses.append((event.step, event.loss))
            found.append(check_flat_loss(self.losses, self.flat_window, self.flat_tolerance))
            found.append(check_diverging(self.losses, self.lowest_mean))
            self._fold_lowest_mean()
            if event.reward_margin is not None:
                self.preference_steps.append(event)
                found.append(check_margin_stalled(self.preference_steps))
                found.append(check_chosen_falling(self.preference_steps))
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

    def _fold_lowest_mean(self) -> None:
        if len(self.losses) >= DIVERGE_WINDOW:
            tail = list(self.losses)[-DIVERGE_WINDOW:]
            mean = sum(v for _, v in tail) / DIVERGE_WINDOW
            if math.isfinite(mean) and (self.lowest_mean is None or mean < self.lowest_mean):
                self.lowest_mean = mean

    def update_all(self, events: Iterable[Event]) -> list[Alert]:
        """:meth:`update` over many events."""
        return [alert for event in events for alert in self.update(event)]
