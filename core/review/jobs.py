"""Generation jobs: create a review set (or take one to finish) and fill it with answers.

The review screen runs a job in a worker thread; ``tunetop compare`` fills sets with
:func:`generate_into` too. torch loads only inside the generator
(:func:`core.generate.generate_pairs`, or a fake in tests).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.generate import (
    BASE,
    GenerationSettings,
    ModelRef,
    PairGenerator,
    PairRequest,
    resolve_ref,
    run_dir_of,
)
from core.review.prompts import load_prompts
from core.review.records import ReviewItem
from core.review.store import ReviewSet, append_items, default_set_name

Choice = tuple[str, str]
"""A model or prompts choice ``(kind, value)``, as :func:`core.review.scan_workspace` offers."""


@dataclass(frozen=True)
class GenerationJob:
    """A request to generate: a new set from chosen models and prompts, or the rest of one."""

    settings: GenerationSettings
    choice_a: Choice = ("", "")
    """``(kind, value)``: ``base`` and a model reference, or ``path`` (run or checkpoint)."""
    choice_b: Choice = ("", "")
    prompts: str = ""
    """A source for :func:`core.review.load_prompts`."""
    limit: int | None = None
    workspace: Path = Path("runs")
    """Where a set that belongs to no run is stored (``<workspace>/review/``)."""
    resume: ReviewSet | None = None
    """An existing set whose missing answers are generated instead."""


def resolve_choice(choice: Choice) -> ModelRef:
    """The model reference for a model choice."""
    kind, value = choice
    return resolve_ref(BASE, value) if kind == "base" else resolve_ref(value)


def prepare_job(job: GenerationJob, stop: threading.Event) -> tuple[ReviewSet, PairRequest]:
    """The set a job fills (created under B's run, else A's, else the workspace) and the
    request for its generator; ``stop`` ends generation at the next token.

    Reads small files only (model references, the prompts); raises ``GenerationError``,
    ``DataError`` or :class:`ReviewError` with the fix.
    """
    if job.resume is not None:
        review = job.resume
        ref_a = ModelRef.from_dict(review.meta["a"])
        ref_b = ModelRef.from_dict(review.meta["b"])
    else:
        ref_a, ref_b = resolve_choice(job.choice_a), resolve_choice(job.choice_b)
        prompts, described = load_prompts(job.prompts, job.limit)
        root = run_dir_of(ref_b) or run_dir_of(ref_a) or job.workspace
        review = ReviewSet.create(root, default_set_name(root, ref_a.label, ref_b.label),
                                  ref_a.to_dict(), ref_b.to_dict(), prompts, described,
                                  job.settings.to_dict(), secrets.randbelow(2**31))
    request = PairRequest(a=ref_a, b=ref_b, conversations=[p.messages for p in review.prompts],
                          settings=job.settings, stop=stop)
    return review, request


def generate_into(review: ReviewSet, request: PairRequest, generator: PairGenerator,
                  on_status: Callable[[str], None] | None = None,
                  on_items: Callable[[list[ReviewItem]], None] | None = None) -> int:
    """Generate the set's missing answers with ``generator`` and append them durably.

    ``request`` is a :class:`core.generate.PairRequest` (its ``start`` is set here to the
    first missing prompt); ``generator`` is :func:`core.generate.generate_pairs` or a fake.
    Each new item is written to ``items.jsonl`` and then passed to ``on_items`` (from the
    calling thread); nothing else of ``review`` changes, so this may run in a worker thread
    while the UI owns ``review``, except that ``meta.json`` (and ``review.meta``) is replaced
    when the last prompt is done. Returns the number of items written.
    """
    pending = review.pending()
    if not pending:
        return 0
    request.start = pending[0]
    started = time.monotonic()
    written = 0
    for pair in generator(request, on_status or (lambda text: None)):
        item = review.make_item(pair.index, pair.output_a, pair.output_b)
        append_items(review.path, [item])
        written += 1
        if on_items is not None:
            on_items([item])
    if pending[0] + written >= review.total and not request.stop.is_set():
        review.mark_complete({"generation_seconds": round(time.monotonic() - started, 2)})
    return written
