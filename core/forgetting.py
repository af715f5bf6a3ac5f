"""Forgetting guard: what a fine-tune costs the model's general ability, measured while it trains.

Drift is measured without labels. At setup the base model answers a sample of general prompts
(``eval.general_prompts``, by default the bundled ``sample:general-prompts``) greedily, through
its chat template as training renders it; the answers are cached per base model, template and
answer cap (:class:`AnswerCache`), so only the first run of a model pays for them. The base
model's own loss on those answers is ``base_loss``. At each evaluation the model being trained is
scored on the same (prompt, answer) rows, assistant tokens only: ``general_loss`` is its mean
loss per token, ``general_drift = general_loss - base_loss`` (nats per token; 0 for the
untouched base, rising as the fine-tune moves away from what the base did).

An answer cut by ``eval.general_max_new_tokens`` does not end where the base would have ended
it, so its end-of-turn token is neither scored nor trained.

The drift sample is drawn with a fixed seed (:data:`PROBE_SEED`), so every run of a model is
measured on the same prompts. ``data.replay`` trains on the base model's answers to other
prompts of the set (never the sample, which would then measure itself): self-distillation
replay, which anchors the fine-tune to what the base did.

torch is imported only inside the functions that run a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from core.data.normalise import Example
PROBE_SEED = "tunetop-general-probe"
"""Seed of the drift sample: the same prompts for every run, whatever ``optim.seed``."""
ANSWERS_ENV = "TUNETOP_BASE_ANSWERS"
"""Environment variable naming the base-answer cache directory (tests point it elsewhere)."""
GENERATION_BATCH = 16
"""Prompts answered together at setup."""


def answers_dir() -> Path:
    """Where base answers are cached: ``$TUNETOP_BASE_ANSWERS``, else ``base-answers/`` in
    tunetop's cache (beside the converted bundled model)."""
    from core.models import cache_dir

    override = os.environ.get(ANSWERS_ENV)
    return Path(override).expanduser() if override else cache_dir() / "base-answers"


@dataclass(frozen=True)
class BaseAnswer:
    """The base model's greedy answer to one prompt."""

    prompt: list[dict[str, str]]
    """The prompt turns, ending in a user turn."""
    answer: str
    ended: bool
    """Whether the base ended the answer itself (else the cap on new tokens cut it)."""

    def example(self, line: int = 0, source: str = "") -> Example:
        """The prompt and answer as a training row."""
        return Example(line, [*self.prompt, {"role": "assistant", "content": self.answer}],
                       source=source)


def prompt_key(prompt: Sequence[dict[str, str]]) -> str:
    """The cache key of one prompt: its turns as canonical JSON."""
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in prompt],
                      ensure_ascii=False, sort_keys=True)


