"""Keeping a live run inside its time budget: the steps resized from the run's own step and
evaluation times, and the learning-rate schedule refitted to them.

:mod:`core.timing` estimates before a run starts; this module acts while it runs (the engine
builds the keeper, :class:`core.callbacks.EventCallback` feeds it).
"""

from __future__ import annotations

import functools
import statistics
import time
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


class BudgetKeeper:
    """Sizes a live run's steps to its time budget from what the run itself measures.

    The engine builds the trainer for at most ``cap`` steps (epochs or ``max_steps``), fewer
    when a cached probe already says how many fit. After the first measured steps, after each
    evaluation and after each checkpoint, :meth:`resize` recomputes the steps that fit in the
    time left, sets them as the trainer's ``max_steps`` (the trainer's flow stops there,
    evaluating and saving) and refits the learning-rate schedule to them.
    """

    def __init__(self, budget_seconds: float, config: RunConfig, val_rows: int, cap: int,
                 started: float, throughput: Throughput | None = None,
                 drift_rows: float = 0.0) -> None:
        self.budget_seconds = budget_seconds
        self.config = config
        self.val_rows = val_rows
        self.cap = cap
        self.started = started
        """``time.monotonic()`` when the run began (its setup counts against the budget)."""
        self.throughput = throughput
        self.step_times: list[float] = []
        self.eval_row_seconds: float | None = throughput.eval_row_seconds if throughput else None
        self.save_seconds: float | None = throughput.save_seconds if throughput else None
        self.steps = cap
        self.drift_rows = drift_rows
        """What scoring general drift adds to an evaluation, in validation rows, until an
        evaluation is measured (its time per row includes the drift; the callback sets 0)."""

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
        save = self.save_seconds if self.save_seconds is not None else max(1.0, step)
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
