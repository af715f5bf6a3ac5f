"""Content checks: duplicates, refusals, short answers, placeholders and split leakage.

:func:`dataset_report` is what ``tunetop inspect`` and the dataset screen both report: it
splits the kept rows as training will and runs :func:`dataset_stats` on the first
:data:`CHECK_ROWS`, so the two show the same counts for the same file and settings.
numpy (for the near-duplicate index) is imported only when the checks run.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core.data.lengths import TokenStats, token_stats
from core.data.load import split_examples
from core.data.normalise import Example
from core.data.outcome import rendering_problems
from core.data.problems import Problem
from core.data.render import Rendered

R = TypeVar("R")

REFUSAL_PATTERNS = re.compile(
    r"\bas an ai(?: language)? model|\bas a (?:large )?language model|\bas an ai assistant"
    r"|\bi(?: cannot| can['’]t| can not|['’]m not able to| am not able to|['’]m unable to"
    r"| am unable to) (?:assist|help|comply|fulfill|provide|do that)"
    r"|\bi['’]m sorry, but i (?:cannot|can['’]t)|\bi apologi[sz]e, but i (?:cannot|can['’]t)",
    re.IGNORECASE,
)
"""Boilerplate that marks a refusal or a model disclaimer copied into the training data."""

PLACEHOLDER_PATTERN = re.compile(
    r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}"  # {{name}}, {{ author }}
    r"|<(?:PLACEHOLDER|[A-Z][A-Z_]{2,}_(?:NAME|HERE|TEXT|VALUE))>"  # <PLACEHOLDER>, <YOUR_NAME>
    r"|\[(?:PLACEHOLDER|INSERT[ _][A-Z _]+|YOUR[ _][A-Z _]+)\]"  # [INSERT NAME], [YOUR NAME]
)
"""Template placeholders left unfilled in a row (LLaMA-Factory's identity data ships with
``{{name}}`` and ``{{author}}`` to be replaced)."""

SPACELESS_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
"""Characters of scripts written without spaces between words (Chinese, Japanese, Korean
Hangul, Thai, Lao, Burmese, Khmer): there, an answer's length is counted in characters."""
SHORT_CHARACTERS = 4
"""Answers in such scripts with fewer characters than this are "empty or one-word"."""

CHECK_ROWS = 100_000
"""Kept rows the content checks cover: beyond this they run for minutes and keep several KB a
row (the near-duplicate index); the rest is said to be unchecked."""


@dataclass
class DatasetStats:
    """What ``tunetop inspect`` and the dataset screen show about a dataset."""

    train_rows: int
    val_rows: int
    tokens: TokenStats | None
    """``None`` when no rendered rows were given."""
    exact_duplicates: int
    near_duplicates: int
    refusals: int
    short_answers: int
    """Rows with an empty or one-word answer."""
    leaked: int
    """Validation rows that duplicate (exactly or nearly) a training row."""
    findings: list[Problem]
    """One warning per finding, with its line."""
    placeholders: int = 0
    """Rows with an unfilled template placeholder such as ``{{name}}``."""


def is_short_answer(answer: str) -> bool:
    """Empty or one word; in scripts without spaces, fewer than :data:`SHORT_CHARACTERS`
    characters of that script (a whole Chinese sentence is one "word" to ``str.split``)."""
    words = answer.split()
    if len(words) > 1:
        return False
    return len(SPACELESS_SCRIPT.findall(answer)) < SHORT_CHARACTERS


def finding_kind(problem: Problem) -> str:
    """What a :func:`dataset_stats` finding is: ``duplicate``, ``leakage``, ``refusal``,
    ``short``, ``placeholder`` or ``rendering``."""
    if problem.field in ("exact_duplicate", "near_duplicate"):
        return "duplicate"
    if problem.field in ("leakage", "placeholder"):
        return problem.field
    if problem.field == "content":
        return "refusal" if problem.message.startswith("refusal") else "short"
    return "rendering"


_WORD = re.compile(r"\w+")
_NUM_PERM = 64
_BANDS = 16
NEAR_DUPLICATE_SIMILARITY = 0.7
"""Estimated Jaccard similarity of word 3-shingles above which two rows are near duplicates."""


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


