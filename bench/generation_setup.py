"""What the generation benchmarks (chat.py, generation.py) share: their common options, torch's
thread count, the held-out prompts they answer and the bundled model they load."""

from __future__ import annotations

import argparse
import time
from typing import Any


def generation_parser(description: str, prompts: int, max_new_tokens: int) -> argparse.ArgumentParser:
    """A parser with the options every generation benchmark takes: ``--prompts`` and
    ``--max-new-tokens`` (with these defaults), ``--device`` and ``--threads`` (read back by
    :func:`prepare_torch`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--prompts", type=int, default=prompts, help=f"held-out prompts (default {prompts})")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on CPU, where a shared machine makes "
                             "OpenMP threads spin-wait on each other; unchanged on GPU)")
    return parser


def prepare_torch(args: argparse.Namespace) -> str:
    """The device to run on (``--device``, else the training device), with torch's CPU threads
    set from ``--threads`` (1 on CPU by default)."""
    import torch

    from core.machine import training_device

    device = args.device or training_device()
    if args.threads or device == "cpu":
        torch.set_num_threads(args.threads or 1)
    return device


def held_out_conversations(count: int) -> list[list[dict[str, str]]]:
    """The first ``count`` held-out sample prompts, without their answers."""
    from core.data import load_examples
    from core.generate import split_prompt

    examples = load_examples("sample:support-tickets-heldout").examples[:count]
    return [split_prompt(e.messages)[0] for e in examples]


def prepare(args: argparse.Namespace) -> tuple[Any, list[list[dict[str, str]]], float]:
    """Set torch up (:func:`prepare_torch`), read ``--prompts`` held-out prompts and load the
    bundled model: ``(generator, conversations, seconds the model took to load)``."""
    from core.config import BUNDLED_MODEL
    from core.generate import load_generators, resolve_ref

    device = prepare_torch(args)
    conversations = held_out_conversations(args.prompts)
    started = time.perf_counter()
    (gen,) = load_generators([resolve_ref(BUNDLED_MODEL)], device=device)
    return gen, conversations, time.perf_counter() - started


def describe_setup(gen: Any, prompts: int, settings: Any, load_seconds: float) -> str:
    """``model bundled:… on cpu (torch.float32), loaded in 2.1 s, torch threads 2; 8 prompts,
    …``: what a benchmark ran on, for its first line."""
    import torch

    from core.config import BUNDLED_MODEL

    return (f"model {BUNDLED_MODEL} on {gen.device} ({next(gen.model.parameters()).dtype}), "
            f"loaded in {load_seconds:.1f} s, torch threads {torch.get_num_threads()}; "
            f"{prompts} prompts, {settings.describe()}")