class AnswerCache:
    """Base answers of one model, template and answer cap: a JSONL file of
    ``{"prompt", "answer", "ended"}`` lines, appended batch by batch (an interrupted setup keeps
    what it computed), with the identity it is for in a ``.json`` beside it."""

    def __init__(self, identity: dict[str, Any], root: Path | None = None) -> None:
        self.identity = identity
        text = json.dumps(identity, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()[:20]
        self.path = (root or answers_dir()) / f"{key}.jsonl"

    def load(self) -> dict[str, tuple[str, bool]]:
        """Cached answers by :func:`prompt_key`; a damaged line (a crash mid-write) is skipped."""
        return load_answers(self.path)

    def append(self, answers: Sequence[BaseAnswer]) -> None:
        """Add answers (the identity file is written with the first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = self.path.with_suffix(".json")
        if not meta.exists():
            meta.write_text(json.dumps(self.identity, indent=1, sort_keys=True, default=str) + "\n",
                            encoding="utf-8")
        with open(self.path, "a", encoding="utf-8") as f:
            for a in answers:
                f.write(json.dumps({"prompt": a.prompt, "answer": a.answer, "ended": a.ended},
                                   ensure_ascii=False) + "\n")
            f.flush()


def load_answers(path: Path) -> dict[str, tuple[str, bool]]:
    """The answers of one cache file by :func:`prompt_key`; a damaged line is skipped."""
    found: dict[str, tuple[str, bool]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            row = json.loads(line)
            found[prompt_key(row["prompt"])] = (str(row["answer"]), bool(row["ended"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def model_identity(model_cfg: Any, method: str, model: Any) -> dict[str, Any]:
    """What makes a base model's greedy answers what they are: the reference and revision,
    the Hub commit, a local folder's weight files (size and time, so a re-saved model is a new
    one), and the weights as loaded (4-bit for QLoRA, else their dtype, and the device)."""
    from core.models import resolve_model_path

    ident: dict[str, Any] = {"model": model_cfg.name_or_path, "revision": model_cfg.revision}
    path = Path(resolve_model_path(model_cfg.name_or_path))
    if path.is_dir():
        ident["files"] = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                for pattern in ("*.safetensors", "*.bin") for f in path.glob(pattern))
    else:  # a Hub id: the snapshot (commit) it was loaded from, read offline from the Hub cache
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(path), "config.json", revision=model_cfg.revision)
        ident["commit"] = Path(found).parent.name if isinstance(found, str) else None
    param = next(model.parameters())
    ident["weights"] = "nf4" if method == "qlora" else str(param.dtype).removeprefix("torch.")
    ident["device"] = param.device.type
    return ident


def split_probe(count: int, sample: int) -> tuple[list[int], list[int]]:
    """Indices of the drift sample (``sample`` of ``count`` prompts, drawn with
    :data:`PROBE_SEED`) and of the rest (the replay pool), each in file order."""
    chosen = set(random.Random(PROBE_SEED).sample(range(count), min(max(sample, 0), count)))
    return sorted(chosen), [i for i in range(count) if i not in chosen]


def replay_picks(pool: Sequence[int], count: int, seed: int) -> list[int]:
    """``count`` prompts of the replay pool (all of it when it is smaller), drawn with the
    run's seed, in pool order."""
    if count >= len(pool):
        return list(pool)
    return sorted(random.Random(f"{seed}/replay").sample(list(pool), count))


class ProbePicks(NamedTuple):
    """The general prompts a run asks its base model, as indices into the prompt file."""

    sample: list[int]
    """The drift sample (empty when drift is not measured)."""
    replay: list[int]
    """The replay prompts of ``data.replay``."""
    wanted: int
    """Replay rows ``data.replay`` asks for (more than ``replay`` when the pool ran short)."""
    pool: int
    """Prompts besides the drift sample, which replay draws from."""


def probe_picks(config: Any, prompts: int, train_rows: int, measure: bool) -> ProbePicks:
    """Which of ``prompts`` general prompts a run of ``config`` with ``train_rows`` task rows
    asks its base model: the run's set-up and the time estimate both ask this, so the estimate
    counts exactly the prompts the run will ask."""
    from core.data import replay_rows

    sample, pool = split_probe(prompts, config.eval.general_sample if measure else 0)
    wanted = replay_rows(train_rows, config.data.replay)
    return ProbePicks(sample, replay_picks(pool, wanted, config.optim.seed), wanted, len(pool))


