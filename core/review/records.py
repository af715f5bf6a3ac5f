"""The records of a review set: prompts, generated items, judgements, and the side of A.

Sides are randomised per item from the set's stored seed (:func:`a_side_for`), so the
reviewer sees only "Left" and "Right" and never which model wrote which.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

VERDICTS = ("left", "right", "tie", "both_bad", "skip")
"""What a reviewer can say about an item, in terms of the sides shown."""
VERDICT_LABELS = {"left": "Left better", "right": "Right better", "tie": "Tie",
                  "both_bad": "Both bad", "skip": "Skipped"}


class ReviewError(ValueError):
    """A review set that cannot be created or read; the message says what to do."""


def a_side_for(seed: int, index: int) -> str:
    """The side (``left``/``right``) where model A's answer to item ``index`` is shown.

    Derived from ``seed`` and ``index`` alone (string seeding is stable across Python runs),
    so the same set always shows the same layout and items can be generated in any order.
    """
    return "left" if random.Random(f"tunetop-review:{seed}:{index}").random() < 0.5 else "right"


@dataclass
class PromptItem:
    """One prompt to review: the conversation up to the answer, and the reference if any."""

    messages: list[dict[str, str]]
    reference: str | None = None
    source_line: int | None = None
    """Line (or row) of the prompts file it came from."""


@dataclass
class ReviewItem:
    """A generated item: the prompt, both answers, and where A is shown."""

    index: int
    messages: list[dict[str, str]]
    reference: str | None
    output_a: str
    output_b: str
    a_side: str
    """``left`` or ``right``: where A's answer is shown (B is on the other side)."""

    @property
    def left(self) -> str:
        """The answer shown on the left."""
        return self.output_a if self.a_side == "left" else self.output_b

    @property
    def right(self) -> str:
        """The answer shown on the right."""
        return self.output_b if self.a_side == "left" else self.output_a

    def outcome(self, verdict: str) -> str:
        """A side verdict as a model outcome: ``a``, ``b``, ``tie``, ``both_bad`` or ``skip``."""
        if verdict in ("left", "right"):
            return "a" if verdict == self.a_side else "b"
        return verdict

    @property
    def prompt_text(self) -> str:
        """The last user turn (what the item is about), for tables."""
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else (self.messages[-1]["content"] if self.messages else "")


@dataclass(frozen=True)
class Judgement:
    """One judgement record: ``seq`` is its position in ``judgements.jsonl``."""

    seq: int
    index: int
    verdict: str
    time: float
    after_reveal: bool = False
    """Made after the sides were revealed, so not blind."""
