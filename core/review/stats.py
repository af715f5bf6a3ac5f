"""Statistics of a review set: the B-against-A win rate, its Wilson interval, automatic checks.

A *win* is an item where B's answer was judged better, a *loss* one where A's was. The win
rate is ``wins / (wins + losses)``: ties, "both bad" and skipped items are **excluded** (not
counted as half), and its 95% confidence interval is the Wilson score interval on those
``wins + losses`` decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.metrics import exact_match, parse_json_object

OUTCOME_LABELS = {"b": "B better", "a": "A better", "tie": "Tie", "both_bad": "Both bad",
                  "skip": "Skipped"}
"""What a verdict means for the models, named for tables and reports."""
Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile."""
WIN_RATE_DEFINITION = (
    "B win rate = B wins / (B wins + A wins); ties, both-bad and skipped items are excluded "
    "(not counted as half). 95% CI: Wilson score interval on those decisions."
)
"""The reported definition, printed next to every win rate."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes`` out of ``trials``; ``None`` with no trials."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SideChecks:
    """Automatic checks of one answer against the reference."""

    exact: bool
    valid_json: bool | None
    """Whether the answer is one JSON object; ``None`` when the reference is not JSON."""
    length: int
    """Characters, stripped."""
    length_ratio: float
    """Length over the reference's length (an empty reference counts as 1)."""


def check_answer(answer: str, reference: str) -> SideChecks:
    """Exact match, JSON validity (for JSON references) and length against the reference."""
    length = len(answer.strip())
    return SideChecks(
        exact=exact_match(answer, reference),
        valid_json=(parse_json_object(answer) is not None
                    if parse_json_object(reference) is not None else None),
        length=length,
        length_ratio=length / max(len(reference.strip()), 1),
    )


@dataclass(frozen=True)
class ItemRow:
    """One line of the per-item table shown after reveal."""

    index: int
    outcome: str | None
    """``a``, ``b``, ``tie``, ``both_bad``, ``skip`` or ``None`` when not judged."""
    a_side: str
    checks_a: SideChecks | None
    checks_b: SideChecks | None
    checks_prefer: str | None
    """``a`` or ``b`` when exactly one answer matches the reference, else ``None``."""
    after_reveal: bool = False

    @property
    def disagrees(self) -> bool:
        """The judgement and the exact-match check point different ways."""
        if self.checks_prefer is None or self.outcome in (None, "skip"):
            return False
        return self.outcome != self.checks_prefer


@dataclass
class ReviewStats:
    """Counts of B against A, the win rate and its interval (see ``WIN_RATE_DEFINITION``)."""

    total: int
    """Prompts in the set."""
    generated: int
    judged: int
    """Items with a current verdict, skips included."""
    wins: int
    """B judged better."""
    losses: int
    """A judged better."""
    ties: int
    both_bad: int
    skipped: int
    after_reveal: int = 0
    """Current verdicts made after reveal (not blind)."""
    checks_a: dict[str, Any] = field(default_factory=dict)
    """``core.metrics.score`` of A's answers over items with a reference (empty if none)."""
    checks_b: dict[str, Any] = field(default_factory=dict)
    disagreements: int = 0
    """Judged items where exact match prefers the other answer."""

    @property
    def decisions(self) -> int:
        """Wins plus losses: the trials of the win rate."""
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        """B wins over decisions; ``None`` before any decision."""
        return self.wins / self.decisions if self.decisions else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% Wilson interval of :attr:`win_rate`."""
        return wilson_interval(self.wins, self.decisions)

    def counts_text(self) -> str:
        """``B better 7 · A better 3 · tie 2 · both bad 1 · skipped 1``."""
        return (f"B better {self.wins} · A better {self.losses} · tie {self.ties} · "
                f"both bad {self.both_bad} · skipped {self.skipped}")

    def summary(self) -> str:
        """The counts, then the win rate, on two lines."""
        return f"{self.counts_text()}\n{self.win_rate_text()}"

    def win_rate_text(self) -> str:
        """``B win rate 70.0% (95% CI 39.7%-89.2%, n=10)`` or why there is none."""
        if self.win_rate is None or self.interval is None:
            return "B win rate: no decisions yet (ties, both bad and skips do not count)"
        low, high = self.interval
        return (f"B win rate {self.win_rate:.1%} (95% CI {low:.1%}-{high:.1%}, "
                f"n={self.decisions})")