def generation_prompt(prompt: Sequence[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """The turns the base answers, with ``data.default_system_prompt`` as training adds it to a
    row without a system turn (``model`` leaves that to the template)."""
    turns = [dict(m) for m in prompt]
    if system_prompt != "model" and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns


def base_answers(generate: Callable[[list[list[dict[str, str]]]], list[tuple[str, bool]]],
                 prompts: Sequence[list[dict[str, str]]], cache: AnswerCache,
                 on_progress: Callable[[int, int], None] | None = None,
                 batch_size: int = GENERATION_BATCH, write: bool = True,
                 stop: threading.Event | None = None) -> tuple[list[BaseAnswer] | None, int]:
    """The base answer to each prompt, from ``cache`` where it has one, else from ``generate``
    (a batch of prompts to ``(answer, ended)`` each), added to the cache batch by batch unless
    ``write`` is off (a process that must not write).

    Returns the answers in prompt order and how many were generated now; ``None`` instead of
    the answers when ``stop`` was set (a batch it cut short is not cached). ``on_progress``
    gets ``(done, to_do)`` before the first batch (``done`` 0) and after each.
    """
    known = cache.load()
    missing = list(dict.fromkeys(prompt_key(p) for p in prompts if prompt_key(p) not in known))
    by_key = {prompt_key(p): p for p in prompts}
    if missing and on_progress is not None:
        on_progress(0, len(missing))
    for start in range(0, len(missing), batch_size):
        batch = [by_key[k] for k in missing[start:start + batch_size]]
        made = [BaseAnswer(p, a, e) for p, (a, e) in zip(batch, generate(batch))]
        if stop is not None and stop.is_set():
            return None, start
        if write:
            cache.append(made)
        known.update((prompt_key(a.prompt), (a.answer, a.ended)) for a in made)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(missing)), len(missing))
    return [BaseAnswer(list(p), *known[prompt_key(p)]) for p in prompts], len(missing)


def uncached_answers(config: Any, train_rows: int, val_rows: int) -> int:
    """How many general prompts a run of ``config`` still asks its base model at setup (the
    drift sample, and the replay prompts of ``data.replay``): those no cache of the same model,
    revision, system prompt and answer cap holds. The template and the loaded weights are
    checked only when the run loads the model, so a changed template is not seen here."""
    from core.data import DataError, read_prompts

    e = config.eval
    measure = e.general_sample > 0 and val_rows > 0
    if not measure and config.data.replay <= 0:
        return 0
    try:
        prompts, _ = read_prompts(e.general_prompts)
    except (DataError, OSError):
        return 0  # the run names the file and the fix
    picks = probe_picks(config, len(prompts), train_rows, measure)
    wanted = {prompt_key(prompts[i]) for i in picks.sample + picks.replay}
    same = {"model": config.model.name_or_path, "revision": config.model.revision,
            "system_prompt": config.data.default_system_prompt,
            "max_new_tokens": e.general_max_new_tokens}
    known: set[str] = set()
    for meta in sorted(answers_dir().glob("*.json")):
        try:
            identity = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(identity, dict) and all(identity.get(k) == v for k, v in same.items()):
            known |= load_answers(meta.with_suffix(".jsonl")).keys()
    return len(wanted - known)


def answer_rows(tokenizer: Any, answers: Sequence[BaseAnswer], max_length: int,
                options: Any = None) -> list[dict[str, list[int]]]:
    """Training rows (``input_ids``/``labels``, assistant tokens only) of the answers, rendered
    as training renders rows; an answer the cap cut keeps its end-of-turn token out of the
    labels, and an answer with nothing left to score is left out."""
    from core.data.render import RenderOptions, render_examples

    options = options or RenderOptions()
    rendered = render_examples(tokenizer, [a.example(i + 1) for i, a in enumerate(answers)],
                               max_length, True, options)
    rows = []
    for r, a in zip(rendered, answers):
        labels = list(r.labels)
        if not a.ended and not r.truncated and r.eos_trained:
            last = max(i for i, label in enumerate(labels) if label != -100)
            labels[last] = -100
        if any(label != -100 for label in labels):
            rows.append({"input_ids": list(r.input_ids), "labels": labels})
    return rows


def _targets(rows: Sequence[dict[str, list[int]]]) -> list[list[tuple[int, int]]]:
    """Per row, ``(position, next token)`` for each position whose next token is scored."""
    return [[(t, y[t + 1]) for t in range(len(y) - 1) if y[t + 1] != -100]
            for y in (row["labels"] for row in rows)]


