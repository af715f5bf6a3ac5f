"""Trainer callbacks that turn transformers' training loop into tunetop events."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from core.rundir import COMPLETE_MARKER, checkpoint_name
from core.events import (
    CheckpointSaved,
    EvalLogged,
    EvalProgressed,
    EventSink,
    MessageLogged,
    PhaseChanged,
    StepLogged,
)

EVAL_PROGRESS_SECONDS = 0.5
"""Shortest time between two ``EvalProgressed`` events (the first and last batch always go)."""


def _float_or_nan(value: Any) -> float:
    """``value`` as a float; NaN when it is missing or not a number (a log without it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _optional(logs: dict[str, Any], key: str) -> float | None:
    """A metric only some trainers log (DPO's ``rewards/margins``): a float, or ``None``."""
    return _float_or_nan(logs[key]) if key in logs else None


def preference_metrics(logs: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    """The reward fields of :class:`StepLogged` from a DPO or ORPO log (``prefix`` ``eval_``
    for validation); all ``None`` for SFT, whose logs have no rewards."""
    return {"reward_margin": _optional(logs, f"{prefix}rewards/margins"),
            "reward_accuracy": _optional(logs, f"{prefix}rewards/accuracies"),
            "reward_chosen": _optional(logs, f"{prefix}rewards/chosen"),
            "reward_rejected": _optional(logs, f"{prefix}rewards/rejected")}


class NonFiniteError(RuntimeError):
    """A loss, gradient norm, validation loss or weight became NaN or infinite.

    Raised before anything computed from it is saved: the optimizer step is skipped for a
    bad loss or gradient norm, and a step whose weights or validation loss went bad never
    reaches a checkpoint.
    """


class AllStepsTrained(Exception):
    """Raised as training begins when the resumed checkpoint is already at the last step, so
    that no step past the schedule is ever trained (the engine writes the output instead)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"Step {step} is the last step; nothing is left to train.")
        self.step = step


def _agree(args: Any, *flags: bool) -> tuple[bool, ...]:
    """Share flags (stop/save requests, bad weights) across processes, so every rank acts on
    the same step.

    A request reaches one process (a signal, a STOP file), and with sharded weights one rank
    may see a NaN the others do not; a rank that stopped alone would leave the others
    waiting in the next all-reduce forever.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flags
    tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=args.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tuple(bool(f) for f in tensor)


def weights_nonfinite(model: Any) -> bool:
    """Whether any trainable weight is NaN or infinite.

    One sum per trainable tensor (NaN and infinity survive a sum) and one device sync: cheap
    next to the optimizer step, which reads and writes every trainable weight several times.
    """
    import torch

    sums = [p.detach().sum(dtype=torch.float32) for p in model.parameters() if p.requires_grad]
    return bool(sums) and not bool(torch.isfinite(torch.stack(sums).sum()))


class EventCallback(TrainerCallback):
    """Emits step, eval and checkpoint events, handles stop/save requests and early stopping.

    ``tokens`` is a callable returning the non-padding tokens counted since the last call
    (the trainer counts them per micro-batch). ``eval_batches`` is how many batches one
    evaluation runs (for its progress before the evaluation's loader exists). ``probe`` (a
    :class:`core.forgetting.GeneralProbe`) measures general drift at each evaluation, after the
    validation loss.
    """

    def __init__(
        self,
        sink: EventSink,
        stop_requested: threading.Event,
        save_requested: threading.Event,
        tokens: Any,
        patience: int,
        eval_batches: int = 0,
        budget: Any = None,
        probe: Any = None,
    ) -> None:
        self.sink = sink
        self.probe = probe
        self._probe_timed = False
        self.stop_requested = stop_requested
        self.save_requested = save_requested
        self.tokens = tokens
        self.patience = patience
        self.best_eval_loss: float | None = None
        self.last_eval_loss: float | None = None
        self.evals_without_improvement = 0
        self.early_stopped = False
        self.stopped_by_request = False
        self.last_checkpoint: str = ""
        self.phase = "setup"
        self._start = time.monotonic()
        self._train_seconds = 0.0
        self._step_started = 0.0
        self._step_time_ema: float | None = None
        self._window_seconds = 0.0
        self._window_samples = 0
        self._samples_per_step = 1
        self.eval_batches = eval_batches
        self._eval_started: float | None = None
        self._eval_done = 0
        self._eval_shown = 0.0
        self.budget = budget
        """A :class:`core.budget.BudgetKeeper` sizing the run to its time budget, or None."""
        self.whole_split = False
        """Set for the whole-split evaluation after training: reported, but not compared
        with the capped evaluations' best."""
        self._save_started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        # The trainer would otherwise train one step past max_steps (at learning rate 0).
        if state.max_steps and state.global_step >= state.max_steps:
            raise AllStepsTrained(state.global_step)
        self._start = time.monotonic()
        self._samples_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
        )
        self.phase = "train"

    def on_step_begin(self, args, state, control, **kwargs):
        self.phase = "train"
        self._step_started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        # Step time excludes eval and save pauses, which happen after on_step_end.
        took = time.monotonic() - self._step_started
        self._train_seconds += took
        self._window_seconds += took
        self._window_samples += self._samples_per_step
        self._step_time_ema = took if self._step_time_ema is None else 0.9 * self._step_time_ema + 0.1 * took
        model = kwargs.get("model")
        bad = model is not None and weights_nonfinite(model)
        stop, save, bad = _agree(args, self.stop_requested.is_set(), self.save_requested.is_set(), bad)
        if bad:
            raise NonFiniteError(f"Weights became NaN or infinite in the optimizer step of step "
                                 f"{state.global_step}.")
        if stop:
            self.stopped_by_request = True
            control.should_training_stop = True
            control.should_save = True
        if save:
            self.save_requested.clear()
            control.should_save = True
        if self.budget is not None:
            self.budget.step_times.append(took)
            # Every step: the time left is measured again each time, so a slower stretch
            # is made up at once.
            self._fit_budget(state, control, kwargs.get("lr_scheduler"))
        if control.should_evaluate and self.eval_batches:
            # The flow callback (which runs first) decided to evaluate after this step:
            # say so now, the first batch may take a while.
            self._begin_eval(state.global_step)
        return control

    def _fit_budget(self, state: Any, control: Any, scheduler: Any) -> None:
        """Size the remaining steps to the time left and refit the schedule to them."""
        from core.budget import refit_schedule
        from core.timing import warmup_steps

        steps = self.budget.resize(state.global_step)
        if steps is None:
            return
        state.max_steps = steps
        if scheduler is not None:
            refit_schedule(scheduler, steps, warmup_steps(self.budget.config.optim.warmup_ratio, steps))
        if state.global_step >= steps and not control.should_training_stop:
            # Already at the new end (the flow callback checked before this one): end here,
            # as the flow would, with an evaluation and a checkpoint.
            control.should_training_stop = True
            control.should_save = True
            control.should_evaluate = bool(self.eval_batches)

    def _begin_eval(self, step: int) -> None:
        self._eval_started = self._eval_shown = time.monotonic()
        self._eval_done = 0
        self.phase = "eval"
        self.sink(EvalProgressed(step=step, done=0, total=self.eval_batches, elapsed_seconds=0.0))

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        seconds = max(self._window_seconds, 1e-9)
        tokens = self.tokens()
        remaining = max(state.max_steps - state.global_step, 0)
        self.sink(
            StepLogged(
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=_float_or_nan(state.epoch),
                loss=_float_or_nan(logs.get("loss")),
                learning_rate=_float_or_nan(logs.get("learning_rate")),
                grad_norm=_float_or_nan(logs.get("grad_norm")),
                tokens_per_second=tokens / seconds,
                samples_per_second=self._window_samples / seconds,
                elapsed_seconds=time.monotonic() - self._start,
                eta_seconds=remaining * (self._step_time_ema or 0.0),
                **preference_metrics(logs),
            )
        )
        self._window_seconds = 0.0
        self._window_samples = 0

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self._eval_started is None:  # an evaluation the flow did not announce
            self._begin_eval(state.global_step)
        self._eval_done += 1
        try:
            total = len(eval_dataloader) if eval_dataloader is not None else self.eval_batches
        except TypeError:  # a loader without a length
            total = self.eval_batches
        total = max(total, self._eval_done)
        now = time.monotonic()
        if self._eval_done == total or now - self._eval_shown >= EVAL_PROGRESS_SECONDS:
            self._eval_shown = now
            self.sink(EvalProgressed(step=state.global_step, done=self._eval_done, total=total,
                                     elapsed_seconds=now - self._eval_started))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        raw = (metrics or {}).get("eval_loss")
        loss = _float_or_nan(raw)
        if raw is not None and not math.isfinite(loss):
            # Before the checkpoint of this step is written (the trainer saves after this).
            self.sink(EvalLogged(step=state.global_step, eval_loss=loss, is_best=False,
                                 best_eval_loss=self.best_eval_loss if self.best_eval_loss is not None else math.nan))
            raise NonFiniteError(f"Validation loss became {loss} at step {state.global_step}.")
        self.last_eval_loss = loss
        if self.whole_split:
            best = self.best_eval_loss if self.best_eval_loss is not None else math.nan
            self.sink(EvalLogged(step=state.global_step, eval_loss=loss, best_eval_loss=best, is_best=False))
            self._eval_started = None
            return control
        general_loss = general_drift = None
        probe_seconds = None
        if self.probe is not None and kwargs.get("model") is not None:
            started = time.monotonic()
            general_loss, general_drift = self.probe.measure(kwargs["model"])
            probe_seconds = time.monotonic() - started
        # after the probe: the time budget counts what drift adds to each evaluation
        if self.budget is not None and self._eval_started is not None:
            rows = min(self.budget.val_rows, self.budget.config.eval.max_rows or self.budget.val_rows)
            self.budget.eval_row_seconds = (time.monotonic() - self._eval_started) / max(rows, 1)
            self.budget.drift_rows = 0.0  # in the measured time per row now
            self._fit_budget(state, control, kwargs.get("lr_scheduler"))
        is_best = math.isfinite(loss) and (self.best_eval_loss is None or loss < self.best_eval_loss)
        if is_best:
            self.best_eval_loss = loss
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1
        rewards = preference_metrics(metrics or {}, "eval_")
        self.sink(
            EvalLogged(
                step=state.global_step,
                eval_loss=loss,
                best_eval_loss=self.best_eval_loss if self.best_eval_loss is not None else math.nan,
                is_best=is_best,
                reward_margin=rewards["reward_margin"],
                reward_accuracy=rewards["reward_accuracy"],
                general_loss=general_loss,
                general_drift=general_drift,
            )
        )
        self._eval_started = None
        if probe_seconds is not None and not self._probe_timed:
            # once per run: what the drift measurement adds to an evaluation, in the log
            self._probe_timed = True
            val = _float_or_nan((metrics or {}).get("eval_runtime"))
            self.sink(MessageLogged(
                level="info",
                message=f"General drift took {probe_seconds:.1f}s at this evaluation "
                        f"({self.probe.prompts} prompts); the validation loss took {val:.1f}s."))
        if self.patience and self.evals_without_improvement >= self.patience:
            self.early_stopped = True
            control.should_training_stop = True
            self.sink(
                MessageLogged(
                    level="warning",
                    message=(
                        f"Early stop at step {state.global_step}: validation loss has not improved "
                        f"for {self.patience} evaluations (best {self.best_eval_loss:.4f})."
                    ),
                    early_stop=True,
                )
            )
        self.phase = "train"
        return control

    def checkpoint_begins(self, step: int) -> None:
        """The trainer starts writing the checkpoint of ``step`` (a pause worth showing)."""
        self.phase = "save"
        self._save_started = time.monotonic()
        self.sink(PhaseChanged(phase="checkpoint", message=f"Saving {checkpoint_name(step)}"))

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / checkpoint_name(state.global_step)
        # The trainer published it whole (with its marker); anything else is not a checkpoint.
        if state.is_world_process_zero and (path / COMPLETE_MARKER).is_file():
            self.last_checkpoint = str(path)
            self.sink(CheckpointSaved(step=state.global_step, path=str(path)))
        if self.budget is not None and self._save_started is not None:
            self.budget.save_seconds = time.monotonic() - self._save_started
            self._fit_budget(state, control, kwargs.get("lr_scheduler"))
        self._save_started = None
        self.phase = "train"
