"""How long a run will take, and how many steps fit a time budget.

Two sources of per-step figures (:class:`Throughput`):

* **a probe**: a few real optimizer steps of this config (its model, data, batch shapes,
  precision and device), then one short evaluation, a checkpoint and the final save, run by
  the engine itself in a scratch workspace (:func:`probe_throughput`). The first step is left
  out: it pays for lazy initialisation. Probes are cached per model, device and config shape
  (:func:`shape_key`), so editing the learning rate does not measure again.
* **a FLOPs model** where no probe can run (the model would not fit, the data cannot be read,
  or the caller asked for none): training costs ``6 x params x tokens`` (``4 x`` with a frozen
  base: no weight gradients), evaluation ``2 x``; the device's speed is a short matmul,
  scaled by an efficiency calibrated on measured runs (``bench/time_accuracy.py``).

:func:`plan_run` counts the steps, evaluations and checkpoints a config will make;
:func:`estimate_time` turns the two into wall time, with warnings a user should see before
starting; :func:`budget_steps` is the largest step count whose run fits a time budget.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import RunConfig

PROBE_STEPS = 4
"""Optimizer steps of a probe; the first is not counted."""
PROBE_EVAL_BATCHES = 2
"""Evaluation batches a probe runs (enough for a per-row figure)."""
BUDGET_MARGIN = 0.05
"""Share of a time budget kept back for what varies between steps."""
END_SECONDS = 2.0
"""Kept back for the end's bookkeeping (building the whole-split evaluation, closing files)."""
PROBE_SPREAD_FLOOR = 0.10
"""Least uncertainty claimed for a probed estimate (data order and row lengths vary)."""
FLOPS_SPREAD = 0.5
"""Uncertainty of the FLOPs model (how far its calibration is from one machine to another)."""
CPU_EFFICIENCY = 0.45
"""Share of the measured matmul speed a training step reaches on a CPU (attention, norms,
the optimizer and the data collator are slower than one large matmul). Set from
``bench/time_accuracy.py`` on a 2-core AVX2 CPU: at 0.45 the FLOPs model came within -19%
(2 layers of width 64, bound by overheads), +2% (4 layers of width 256) and +17%
(SmolLM2-135M LoRA) of the real runs; each alone would have wanted 0.28, 0.46 and 0.54."""
GPU_EFFICIENCY = 0.35
"""The same on a GPU (not measured yet: the GPU figures follow the CPU model)."""
SECONDS_PER_SAVE_GIB = 4.0
"""A checkpoint's write time per GiB of trainable state (FLOPs model only)."""
GENERAL_PROMPT_TOKENS = 60
"""A drift row's length beyond its answer cap (``eval.general_max_new_tokens``), in tokens, to
weigh it against a validation row: a general prompt after the template (47 on average for the
bundled model, its system prompt included) plus the drift loop's overhead against the
trainer's evaluation. Set from ``bench/forgetting.py``: on the sample task, drift on 32 prompts
took 37.5 s beside 54.1 s for the 32 validation rows of 156 tokens."""
DECODE_STEP_ROWS = 0.22
"""One decoding step of a batch of base answers (``core.forgetting.GENERATION_BATCH`` prompts,
one new token each, cached keys) against one validation row's evaluation, in time. Set from
``bench/forgetting.py``: 32 answers of at most 48 tokens (96 steps) took 36 s on the machine
whose validation rows took 1.69 s each."""
HOURS_WARNING = 3600.0
"""A run longer than this gets a warning before it starts."""
CACHE_ENV = "TUNETOP_TIMING_CACHE"
"""Environment variable naming the probe cache file (tests point it at a scratch file)."""

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*s)?\s*$", re.IGNORECASE)


def parse_duration(text: str | None) -> float | None:
    """Seconds in ``text`` (``90s``, ``10m``, ``2h``, ``1h30m``, ``1.5h``); ``None`` when empty.

    Raises ``ValueError`` with the accepted forms when the text is none of them.
    """
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration; write it like 90s, 10m, 2h or 1h30m.")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"'{text}' is no time at all; give a budget above zero, like 10m.")
    return total


