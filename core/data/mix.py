"""Mixing several sources into one dataset, reproducibly from the seed.

Each source's kept rows are shuffled once with the seed and the source's position
(``random.Random(f"{seed}/{i}")``), so a source draws the same rows whatever the others are.
``max_rows`` caps a source at that many of them. Without weights every (capped) row is used.
With weights (relative shares, all sources or none) rows are drawn **without replacement**:
the mix is the largest set with those shares in which no row repeats, so the source that is
scarcest for its share is used whole and the others contribute their share of that total.
Rows left out are counted per source (:attr:`SourceReport.left_out`), never lost silently.
Chosen rows keep their file order within each source; sources follow each other in the
order the config lists them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.data.problems import DataError


@dataclass
class SourceReport:
    """One source of the data: rows read, kept, dropped, and used in the mix."""

    label: str
    """How messages name the source (its path, Hub id or registry entry)."""
    format: str
    format_reason: str
    rows: int
    """Rows read, good and bad."""
    kept: int
    """Rows that normalised (the others are dropped, each with a problem)."""
    dropped: int
    used: int
    """Kept rows in the mixed set."""
    weight: float | None = None
    max_rows: int | None = None

    @property
    def left_out(self) -> int:
        """Kept rows the mix did not use (``max_rows`` or the shares)."""
        return self.kept - self.used

    def share(self, total_used: int) -> float:
        """This source's share of the mixed set."""
        return self.used / total_used if total_used else 0.0

    def describe(self, total_used: int) -> str:
        """One line: rows read, kept, dropped, used and the share of the mix."""
        asked = []
        if self.weight is not None:
            asked.append(f"weight {self.weight:g}")
        if self.max_rows is not None:
            asked.append(f"max_rows {self.max_rows:,}")
        left = f", {self.left_out:,} left out by the mix" if self.left_out else ""
        return (f"{self.rows:,} read, {self.kept:,} kept, {self.dropped:,} dropped; "
                f"{self.used:,} used ({self.share(total_used):.0%} of the mix"
                f"{'; ' + ', '.join(asked) if asked else ''}){left}")


def plan_mix(kept: Sequence[int], weights: Sequence[float | None],
             max_rows: Sequence[int | None], seed: int,
             labels: Sequence[str] = ()) -> list[list[int]]:
    """Which kept rows (indices, increasing) each source contributes; see the module doc.

    Raises :class:`DataError` when a weighted source has no usable row (its share cannot be
    met).
    """
    available = [min(n, cap) if cap is not None else n for n, cap in zip(kept, max_rows)]
    if all(w is None for w in weights):
        used = available
    else:
        for i, (n, w) in enumerate(zip(available, weights)):
            name = labels[i] if i < len(labels) else f"source {i + 1}"
            if w is None or not (math.isfinite(w) and w > 0):
                raise DataError(f"{name} has weight {w}: every source of a weighted mix needs "
                                "a positive weight.", "Give each source a share such as 0.8, "
                                "or remove every weight.", name)
            if not n:
                raise DataError(f"{name} has no usable rows, so the mix cannot give it its "
                                f"weight {w:g}.", "Fix its rows (tunetop inspect it) or remove "
                                "it from data.sources.", name)
        total = sum(w or 0.0 for w in weights)
        shares = [(w or 0.0) / total for w in weights]
        size = min(math.floor(n / p + 1e-9) for n, p in zip(available, shares))
        used = [min(n, round(p * size)) for n, p in zip(available, shares)]
    chosen = []
    for i, (n, k) in enumerate(zip(kept, used)):
        order = random.Random(f"{seed}/{i}").sample(range(n), n) if k < n else range(n)
        chosen.append(sorted(order[:k]))
    return chosen
