"""What the generation benchmarks (chat.py, generation.py) share: the ``--device`` and
``--threads`` options, torch's thread count, and the held-out prompts they answer."""

from __future__ import annotations

import argparse


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` and ``--threads`` (read back by :func:`prepare_torch`)."""
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on CPU, where a shared machine makes "
                             "OpenMP threads spin-wait on each other; unchanged on GPU)")


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