def describe_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``: a reading for people, not a clock."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- what a run will do ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """The steps, evaluations and checkpoints of one run, counted before it starts."""

    steps: int
    """Optimizer steps."""
    evals: int
    """Evaluations during training (every ``eval.eval_steps`` and at the last step)."""
    eval_rows: int
    """Validation rows each of those evaluations reads (``eval.max_rows`` caps it)."""
    final_eval_rows: int
    """Rows of the whole-set evaluation at the end (0: none, the capped ones read it all)."""
    saves: int
    """Checkpoints written during training (every ``eval.save_steps`` and at the last step),
    the final output aside."""
    warmup_steps: int
    """Steps of learning-rate warm-up (``optim.warmup_ratio`` of ``steps``)."""
    train_rows: int
    val_rows: int
    general_rows: float = 0.0
    """What scoring general drift adds to each evaluation during training, in validation rows
    (``eval.general_sample`` base answers, scaled by their length); 0 without drift."""
    base_answer_steps: int = 0
    """Decoding steps of the base model's answers to the general prompts at setup (batches
    times ``eval.general_max_new_tokens``); 0 when they are cached or not needed."""


def warmup_steps(ratio: float, steps: int) -> int:
    """Warm-up steps as transformers counts them: a ratio below 1 of the steps, rounded up;
    1 or more is a step count."""
    return int(math.ceil(ratio * steps)) if 0 <= ratio < 1 else int(ratio)


def epoch_steps(config: RunConfig, train_rows: int, world: int = 1) -> int:
    """Optimizer steps of ``num_train_epochs`` over ``train_rows`` (as the engine plans them)."""
    o = config.optim
    per_epoch = math.ceil(train_rows / max(world, 1) / o.per_device_train_batch_size
                          / o.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * o.num_train_epochs))


def plan_run(config: RunConfig, train_rows: int, val_rows: int, world: int = 1,
             steps: int | None = None, val_tokens: float = 0.0, base_answers: int = 0) -> RunPlan:
    """What ``config`` will do on ``train_rows`` / ``val_rows``; ``steps`` overrides its own count.

    ``val_tokens`` (a validation row's mean length) scales the drift rows against validation
    rows (the same length without it); ``base_answers`` general prompts still need the base
    model's answer (:func:`core.forgetting.uncached_answers`).
    """
    e = config.eval
    if steps is None:
        steps = config.optim.max_steps if config.optim.max_steps > 0 else epoch_steps(config, train_rows, world)
    # The trainer evaluates and saves every N steps and once more at the last step.
    evals = math.ceil(steps / e.eval_steps) if val_rows and e.eval_steps > 0 else 0
    capped = min(val_rows, e.max_rows) if e.max_rows else val_rows
    final = val_rows if val_rows and capped < val_rows else 0
    saves = math.ceil(steps / e.save_steps) if e.save_steps > 0 else 0
    from core.forgetting import GENERATION_BATCH

    return RunPlan(steps=steps, evals=evals, eval_rows=capped, final_eval_rows=final, saves=saves,
                   warmup_steps=warmup_steps(config.optim.warmup_ratio, steps),
                   train_rows=train_rows, val_rows=val_rows,
                   general_rows=general_rows(config, val_rows, val_tokens),
                   base_answer_steps=math.ceil(base_answers / GENERATION_BATCH) * e.general_max_new_tokens)


def general_rows(config: RunConfig, val_rows: int, val_tokens: float = 0.0) -> float:
    """What scoring general drift adds to an evaluation, in validation rows of ``val_tokens``
    (0 when the run holds out no rows: drift is measured only beside a validation loss)."""
    e = config.eval
    if not val_rows or e.general_sample <= 0:
        return 0.0
    share = (GENERAL_PROMPT_TOKENS + e.general_max_new_tokens) / val_tokens if val_tokens > 0 else 1.0
    return e.general_sample * share


# --- how fast it goes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """Per-step costs of one config on one device."""

    step_seconds: float
    """One optimizer step (all its micro-batches)."""
    eval_row_seconds: float
    """One validation row in an evaluation."""
    save_seconds: float
    """Writing one checkpoint (or the final output)."""
    setup_seconds: float
    """Loading data, tokenizer and model and building the trainer, before the first step."""
    source: str
    """``probe`` (measured now), ``cached probe`` or ``FLOPs model``."""
    spread: float
    """Relative uncertainty of the figures (0.15: within about 15%)."""
    detail: str = ""
    """How the figures were found, in one line."""
    device: str = ""


@dataclass(frozen=True)
class TimeEstimate:
    """Wall time of a run, part by part, and what a user should know before starting."""

    plan: RunPlan
    throughput: Throughput
    train_seconds: float
    eval_seconds: float
    save_seconds: float
    setup_seconds: float
    budget_seconds: float | None = None
    """The config's ``optim.time_budget`` (its steps are already sized to it in ``plan``)."""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def drift_seconds(self) -> float:
        """Scoring general drift at the evaluations during training."""
        return self.plan.evals * self.plan.general_rows * self.throughput.eval_row_seconds

    @property
    def base_answer_seconds(self) -> float:
        """The base model's answers to the general prompts at setup (0 when cached)."""
        return self.plan.base_answer_steps * DECODE_STEP_ROWS * self.throughput.eval_row_seconds

    @property
    def total_seconds(self) -> float:
        """The whole run, setup to final save (evaluations with their drift scoring, and the
        base answers a first run of a model computes, included)."""
        return (self.train_seconds + self.eval_seconds + self.save_seconds + self.setup_seconds
                + self.drift_seconds + self.base_answer_seconds)

    @property
    def sureness(self) -> str:
        """``within about 15%`` (measured) or ``rough, within about 50%`` (modelled)."""
        pct = f"within about {self.throughput.spread:.0%}"
        return pct if self.throughput.source != "FLOPs model" else f"rough, {pct}"

    def lines(self) -> list[tuple[str, str]]:
        """(label, figure) lines for the CLI and the Config screen."""
        p = self.plan
        out = [("Time", describe_duration(self.total_seconds)),
               (f" {p.steps} train steps", describe_duration(self.train_seconds))]
        if p.evals or p.final_eval_rows:
            evals = f"{p.evals} x {p.eval_rows}" + (f" + {p.final_eval_rows}" if p.final_eval_rows else "")
            out.append((f" evals {evals}", describe_duration(self.eval_seconds)))  # fits 80x24
        if self.drift_seconds:
            evals = f"{p.evals} eval{'s' if p.evals != 1 else ''}"
            out.append((f" drift at {evals}", describe_duration(self.drift_seconds)))
        if p.base_answer_steps:
            out.append((" base answers (once)", describe_duration(self.base_answer_seconds)))
        out.append((" setup and saves", describe_duration(self.setup_seconds + self.save_seconds)))
        if self.budget_seconds is not None:
            out.append((" time budget", describe_duration(self.budget_seconds)))
        out.append((" from", f"{self.throughput.source}, {self.sureness}"))
        return out


def estimate_time(plan: RunPlan, throughput: Throughput, budget_seconds: float | None = None,
                  max_steps_set: bool = False) -> TimeEstimate:
    """Wall time of ``plan`` at ``throughput``, with the warnings to show before starting."""
    t = throughput
    train = plan.steps * t.step_seconds
    evals = (plan.evals * plan.eval_rows + plan.final_eval_rows) * t.eval_row_seconds
    saves = (plan.saves + 1) * t.save_seconds
    estimate = TimeEstimate(plan, t, train, evals, saves, t.setup_seconds, budget_seconds)
    return dataclasses.replace(estimate, warnings=tuple(_warnings(estimate, max_steps_set)))


def _warnings(e: TimeEstimate, max_steps_set: bool) -> list[str]:
    p, out = e.plan, []
    # With max_steps set, the config's own check says it (core.config); said once.
    if p.warmup_steps >= p.steps and not max_steps_set:
        out.append(f"Warm-up takes all {p.steps} step{'s' if p.steps != 1 else ''} "
                   f"({p.warmup_steps} warm-up), so the learning rate never reaches its value "
                   + ("and the only step trains at learning rate 0" if p.steps == 1 else
                      "and the first step trains at learning rate 0")
                   + ". Fix: lower optim.warmup_ratio (0 for none) or train more steps.")
    if e.budget_seconds is None and e.total_seconds > HOURS_WARNING:
        what = "optim.max_steps" if max_steps_set else "these epochs"
        out.append(f"{what} take about {describe_duration(e.total_seconds)} on "
                   f"{e.throughput.device or 'this device'}. Fix: set optim.time_budget (e.g. 30m) "
                   "or lower optim.max_steps / num_train_epochs.")
    if e.eval_seconds > e.train_seconds > 0:
        out.append(f"Evaluation ({describe_duration(e.eval_seconds)}) takes longer than training "
                   f"({describe_duration(e.train_seconds)}). Fix: set eval.max_rows (e.g. 32) or "
                   "raise eval.eval_steps.")
    return out


def budget_steps(budget_seconds: float, throughput: Throughput, config: RunConfig, val_rows: int,
                 elapsed: float = 0.0, done_steps: int = 0, spent_steps_seconds: float = 0.0,
                 drift_rows: float = 0.0) -> int:
    """The most optimizer steps whose run (evaluations, checkpoints and the final save and
    evaluation included) ends within ``budget_seconds``, less a margin.

    ``elapsed`` is the time the run has already taken at ``done_steps`` steps; the remaining
    steps cost ``throughput``'s figures, each evaluation ``drift_rows`` more validation rows
    (:attr:`RunPlan.general_rows`; 0 once a measured evaluation's time includes its drift).
    At least ``done_steps`` (never fewer than 1).
    """
    e, t = config.eval, throughput
    capped = min(val_rows, e.max_rows) if e.max_rows else val_rows
    eval_cost = (capped + drift_rows) * t.eval_row_seconds
    # The end: the trainer's last evaluation and checkpoint, the final save, and the
    # whole-split evaluation when the others read only eval.max_rows.
    left = budget_seconds * (1 - BUDGET_MARGIN) - END_SECONDS - elapsed - 2 * t.save_seconds
    if val_rows:
        left -= eval_cost
    if val_rows and capped < val_rows:
        left -= val_rows * t.eval_row_seconds

    def on_the_way(every: int, steps: int) -> int:
        # after done_steps and before the last step: the last step's own are the end's above
        return max((steps - 1) // every - done_steps // every, 0) if every > 0 else 0

    def cost(steps: int) -> float:
        more = max(steps - done_steps, 0)
        evals = on_the_way(e.eval_steps, steps) if val_rows else 0
        return (more * t.step_seconds + evals * eval_cost
                + on_the_way(e.save_steps, steps) * t.save_seconds)

    if t.step_seconds <= 0:
        return max(done_steps, 1)
    low, high = done_steps, done_steps + int(max(left, 0) / t.step_seconds) + 1
    while low < high:  # largest steps with cost(steps) <= left (cost grows with steps)
        mid = (low + high + 1) // 2
        if cost(mid) <= left:
            low = mid
        else:
            high = mid - 1
    return max(low, done_steps, 1)


# --- the probe and its cache ----------------------------------------------------------------


def shape_key(config: RunConfig, device: str, longest_tokens: int) -> str:
    """What a step's time depends on: model, device, method, precision, batch shape, LoRA
    shape, padding and checkpointing; not the learning rate, the seed or the step count."""
    o, lo, d = config.optim, config.lora, config.data
    parts = [config.model.name_or_path, str(config.model.revision), device, config.method,
             o.precision, o.per_device_train_batch_size, o.gradient_accumulation_steps,
             o.gradient_checkpointing, o.padding_free, o.group_by_length,
             config.eval.per_device_eval_batch_size, d.max_length, longest_tokens,
             config.num_processes]
    if config.method != "full":
        parts += [lo.r, sorted(lo.target_modules) if isinstance(lo.target_modules, list) else lo.target_modules]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def cache_path() -> Path:
    """The probe cache: ``$TUNETOP_TIMING_CACHE`` or ``~/.cache/tunetop/timing.json``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tunetop" / "timing.json")


def cached_throughput(key: str) -> Throughput | None:
    """The probe stored under ``key``, marked as cached; ``None`` without one (or an unreadable
    cache, which a new probe rewrites)."""
    try:
        entry = json.loads(cache_path().read_text())[key]
        return dataclasses.replace(Throughput(**entry), source="cached probe")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_throughput(key: str, throughput: Throughput) -> None:
    """Remember a probe under ``key`` (written whole: a crash never leaves half a file)."""
    path = cache_path()
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entries[key] = dataclasses.asdict(throughput)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(entries, f, indent=1)
    os.replace(f.name, path)


class ProbeError(RuntimeError):
    """The probe run failed; the message says why (a FLOPs estimate can stand in)."""


def probe_throughput(config: RunConfig, on_progress: Callable[[str], None] | None = None,
                     steps: int = PROBE_STEPS) -> Throughput:
    """Measure ``config``'s step, evaluation-row and save times with a real short run.

    The engine trains ``steps`` steps of the config (its data, model and batch shapes) in a
    scratch workspace, evaluates ``PROBE_EVAL_BATCHES`` batches, writes one checkpoint and its
    final output;
    ``on_progress`` hears each phase. Raises :class:`ProbeError` when the run fails.
    """
    from core.engine import Engine
    from core.events import (
        CheckpointSaved,
        EvalProgressed,
        PhaseChanged,
        RunFailed,
        RunFinished,
        RunStarted,
        StepLogged,
    )

    probe = copy.deepcopy(config)
    probe.run_name = "probe"
    probe.report_to = ["none"]
    probe.optim.max_steps = steps
    probe.optim.time_budget = ""
    probe.optim.retry_on_oom = False
    probe.eval.logging_steps = 1
    probe.eval.eval_steps = steps
    probe.eval.save_steps = steps  # one checkpoint, at the end: its write is measured
    probe.eval.early_stopping_patience = 0
    probe.eval.keep_best = False
    probe.eval.max_rows = probe.eval.per_device_eval_batch_size * PROBE_EVAL_BATCHES
    probe.eval.general_sample, probe.data.replay = 0, 0.0  # the estimate counts drift itself
    seen: dict[str, Any] = {"steps": {}, "eval": None, "final_at": None, "checkpoint_at": None,
                            "checkpoint": None}
    started = time.time()

    def sink(event: Any) -> None:
        if isinstance(event, StepLogged):
            seen["steps"][event.step] = event.elapsed_seconds
            if on_progress:
                on_progress(f"measuring step {event.step}/{steps}")
        elif isinstance(event, EvalProgressed) and event.total and event.done == event.total:
            seen["eval"] = (event.elapsed_seconds, event.done)
            if on_progress:
                on_progress("measured an evaluation")
        elif isinstance(event, RunStarted):
            seen["started"] = event
            seen["setup"] = event.time - started
            if on_progress:
                on_progress("measuring the first steps")
        elif isinstance(event, CheckpointSaved) and seen["checkpoint_at"] is not None:
            seen["checkpoint"] = event.time - seen["checkpoint_at"]
        elif isinstance(event, PhaseChanged):
            if event.phase == "final":
                seen["final_at"] = event.time
            elif event.phase == "checkpoint":
                seen["checkpoint_at"] = event.time
            elif on_progress:
                on_progress(event.message[:1].lower() + event.message[1:])

    with tempfile.TemporaryDirectory(prefix="tunetop-probe-") as scratch:
        probe.output_dir = scratch
        engine = Engine(probe, sink=sink, workspace=scratch)
        final = engine.run()
    if isinstance(final, RunFailed) or not isinstance(final, RunFinished):
        reason = getattr(final, "reason", "the probe did not finish")
        raise ProbeError(f"The timing probe failed: {reason}")
    times = seen["steps"]
    if len(times) < 2:
        raise ProbeError("The timing probe logged fewer than two steps; nothing to measure.")
    ordered = [times[s] for s in sorted(times)]
    deltas = [b - a for a, b in zip(ordered, ordered[1:])]
    step_seconds = statistics.median(deltas)
    spread = max(PROBE_SPREAD_FLOOR, (max(deltas) - min(deltas)) / (2 * step_seconds) if step_seconds else 0)
    started_event = seen.get("started")
    eval_row = 0.0
    if seen["eval"] is not None and started_event is not None and started_event.num_val_rows:
        seconds, batches = seen["eval"]
        rows = min(started_event.num_val_rows, batches * probe.eval.per_device_eval_batch_size)
        eval_row = seconds / max(rows, 1)
    # A checkpoint (weights, optimizer state, a synced rename) costs more than the final
    # output; each save of the estimate is priced as the dearer of the two.
    final_save = max(final.time - seen["final_at"], 0.0) if seen["final_at"] else 0.0
    save = max(final_save, seen["checkpoint"] or 0.0)
    device = started_event.device if started_event is not None else ""
    return Throughput(step_seconds=step_seconds, eval_row_seconds=eval_row, save_seconds=save,
                      setup_seconds=max(seen.get("setup", 0.0), 0.0), source="probe", spread=min(spread, 0.5),
                      detail=f"{len(deltas)} steps measured on {device}: {step_seconds:.2f} s each",
                      device=device)


# --- the FLOPs model ------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def device_flops(device: str) -> float:
    """Floating-point operations per second one large matmul reaches on ``device``: the best
    of three windows of 50 ms (a shared machine's other work slows a single window by up to a
    third)."""
    import torch

    n = 1024 if device == "cpu" else 4096
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up: kernels, threads
    best = 0.0
    for _ in range(3):
        runs, began = 0, time.perf_counter()
        while time.perf_counter() - began < 0.05 or runs < 2:
            a @ b
            runs += 1
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 * runs / (time.perf_counter() - began))
    return best


def save_seconds_guess(trainable_params: int, total_params: int) -> float:
    """A checkpoint's write time from the size of the trainable state (weights, and with a
    full fine-tune the optimizer's two moments), until one has been measured."""
    frozen = trainable_params < total_params / 2
    state_gib = trainable_params * 4 / 2 ** 30 * (1 if frozen else 3)
    return 0.5 + state_gib * SECONDS_PER_SAVE_GIB


def flops_throughput(config: RunConfig, total_params: int, trainable_params: int,
                     train_tokens_per_row: float, val_tokens_per_row: float, device: str,
                     flops: float | None = None) -> Throughput:
    """Per-step costs from operation counts and the device's measured matmul speed."""
    flops = flops if flops is not None else device_flops(device)
    speed = flops * (CPU_EFFICIENCY if device == "cpu" else GPU_EFFICIENCY)
    o = config.optim
    rows_per_step = o.per_device_train_batch_size * o.gradient_accumulation_steps
    frozen = trainable_params < total_params / 2
    per_token = (4 if frozen else 6) * total_params
    step = rows_per_step * train_tokens_per_row * per_token / speed
    eval_row = val_tokens_per_row * 2 * total_params / speed
    save = save_seconds_guess(trainable_params, total_params)
    setup = 5.0 + total_params * 4 / 2 ** 30 * 2.0  # imports, then reading the weights
    return Throughput(step_seconds=step, eval_row_seconds=eval_row, save_seconds=save,
                      setup_seconds=setup, source="FLOPs model", spread=FLOPS_SPREAD,
                      detail=f"{flops / 1e9:,.0f} GFLOP/s matmul on {device}", device=device)


# --- one config, end to end -----------------------------------------------------------------


@dataclass(frozen=True)
class DataShape:
    """The rows a config trains on, measured after the chat template."""

    train_rows: int
    val_rows: int
    train_tokens: float
    """Mean tokens of a training row."""
    val_tokens: float
    longest: int


def measure_data(config: RunConfig) -> DataShape:
    """Read, split and render the config's data as the engine will (rows and tokens)."""
    from core import data as data_mod
    from core.models import load_tokenizer

    loaded = data_mod.load_data(dataclasses.replace(config.data, on_bad_rows="drop"), config.optim.seed)
    train_ex, val_ex = data_mod.split_examples(loaded.examples, config.data.validation_fraction,
                                               config.optim.seed)
    tokenizer = load_tokenizer(config.model.name_or_path, config.model.trust_remote_code,
                               config.model.revision)
    options = data_mod.RenderOptions.from_config(config.data)
    cap = config.data.max_length

    def render(examples: list) -> list[int]:
        rendered = data_mod.render_examples(tokenizer, examples, cap, config.data.assistant_only_loss, options)
        return [n for r in rendered if r.num_trained > 0 for n in r.lengths()]

    train, val = render(train_ex), render(val_ex)
    return DataShape(train_rows=len(train), val_rows=len(val),
                     train_tokens=statistics.fmean(train) if train else 0.0,
                     val_tokens=statistics.fmean(val) if val else 0.0,
                     longest=max(train + val, default=0))


def estimate_run_time(config: RunConfig, probe: bool = True,
                      on_progress: Callable[[str], None] | None = None,
                      data: DataShape | None = None) -> TimeEstimate:
    """The time estimate of ``config`` on this machine.

    Uses a cached probe of the same shape, else (with ``probe``) measures one, else the FLOPs
    model (also when the probe fails: its reason goes into the throughput's detail). A
    ``optim.time_budget`` sizes the steps as the engine will.
    """
    from core.machine import training_device

    say = on_progress or (lambda text: None)
    say("reading the data")
    shape = data or measure_data(config)
    device = training_device()
    key = shape_key(config, device, shape.longest)
    throughput = cached_throughput(key)
    failed = ""
    if throughput is None and probe:
        try:
            throughput = probe_throughput(config, say)
            store_throughput(key, throughput)
        except ProbeError as exc:
            failed = str(exc)
    if throughput is None:
        say("counting operations")
        throughput = _flops_for(config, shape, device)
        if failed:
            throughput = dataclasses.replace(throughput, detail=f"{throughput.detail}; {failed}")
    from core.forgetting import uncached_answers

    answers = uncached_answers(config, shape.train_rows, shape.val_rows)
    plan = plan_run(config, shape.train_rows, shape.val_rows, config.num_processes,
                    val_tokens=shape.val_tokens, base_answers=answers)
    budget = parse_duration(config.optim.time_budget)
    if budget is not None:
        setup = throughput.setup_seconds + estimate_time(plan, throughput).base_answer_seconds
        steps = budget_steps(budget, throughput, config, shape.val_rows, elapsed=setup,
                             drift_rows=plan.general_rows)
        plan = plan_run(config, shape.train_rows, shape.val_rows, config.num_processes,
                        min(steps, plan.steps), shape.val_tokens, answers)
    return estimate_time(plan, throughput, budget, config.optim.max_steps > 0)


def _flops_for(config: RunConfig, shape: DataShape, device: str) -> Throughput:
    from core import memory
    from core.models import load_model_config

    model_config = load_model_config(config.model.name_or_path, config.model.trust_remote_code,
                                     config.model.revision)
    params = memory.count_parameters(model_config, config)
    return flops_throughput(config, params.total, params.trainable, shape.train_tokens,
                            shape.val_tokens, device)