def _packed_sum(model: Any, rows: Sequence[dict[str, list[int]]], device: Any) -> tuple[float, int]:
    """Summed loss and scored tokens of ``rows`` as one packed sequence (position ids restart
    at each row, as padding-free training batches do); only scored positions reach the LM head."""
    import torch
    import torch.nn.functional as F

    ids: list[int] = []
    positions: list[int] = []
    keep: list[int] = []
    targets: list[int] = []
    for row, scored in zip(rows, _targets(rows)):
        offset = len(ids)
        ids += row["input_ids"]
        positions += range(len(row["input_ids"]))
        keep += [offset + t for t, _ in scored]
        targets += [y for _, y in scored]
    if not keep:
        return 0.0, 0
    out = model(input_ids=torch.tensor([ids], device=device),
                position_ids=torch.tensor([positions], device=device),
                logits_to_keep=torch.tensor(keep, device=device), use_cache=False)
    loss = F.cross_entropy(out.logits[0].float(), torch.tensor(targets, device=device),
                           reduction="sum")
    return float(loss), len(targets)


def _padded_sum(model: Any, rows: Sequence[dict[str, list[int]]], device: Any,
                pad_id: int) -> tuple[float, int]:
    """Summed loss and scored tokens of ``rows`` as a right-padded batch."""
    import torch
    import torch.nn.functional as F

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    scored = torch.zeros((len(rows), width), dtype=torch.bool)
    targets = torch.zeros((len(rows), width), dtype=torch.long)
    for b, (row, pairs) in enumerate(zip(rows, _targets(rows))):
        ids[b, :len(row["input_ids"])] = torch.tensor(row["input_ids"])
        mask[b, :len(row["input_ids"])] = 1
        for t, y in pairs:
            scored[b, t], targets[b, t] = True, y
    if not scored.any():
        return 0.0, 0
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
    picked = out.logits[scored.to(device)].float()
    loss = F.cross_entropy(picked, targets[scored].to(device), reduction="sum")
    return float(loss), int(scored.sum())


def mean_loss(model: Any, rows: Sequence[dict[str, list[int]]], batch_size: int = 16,
              packed: bool = True, precision: str = "fp32", pad_id: int = 0) -> float:
    """The model's mean loss per scored token on ``rows``, in eval mode without gradients.

    ``packed`` joins each batch into one sequence like padding-free training (only for models
    whose attention keeps packed rows apart: see :func:`core.models.padding_free_refusal`);
    else batches are right-padded. ``precision`` ``bf16``/``fp16`` autocasts as training does.
    NaN when nothing is scored.
    """
    import torch

    device = next(model.parameters()).device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad(), autocast:
            for start in range(0, len(rows), max(batch_size, 1)):
                batch = rows[start:start + batch_size]
                s, n = (_packed_sum(model, batch, device) if packed
                        else _padded_sum(model, batch, device, pad_id))
                total, count = total + s, count + n
    finally:
        model.train(was_training)
    return total / count if count else math.nan


@dataclass
class GeneralProbe:
    """The drift measurement of one run: the scored rows and the base model's loss on them."""

    rows: list[dict[str, list[int]]]
    base_loss: float
    prompts: int
    """How many general prompts are scored."""
    batch_size: int = 16
    packed: bool = True
    precision: str = "fp32"
    pad_id: int = 0

    def loss(self, model: Any) -> float:
        """``model``'s mean loss per token on the base answers."""
        return mean_loss(model, self.rows, self.batch_size, self.packed, self.precision,
                         self.pad_id)

    def measure(self, model: Any) -> tuple[float, float]:
        """``(general_loss, general_drift)`` of ``model``."""
        loss = self.loss(model)
        return loss, loss - self.base_loss

    def with_base(self, model: Any) -> "GeneralProbe":
        """This probe with ``base_loss`` measured on ``model`` as the base: a PEFT model with its
        adapters disabled, any other model as it is now (before training)."""
        disable = getattr(model, "disable_adapter", None)
        with disable() if disable is not None else contextlib.nullcontext():
            base = self.loss(model)
        return replace(self, base_loss=base)
