"""Setting up the forgetting guard for a run: the base model's answers to the general prompts
(cached per base model and template), the drift probe scored at each evaluation, and the replay
rows of ``data.replay``.

Kept out of :mod:`core.engine` (which calls :func:`prepare` once the model is loaded) and out of
:mod:`core.forgetting` (the measure itself, which needs no run).
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from typing import Any

from core import forgetting
from core.config import ConfigError, ConfigProblem


def prepare(engine: Any, model: Any, inputs: Any, stop: threading.Event
            ) -> tuple[forgetting.GeneralProbe | None, list[dict]]:
    """Ask the base model the general prompts of ``engine``'s run (its data, tokenizer and
    device in ``inputs``; ``stop`` ends the asking early): the drift probe of the evaluations
    (``None`` when drift is not measured) and the replay rows of ``data.replay``."""
    from core.data import DataError, RenderOptions, read_prompts
    from core.models import padding_free_refusal

    cfg = engine.config
    e, share = cfg.eval, cfg.data.replay
    measure = e.general_sample > 0
    if measure and not inputs.val_rows:
        engine.log("General drift is measured at each evaluation, and this run holds out no "
                   "validation rows (data.validation_fraction 0), so it is not measured.",
                   level="warning")
        measure = False
    if not measure and share <= 0:
        return None, []
    tokenizer = inputs.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        engine.log("General drift and replay ask the base model through its chat template, "
                   "and this tokenizer has none: set data.chat_template (e.g. chatml) to use "
                   "them.", level="warning")
        return None, []
    engine.phase = "general"
    try:
        prompts, problems = read_prompts(e.general_prompts)
    except DataError as exc:  # named as the field it came from
        message = str(exc).removesuffix(f" Fix: {exc.fix}")
        raise ConfigError([ConfigProblem("eval.general_prompts", message, exc.fix)]) from exc
    if problems:
        engine.log(f"{len(problems)} rows of {e.general_prompts} are not prompts and are left "
                   f"out; first: {problems[0]}", level="warning")
    sample, picks, wanted, pool = forgetting.probe_picks(cfg, len(prompts), len(inputs.train_rows),
                                                         measure)
    if measure and len(sample) < e.general_sample:
        engine.log(f"{e.general_prompts} has {len(prompts)} prompts, fewer than "
                   f"eval.general_sample {e.general_sample}: drift is measured on all of them.",
                   level="warning")
    if len(picks) < wanted:
        engine.log(f"data.replay {share:g} asks for {wanted} replay rows, and {e.general_prompts} "
                   f"has {pool} prompts besides the drift sample: replay uses those.",
                   level="warning")
    answers = _base_answers(engine, model, inputs, stop, [prompts[i] for i in sample + picks])
    if answers is None:
        return None, []  # stopped: the run ends before training
    options = dataclasses.replace(RenderOptions.from_config(cfg.data), chat_template="model")
    probe = None
    if measure:
        rows = forgetting.answer_rows(tokenizer, answers[:len(sample)], cfg.data.max_length,
                                      options)
        packed = cfg.optim.padding_free and padding_free_refusal(cfg.model, inputs.device) is None
        if rows:
            probe = forgetting.GeneralProbe(
                rows, math.nan, len(sample), e.per_device_eval_batch_size, packed,
                inputs.precision, tokenizer.pad_token_id or 0).with_base(model)
            engine.log(f"General drift: {len(sample)} prompts of {e.general_prompts}; the base "
                       f"model's loss on its own answers is {probe.base_loss:.4f} per token.")
        else:
            engine.log("General drift is not measured: the base model's answers to the "
                       "general prompts are empty.", level="warning")
    replay = forgetting.answer_rows(tokenizer, answers[len(sample):], cfg.data.max_length,
                                    options)
    if replay:
        # one more source of the mix, reported like data.sources' own
        total = len(inputs.train_rows) + len(replay)
        engine.log(f"Source replay (data.replay {share:g}): {len(replay)} rows of the base "
                   f"model's own answers to prompts of {e.general_prompts} join the "
                   f"{len(inputs.train_rows)} task rows ({len(replay) / total:.0%} of the "
                   f"{total} training rows).")
    return probe, replay


def _base_answers(engine: Any, model: Any, inputs: Any, stop: threading.Event,
                  prompts: list) -> list | None:
    """The base model's answers to ``prompts``, from the cache or generated now (phase
    ``general``, done/total prompts after each batch); ``None`` when a stop request came
    first."""
    import torch

    from core.generate import GenerationSettings, TextGenerator

    cfg = engine.config
    tokenizer, e = inputs.tokenizer, cfg.eval
    if inputs.device != "cpu" and not getattr(model, "hf_device_map", None):
        # the trainer would move it there next; generating on the CPU would crawl
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        model.to(torch.device(inputs.device, rank) if inputs.device == "cuda" else inputs.device)
    identity = {**forgetting.model_identity(cfg.model, cfg.method, model),
                "template": tokenizer.chat_template, "eos": tokenizer.eos_token,
                "system_prompt": cfg.data.default_system_prompt,
                "max_new_tokens": e.general_max_new_tokens}
    cache = forgetting.AnswerCache(identity)
    generator = TextGenerator(model, tokenizer, None, inputs.device)
    settings = GenerationSettings(max_new_tokens=e.general_max_new_tokens,
                                  batch_size=forgetting.GENERATION_BATCH)
    system = cfg.data.default_system_prompt

    def generate(batch: list) -> list[tuple[str, bool]]:
        turns = [forgetting.generation_prompt(p, system) for p in batch]
        # unstripped: the rows score exactly what the base wrote before its end of turn
        return generator.generate_with_ends(turns, settings, stop=stop, strip=False)

    def progress(done: int, total: int) -> None:
        engine.enter_phase("general", f"Asking the base model {total} general prompts (at most "
                                      f"{e.general_max_new_tokens} new tokens each, once per "
                                      "base model)", done, total)

    padding, tokenizer.padding_side = tokenizer.padding_side, "left"  # answers follow prompts
    training = model.training
    model.eval()  # no dropout: the base's greedy answers, the same every time
    started = time.monotonic()
    try:
        answers, made = forgetting.base_answers(generate, prompts, cache, progress,
                                                write=engine.is_main, stop=stop)
    finally:
        tokenizer.padding_side = padding
        model.train(training)
    if answers is not None:
        where = (f"generated {made} in {time.monotonic() - started:.0f}s, cached in "
                 f"{cache.path.parent}" if made else f"all from the cache in {cache.path.parent}")
        engine.log(f"Base answers to {len(prompts)} general prompts: {where}.")
    return answers
