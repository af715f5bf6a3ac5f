"""Keeping a live run inside its time budget: the steps resized from the run's own step and
evaluation times, and the learning-rate schedule refitted to them.

:mod:`core.timing` estimates before a run starts; this module acts while it runs (the engine
builds the keeper, :class:`core.callbacks.EventCallback` feeds it).
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from core.config import RunConfig
from core.timing import PROBE_SPREAD_FLOOR, Throughput, budget_steps


def refit_schedule(scheduler: Any, total_steps: int, warmup: int) -> bool:
    """Make a transformers learning-rate schedule end at ``total_steps`` (warm-up ``warmup``).

    transformers builds its schedules as ``LambdaLR`` over ``functools.partial`` functions
    that hold ``num_training_steps``; each is rebuilt with the new count, so the rest of the
    run follows the schedule the new length calls for. Returns whether anything changed
    (constant schedules have no length).
    """
    changed = False
    lambdas = getattr(scheduler, "lr_lambdas", None) or []
    for i, fn in enumerate(lambdas):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            keywords = dict(fn.keywords, num_training_steps=max(total_steps, 1))
            if "num_warmup_steps" in keywords:
                keywords["num_warmup_steps"] = warmup
            lambdas[i] = functools.partial(fn.func, *fn.args, **keywords)
            changed = True
    return changed


@dataclass(eq=False)
class BudgetKeeper:
    """Sizes a live run's steps to its time budget from what the run itself measures.

    The engine builds the trainer for at most ``cap`` steps (epochs or ``max_steps``), fewer
    when a cached probe already says how many fit. After the first measured steps, after each
    evaluation and after each checkpoint, :meth:`resize` recomputes the steps that fit in the
    time left, sets them as the trainer's ``max_steps`` (the trainer's flow stops there,
    evaluating and saving) and refits the learning-rate schedule to them.
    """

    budget_seconds: float
    config: RunConfig
    val_rows: int
    cap: int
    started: float
    """``time.monotonic()`` when the run began (its setup counts against the budget)."""
    throughput: Throughput | None = None
    """A cached probe's figures, if there is one."""
    drift_rows: float = 0.0
    """What scoring general drift adds to an evaluation, in validation rows, until an
    evaluation is measured (its time per row includes the drift; the callback sets 0)."""
    save_guess: float | None = None
    """A checkpoint's write time until one is measured (:func:`core.timing.save_seconds_guess`);
    ``None``: as long as a step."""
    step_times: list[float] = field(default_factory=list, init=False)
    eval_row_seconds: float | None = field(default=None, init=False)
    save_seconds: float | None = field(default=None, init=False)
    steps: int = field(default=0, init=False)
    """Steps the run is sized to now."""

    def __post_init__(self) -> None:
        self.steps = self.cap
        if self.throughput is not None:
            self.eval_row_seconds = self.throughput.eval_row_seconds
            self.save_seconds = self.throughput.save_seconds

    def initial_steps(self, now: float | None = None) -> int:
        """Steps to build the trainer for: the cap, or what a cached probe says fits."""
        if self.throughput is None:
            return self.cap
        elapsed = (time.monotonic() if now is None else now) - self.started
        self.steps = min(self.cap, budget_steps(self.budget_seconds, self.throughput, self.config,
                                                self.val_rows, elapsed=elapsed,
                                                drift_rows=self.drift_rows))
        return self.steps

    def measured(self) -> Throughput | None:
        """The figures measured so far, or ``None`` before the first step. The first step pays
        for warm-up, so it stands alone only until a second one is measured (too slow, which
        errs on the side of the budget)."""
        if not self.step_times:
            return None
        recent = (self.step_times[1:] or self.step_times)[-20:]
        step = statistics.median(recent)
        o = self.config.optim
        rows_per_step = o.per_device_train_batch_size * o.gradient_accumulation_steps
        from core.runs import EVAL_ROW_SHARE

        eval_row = self.eval_row_seconds if self.eval_row_seconds is not None \
            else step / rows_per_step * EVAL_ROW_SHARE
        save = next(s for s in (self.save_seconds, self.save_guess, max(1.0, step)) if s is not None)
        return Throughput(step_seconds=step, eval_row_seconds=eval_row, save_seconds=save,
                          setup_seconds=0.0, source="this run", spread=PROBE_SPREAD_FLOOR)

    def resize(self, done_steps: int, now: float | None = None) -> int | None:
        """The new step count when the measured figures change it, else ``None``."""
        figures = self.measured()
        if figures is None:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.started
        steps = min(self.cap, budget_steps(self.budget_seconds, figures, self.config, self.val_rows,
                                           elapsed=elapsed, done_steps=done_steps,
                                           drift_rows=self.drift_rows))
        if steps == self.steps:
            return None
        self.steps = steps
        return steps
