"""A blind A/B comparison of two models: the review set that ``tunetop compare`` fills.

:func:`new_comparison` resolves both model references, reads the prompts and writes a new
set whose sides are randomised with a fresh seed (stored in ``meta.json``, so nothing the
set shows names a side); :func:`resume_comparison` reads all of that back from an
interrupted set. :func:`core.review.generate_into` then generates the missing answers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from core.generate import GenerationSettings, ModelRef, resolve_pair, run_dir_of
from core.review import ReviewError, ReviewSet, default_set_name, load_prompts


@dataclass(frozen=True)
class Comparison:
    """A review set ready to generate into: both models and the generation settings."""

    review: ReviewSet
    a: ModelRef
    b: ModelRef
    settings: GenerationSettings


def new_comparison(a: str, b: str, prompts: str, settings: GenerationSettings,
                   out: str | None = None, name: str | None = None, limit: int | None = None,
                   side_seed: int | None = None) -> Comparison:
    """Create a review set of ``a`` against ``b`` on ``prompts`` (a source for
    :func:`core.review.load_prompts`, of which the first ``limit``).

    The set goes under ``out`` (default: B's run directory, else A's, else the current
    directory) as ``review/<name>``; ``side_seed`` fixes the side randomisation (default: a
    fresh random seed). Raises :class:`core.generate.GenerationError`, :class:`ReviewError`
    or :class:`core.data.DataError` with the fix.
    """
    settings.check()
    ref_a, ref_b = resolve_pair(a, b)
    items, source = load_prompts(prompts, limit)
    root = Path(out) if out else (run_dir_of(ref_b) or run_dir_of(ref_a) or Path("."))
    review = ReviewSet.create(
        root, name or default_set_name(root, ref_a.label, ref_b.label), ref_a.to_dict(),
        ref_b.to_dict(), items, source, settings.to_dict(),
        secrets.randbelow(2**31) if side_seed is None else side_seed)
    return Comparison(review, ref_a, ref_b, settings)


def resume_comparison(set_dir: str | Path) -> Comparison:
    """Reopen the review set in ``set_dir`` with the models and settings it was made with."""
    review = ReviewSet.open(set_dir)
    try:
        ref_a = ModelRef.from_dict(review.meta["a"])
        ref_b = ModelRef.from_dict(review.meta["b"])
    except KeyError as exc:
        raise ReviewError(f"{set_dir} names no model {exc} in its meta.json. Fix: resume a set "
                          "made by tunetop compare or the review screen.") from None
    settings = GenerationSettings.from_dict(review.meta.get("generation", {}))
    return Comparison(review, ref_a, ref_b, settings)