class _NearIndex:
    """MinHash over word 3-shingles with banded LSH: one pass, constant work per row."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        rng = np.random.default_rng(0)
        self.a = rng.integers(1, 2**63, _NUM_PERM, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, _NUM_PERM, dtype=np.uint64)
        self.buckets: dict[bytes, int] = {}
        self.signatures: dict[int, Any] = {}

    def signature(self, text: str) -> Any:
        words = _WORD.findall(text.lower())
        k = 3 if len(words) >= 3 else 1
        shingles = {" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))}
        x = self.np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=self.np.uint64)
        # multiply-add-shift hashing: uint64 arithmetic wraps, which is the modulus we want
        return ((self.a[:, None] * x[None, :] + self.b[:, None]) >> self.np.uint64(32)).min(1)

    def add(self, key: int, text: str) -> int | None:
        """Index row ``key``; return the key of an earlier near-duplicate row, if any."""
        sig = self.signature(text)
        rows = _NUM_PERM // _BANDS
        match = None
        keys = [bytes([band]) + sig[band * rows:(band + 1) * rows].tobytes()
                for band in range(_BANDS)]
        for band_key in keys:
            other = self.buckets.get(band_key)
            if other is not None and (self.np.count_nonzero(self.signatures[other] == sig)
                                      >= NEAR_DUPLICATE_SIMILARITY * _NUM_PERM):
                match = other
                break
        self.signatures[key] = sig
        for band_key in keys:
            self.buckets.setdefault(band_key, key)
        return match


def dataset_stats(train: Sequence[Example], val: Sequence[Example] = (),
                  rendered: Sequence[Rendered] | None = None, *, train_source: str = "",
                  val_source: str = "") -> DatasetStats:
    """Check content and summarise lengths; O(n) in rows.

    Finds exact duplicates (same text after lower-casing and collapsing whitespace), near
    duplicates (MinHash), refusal boilerplate, empty or one-word answers (counted in
    characters for scripts without spaces), unfilled template placeholders and validation rows
    that repeat training rows. In a mix, each finding names the row's own source.
    ``rendered`` (of the training rows) adds token statistics and the EOS checks of
    :func:`rendering_problems`.
    """
    findings: list[Problem] = []
    counts = dict.fromkeys(("exact", "near", "refusal", "short", "leak", "placeholder"), 0)
    seen: dict[str, int] = {}
    near = _NearIndex()
    rows = [(e, False) for e in train] + [(e, True) for e in val]
    for index, (example, is_val) in enumerate(rows):
        source = val_source if is_val else train_source

        def add(kind: str, field_name: str, message: str, fix: str) -> None:
            counts[kind] += 1
            findings.append(Problem(example.source or source, example.line, field_name,
                                    message, fix, "warning"))

        answers = example.answers()
        if any(REFUSAL_PATTERNS.search(a) for a in answers):
            add("refusal", "content", "refusal or AI-disclaimer boilerplate in the answer.",
                "Rewrite or remove the row; the model will learn to refuse.")
        short = next((a for a in answers if is_short_answer(a)), None)
        if short is not None:
            add("short", "content", f"empty or one-word answer {short.strip()[:40]!r}.",
                "Check the answer is complete.")
        text = example.dedupe_text()
        placeholder = PLACEHOLDER_PATTERN.search(
            text if example.messages is None else
            "\n".join(m["content"] for m in example.messages))
        if placeholder is not None:
            add("placeholder", "placeholder", f"unfilled template placeholder "
                f"{placeholder.group()!r}: the model would learn it literally.",
                f"Replace {placeholder.group()} with the real value in every row (e.g. sed "
                f"'s/{re.escape(placeholder.group())}/MyBot/g'), or remove the rows.")
        digest = hashlib.sha1(_normalised(text).encode()).hexdigest()
        first = seen.setdefault(digest, index)
        match, exact = (first, True) if first != index else (near.add(index, text), False)
        if match is None:
            continue
        other, other_is_val = rows[match][0], rows[match][1]
        kind = "exact" if exact else "near"
        what = "exact duplicate" if exact else "near duplicate"
        where = (f"{other.source} row {other.line}" if other.source != example.source
                 else f"row {other.line}")
        if is_val and not other_is_val:
            add("leak", "leakage", f"validation row is an {what} of training {where}; "
                "validation loss will look better than it is.",
                "Remove it from one of the splits.")
        else:
            add(kind, kind + "_duplicate", f"{what} of {where}.",
                "Remove the copy; duplicates are learned by heart.")
    tokens = None
    if rendered is not None:
        tokens = token_stats(rendered)
        findings.extend(rendering_problems(rendered, train_source))
    return DatasetStats(len(train), len(val), tokens, counts["exact"], counts["near"],
                        counts["refusal"], counts["short"], counts["leak"], findings,
                        counts["placeholder"])


@dataclass
class DatasetReport:
    """The content checks of a dataset as ``tunetop inspect`` and the dataset screen show them."""

    stats: DatasetStats
    """Findings and counts of :func:`dataset_stats` on the checked rows, split for training."""
    checked: int
    """Kept rows the checks covered: all of them, or the first :data:`CHECK_ROWS`."""
    kept: int
    """Kept rows in the file."""
    train_rows: int
    """Kept rows in the training split (of all kept rows, checked or not)."""
    val_rows: int
    """Kept rows in the validation split."""
    validation_fraction: float
    seed: int


def dataset_report(
    rows: Sequence[R], validation_fraction: float, seed: int, source: str = "", *,
    limit: int = CHECK_ROWS,
    checks: Callable[[list[R], list[R], str], DatasetStats | None] | None = None,
) -> DatasetReport | None:
    """Split the kept ``rows`` as training will (:func:`split_examples` with the same fraction
    and seed), then check the first ``limit`` of them with :func:`dataset_stats`.

    Duplicates across the split are counted as leakage, not as duplicates, as training would
    meet them. ``rows`` are :class:`Example` objects, or anything ``checks`` takes: a caller that
    runs the checks elsewhere (the dataset screen, in a child process) passes ``checks(train,
    val, source)`` returning :func:`dataset_stats`' result, or ``None`` when it was cancelled,
    which is returned as ``None``.
    """
    train, val = split_examples(range(len(rows)), validation_fraction, seed)
    checked = min(len(rows), limit)
    train_rows = [rows[i] for i in train if i < checked]
    val_rows = [rows[i] for i in val if i < checked]
    if checks is None:
        stats = dataset_stats(train_rows, val_rows, train_source=source,  # type: ignore[arg-type]
                              val_source=source)
    else:
        stats = checks(train_rows, val_rows, source)
    if stats is None:
        return None
    return DatasetReport(stats, checked, len(rows), len(train), len(val), validation_fraction, seed)
