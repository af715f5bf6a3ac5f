"""Blind A/B review sets: prompts, both models' answers, judgements, statistics and export.

A review set is a directory ``<root>/review/<name>/`` (``root`` is usually the run directory
of model B, but any directory works):

- ``meta.json``: both model references (``a``, ``b``), the prompts' source, the generation
  settings, ``side_seed``, and whether generation has finished;
- ``prompts.jsonl``: every prompt to review (messages and reference answer), written first so
  that an interrupted generation can continue where it stopped;
- ``items.jsonl``: one line per generated prompt: prompt messages, reference, output A,
  output B and ``a_side`` (``left`` or ``right``), appended as each batch is ready;
- ``judgements.jsonl``: an append-only log, each line flushed and ``fsync``-ed the moment it
  is made. Records are ``judgement`` (item and verdict as the reviewer saw it: ``left``,
  ``right``, ``tie``, ``both_bad`` or ``skip``), ``undo`` (which earlier record it cancels)
  and ``reveal``. The current verdict of an item is its latest judgement not undone.

Sides are randomised per item from the stored seed (:func:`a_side_for`), so the reviewer
sees only "Left" and "Right" and never which model wrote which.

Statistics (:class:`ReviewStats`) count B against A: a *win* is an item where B's answer was
judged better, a *loss* one where A's was. The win rate is ``wins / (wins + losses)``: ties,
"both bad" and skipped items are **excluded** (not counted as half), and its 95% confidence
interval is the Wilson score interval on those ``wins + losses`` decisions. Nothing here
imports torch or Textual.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.metrics import exact_match, parse_json_object, score

if TYPE_CHECKING:
    from core.generate import PairGenerator, PairRequest

REVIEW_DIR = "review"
"""Sub-directory of a run (or any directory) that holds its review sets."""
META_FILE = "meta.json"
PROMPTS_FILE = "prompts.jsonl"
ITEMS_FILE = "items.jsonl"
JUDGEMENTS_FILE = "judgements.jsonl"
MARKDOWN_FILE = "results.md"
CSV_FILE = "results.csv"
FORMAT_VERSION = 1

VERDICTS = ("left", "right", "tie", "both_bad", "skip")
"""What a reviewer can say about an item, in terms of the sides shown."""
VERDICT_LABELS = {"left": "Left better", "right": "Right better", "tie": "Tie",
                  "both_bad": "Both bad", "skip": "Skipped"}
OUTCOME_LABELS = {"b": "B better", "a": "A better", "tie": "Tie", "both_bad": "Both bad",
                  "skip": "Skipped"}
Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile."""
WIN_RATE_DEFINITION = (
    "B win rate = B wins / (B wins + A wins); ties, both-bad and skipped items are excluded "
    "(not counted as half). 95% CI: Wilson score interval on those decisions."
)
"""The reported definition, printed next to every win rate."""


class ReviewError(ValueError):
    """A review set that cannot be created or read; the message says what to do."""


# --- randomised sides and the Wilson interval ---------------------------------------------


def a_side_for(seed: int, index: int) -> str:
    """The side (``left``/``right``) where model A's answer to item ``index`` is shown.

    Derived from ``seed`` and ``index`` alone (string seeding is stable across Python runs),
    so the same set always shows the same layout and items can be generated in any order.
    """
    return "left" if random.Random(f"tunetop-review:{seed}:{index}").random() < 0.5 else "right"


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


# --- records -------------------------------------------------------------------------------


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

    def summary(self) -> str:
        """``B 7 · A 3 · tie 2 · both bad 1 · skipped 1``, then the win rate."""
        counts = (f"B better {self.wins} · A better {self.losses} · tie {self.ties} · "
                  f"both bad {self.both_bad} · skipped {self.skipped}")
        return f"{counts}\n{self.win_rate_text()}"

    def win_rate_text(self) -> str:
        """``B win rate 70.0% (95% CI 39.7%-89.2%, n=10)`` or why there is none."""
        if self.win_rate is None or self.interval is None:
            return "B win rate: no decisions yet (ties, both bad and skips do not count)"
        low, high = self.interval
        return (f"B win rate {self.win_rate:.1%} (95% CI {low:.1%}-{high:.1%}, "
                f"n={self.decisions})")


# --- file helpers --------------------------------------------------------------------------


def _append_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append JSON lines and make them durable (flush and fsync) before returning.

    If a crash left a partial last line, a newline is written first so the new records stay
    readable; the partial line is then skipped by :func:`_read_lines`.
    """
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = "\n" + data
        f.write(data.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; lines that do not parse (a torn write) are skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def write_meta(set_dir: Path, meta: dict[str, Any]) -> None:
    """Replace ``meta.json`` atomically (written beside it, fsync-ed, renamed)."""
    tmp = set_dir / f".{META_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, set_dir / META_FILE)


def append_items(set_dir: Path, items: Sequence[ReviewItem]) -> None:
    """Append generated items to ``items.jsonl`` durably (safe from a worker thread)."""
    _append_lines(Path(set_dir) / ITEMS_FILE, (asdict(item) for item in items))


def slug(text: str, limit: int = 24) -> str:
    """A file-name-safe short form: ``run lora-1 (final)`` -> ``run-lora-1-final``."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return out[:limit].rstrip("-.") or "model"


def default_set_name(root: str | Path, label_a: str, label_b: str,
                     when: datetime | None = None) -> str:
    """``20250303-101500-base-vs-lora-1`` from the time and both labels, unique under ``root``."""
    stamp = f"{(when or datetime.now()):%Y%m%d-%H%M%S}"
    name = f"{stamp}-{slug(label_a, 16)}-vs-{slug(label_b, 16)}"
    taken = Path(root) / REVIEW_DIR
    candidate, n = name, 2
    while (taken / candidate).exists():
        candidate, n = f"{name}-{n}", n + 1
    return candidate


# --- the review set -------------------------------------------------------------------------


class ReviewSet:
    """A review set on disk and its state: items generated so far and current verdicts.

    Judging methods write to ``judgements.jsonl`` before they change memory, so what the
    screen shows is always on disk. Use it from one thread; a generator thread writes items
    with :func:`append_items` and hands them over for :meth:`add_items`.
    """

    def __init__(self, path: Path, meta: dict[str, Any], prompts: list[PromptItem]) -> None:
        self.path = Path(path)
        self.meta = meta
        self.prompts = prompts
        self.items: dict[int, ReviewItem] = {}
        """Generated items by index."""
        self.records: list[dict[str, Any]] = []
        """Every judgement-log record, in order."""
        self.verdicts: dict[int, Judgement] = {}
        """Current verdict of each judged item."""
        self.revealed = False
        """Whether the reviewer has asked to see which side is which."""
        self._active: list[Judgement] = []
        """Judgements not undone, oldest first: undo takes the last."""

    # --- create and open

    @classmethod
    def create(cls, root: str | Path, name: str, a: dict[str, Any], b: dict[str, Any],
               prompts: Sequence[PromptItem], prompts_source: str,
               generation: dict[str, Any], seed: int) -> "ReviewSet":
        """Write a new set under ``root/review/name`` (``meta.json`` and ``prompts.jsonl``).

        ``a`` and ``b`` describe the models (``ModelRef.to_dict()``); ``generation`` is the
        settings dict; ``seed`` randomises the sides.
        """
        if not prompts:
            raise ReviewError("No prompts to review. Fix: choose a prompts file with chat rows "
                              "(messages ending in a user turn, or with the assistant answer).")
        set_dir = Path(root) / REVIEW_DIR / name
        if (set_dir / META_FILE).exists():
            raise ReviewError(f"Review set {set_dir} already exists. Fix: open it, or choose "
                              "another name.")
        set_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": FORMAT_VERSION,
            "name": name,
            "created": time.time(),
            "a": a,
            "b": b,
            "prompts": {"source": prompts_source, "count": len(prompts)},
            "generation": generation,
            "side_seed": seed,
            "complete": False,
        }
        _append_lines(set_dir / PROMPTS_FILE, (asdict(p) for p in prompts))
        write_meta(set_dir, meta)
        return cls(set_dir, meta, list(prompts))

    @classmethod
    def open(cls, path: str | Path) -> "ReviewSet":
        """Read a set: meta, prompts, items and the judgement log folded into verdicts."""
        set_dir = Path(path)
        try:
            meta = json.loads((set_dir / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReviewError(f"{set_dir} is not a review set (no {META_FILE}). Fix: choose a "
                              f"directory under {REVIEW_DIR}/.") from None
        except (OSError, ValueError) as exc:
            raise ReviewError(f"{set_dir / META_FILE} cannot be read: {exc}.") from None
        prompts = [PromptItem(**{k: p.get(k) for k in ("messages", "reference", "source_line")})
                   for p in _read_lines(set_dir / PROMPTS_FILE)]
        review = cls(set_dir, meta, prompts)
        review.add_items(ReviewItem(**{k: r[k] for k in ReviewItem.__dataclass_fields__})
                         for r in _read_lines(set_dir / ITEMS_FILE))
        for record in _read_lines(set_dir / JUDGEMENTS_FILE):
            review._fold(record)
        return review

    # --- items

    @property
    def name(self) -> str:
        """The set's name (its directory)."""
        return str(self.meta.get("name") or self.path.name)

    @property
    def seed(self) -> int:
        """The seed of the left/right randomisation (``meta.json`` ``side_seed``)."""
        return int(self.meta.get("side_seed", 0))

    @property
    def total(self) -> int:
        """Prompts in the set."""
        return len(self.prompts)

    @property
    def complete(self) -> bool:
        """Every prompt has both answers."""
        return len(self.items) >= self.total

    def make_item(self, index: int, output_a: str, output_b: str) -> ReviewItem:
        """The item for prompt ``index`` with its side from the seed."""
        prompt = self.prompts[index]
        return ReviewItem(index=index, messages=prompt.messages, reference=prompt.reference,
                          output_a=output_a, output_b=output_b,
                          a_side=a_side_for(self.seed, index))

    def add_items(self, items: Iterable[ReviewItem]) -> None:
        """Take items already written to disk into memory."""
        for item in items:
            self.items[item.index] = item

    def append_items(self, items: Sequence[ReviewItem]) -> None:
        """Write items durably, then take them into memory (single-threaded callers)."""
        append_items(self.path, items)
        self.add_items(items)

    def pending(self) -> list[int]:
        """Prompt indices still without answers."""
        return [i for i in range(self.total) if i not in self.items]

    def mark_complete(self, extra: dict[str, Any] | None = None) -> None:
        """Record in ``meta.json`` that generation finished (with e.g. device and timing)."""
        self.meta = {**self.meta, **(extra or {}), "complete": True}
        write_meta(self.path, self.meta)

    # --- judging

    def judge(self, index: int, verdict: str) -> Judgement:
        """Record a verdict for a generated item; durable before this returns."""
        if verdict not in VERDICTS:
            raise ReviewError(f"Unknown verdict {verdict!r}. Fix: use one of {', '.join(VERDICTS)}.")
        if index not in self.items:
            raise ReviewError(f"Item {index + 1} has no answers yet; judge it once generated.")
        record = {"kind": "judgement", "seq": len(self.records), "index": index,
                  "verdict": verdict, "time": time.time(), "after_reveal": self.revealed}
        _append_lines(self.path / JUDGEMENTS_FILE, [record])
        self._fold(record)
        return self.verdicts[index]

    def undo(self) -> Judgement | None:
        """Cancel the latest judgement still in effect (logged as an ``undo`` record).

        The item goes back to its previous verdict, or to unjudged. Returns the cancelled
        judgement, or ``None`` when there is nothing to undo.
        """
        if not self._active:
            return None
        last = self._active[-1]
        record = {"kind": "undo", "seq": len(self.records), "undoes": last.seq,
                  "index": last.index, "time": time.time()}
        _append_lines(self.path / JUDGEMENTS_FILE, [record])
        self._fold(record)
        return last

    def reveal(self) -> None:
        """Record that the reviewer asked to see the sides; later judgements are not blind."""
        if self.revealed:
            return
        record = {"kind": "reveal", "seq": len(self.records), "time": time.time()}
        _append_lines(self.path / JUDGEMENTS_FILE, [record])
        self._fold(record)

    def _fold(self, record: dict[str, Any]) -> None:
        """Apply one log record to the in-memory state."""
        self.records.append(record)
        kind = record.get("kind")
        if kind == "judgement" and record.get("verdict") in VERDICTS:
            j = Judgement(seq=int(record.get("seq", len(self.records) - 1)),
                          index=int(record["index"]), verdict=record["verdict"],
                          time=float(record.get("time", 0.0)),
                          after_reveal=bool(record.get("after_reveal", False)))
            self._active.append(j)
            self.verdicts[j.index] = j
        elif kind == "undo":
            gone = next((j for j in self._active if j.seq == record.get("undoes")), None)
            if gone is None:
                return
            self._active.remove(gone)
            earlier = [j for j in self._active if j.index == gone.index]
            if earlier:
                self.verdicts[gone.index] = earlier[-1]
            else:
                self.verdicts.pop(gone.index, None)
        elif kind == "reveal":
            self.revealed = True

    def verdict(self, index: int) -> str | None:
        """The current verdict of item ``index`` (``left``, ..., ``skip``) or ``None``."""
        j = self.verdicts.get(index)
        return j.verdict if j else None

    def first_unjudged(self) -> int | None:
        """The first generated item without a verdict (skips count as judged)."""
        return self.next_unjudged(-1)

    def next_unjudged(self, after: int) -> int | None:
        """The next generated, unjudged item after ``after``, wrapping round; ``None`` if none."""
        order = sorted(self.items)
        later = [i for i in order if i > after] + [i for i in order if i <= after]
        return next((i for i in later if i not in self.verdicts), None)

    # --- results

    def checks(self, index: int) -> tuple[SideChecks, SideChecks] | None:
        """Automatic checks of A's and B's answers, or ``None`` without a reference."""
        item = self.items.get(index)
        if item is None or item.reference is None:
            return None
        return check_answer(item.output_a, item.reference), check_answer(item.output_b, item.reference)

    def rows(self) -> list[ItemRow]:
        """The per-item table (generated items, in order), naming A and B."""
        out = []
        for index in sorted(self.items):
            item = self.items[index]
            j = self.verdicts.get(index)
            pair = self.checks(index)
            prefer = None
            if pair is not None and pair[0].exact != pair[1].exact:
                prefer = "a" if pair[0].exact else "b"
            out.append(ItemRow(index=index, outcome=item.outcome(j.verdict) if j else None,
                               a_side=item.a_side, checks_a=pair[0] if pair else None,
                               checks_b=pair[1] if pair else None, checks_prefer=prefer,
                               after_reveal=j.after_reveal if j else False))
        return out

    def stats(self) -> ReviewStats:
        """Counts, win rate and automatic checks over the current verdicts."""
        outcomes = [self.items[i].outcome(j.verdict) for i, j in self.verdicts.items()
                    if i in self.items]
        with_ref = [self.items[i] for i in sorted(self.items) if self.items[i].reference is not None]
        refs = [item.reference or "" for item in with_ref]
        return ReviewStats(
            total=self.total,
            generated=len(self.items),
            judged=len(outcomes),
            wins=outcomes.count("b"),
            losses=outcomes.count("a"),
            ties=outcomes.count("tie"),
            both_bad=outcomes.count("both_bad"),
            skipped=outcomes.count("skip"),
            after_reveal=sum(j.after_reveal for j in self.verdicts.values()),
            checks_a=score([i.output_a for i in with_ref], refs) if with_ref else {},
            checks_b=score([i.output_b for i in with_ref], refs) if with_ref else {},
            disagreements=sum(r.disagrees for r in self.rows()),
        )

    # --- export

    def export_markdown(self, path: str | Path | None = None) -> Path:
        """Write the report (settings, counts, win rate, checks, per-item table) as Markdown."""
        target = Path(path) if path else self.path / MARKDOWN_FILE
        target.write_text(markdown_report(self), encoding="utf-8")
        return target

    def export_csv(self, path: str | Path | None = None) -> Path:
        """Write one CSV row per generated item, with both answers, verdict and checks."""
        target = Path(path) if path else self.path / CSV_FILE
        with open(target, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for row in self.rows():
                item = self.items[row.index]
                j = self.verdicts.get(row.index)
                ca, cb = row.checks_a, row.checks_b
                writer.writerow([
                    row.index + 1, j.verdict if j else "", row.outcome or "", row.a_side,
                    item.prompt_text, item.reference if item.reference is not None else "",
                    item.output_a, item.output_b,
                    _flag(ca.exact) if ca else "", _flag(cb.exact) if cb else "",
                    _flag(ca.valid_json) if ca else "", _flag(cb.valid_json) if cb else "",
                    len(item.output_a.strip()), len(item.output_b.strip()),
                    row.checks_prefer or "", _flag(row.disagrees), _flag(row.after_reveal),
                ])
        return target


CSV_COLUMNS = ("item", "verdict", "outcome", "a_side", "prompt", "reference", "output_a",
               "output_b", "a_exact", "b_exact", "a_valid_json", "b_valid_json", "a_chars",
               "b_chars", "checks_prefer", "disagrees", "after_reveal")
"""Header of the CSV export; ``outcome`` is ``a``, ``b``, ``tie``, ``both_bad`` or ``skip``."""


def _flag(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _cell(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return one_line.replace("|", "\\|")


def markdown_report(review: ReviewSet) -> str:
    """The Markdown report of a set (what :meth:`ReviewSet.export_markdown` writes)."""
    meta, s = review.meta, review.stats()
    gen = meta.get("generation", {})
    lines = [
        f"# Review {review.name}",
        "",
        f"- A: {meta.get('a', {}).get('label') or meta.get('a', {}).get('spec', '?')}",
        f"- B: {meta.get('b', {}).get('label') or meta.get('b', {}).get('spec', '?')}",
        f"- Prompts: {meta.get('prompts', {}).get('source', '?')} ({review.total})",
        "- Generation: " + ", ".join(f"{k}={v}" for k, v in gen.items()),
        f"- Side seed: {review.seed}; sides {'revealed' if review.revealed else 'still hidden'}",
        "",
        "## Result",
        "",
        "| B better | A better | Tie | Both bad | Skipped | Judged |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s.wins} | {s.losses} | {s.ties} | {s.both_bad} | {s.skipped} | "
        f"{s.judged} of {s.generated} |",
        "",
        f"**{s.win_rate_text()}**",
        "",
        f"_{WIN_RATE_DEFINITION}_",
    ]
    if s.after_reveal:
        lines += ["", f"{s.after_reveal} verdict(s) were made after reveal (not blind)."]
    if s.checks_a:
        lines += [
            "", "## Automatic checks (against the reference answers)", "",
            "| | A | B |", "|---|---:|---:|",
            f"| exact match | {_pct(s.checks_a['exact_match'])} | {_pct(s.checks_b['exact_match'])} |",
            f"| valid JSON | {_pct(s.checks_a['valid_json'])} | {_pct(s.checks_b['valid_json'])} |",
            f"| length / reference | {s.checks_a['length_ratio']:.2f} | {s.checks_b['length_ratio']:.2f} |",
            "", f"Judgement and exact match disagree on {s.disagreements} item(s).",
        ]
    lines += ["", "## Items", "",
              "| # | Verdict | A side | A exact | B exact | A JSON | B JSON | A chars | B chars | "
              "Checks prefer | Prompt |",
              "|---:|---|---|---|---|---|---|---:|---:|---|---|"]
    for row in review.rows():
        item = review.items[row.index]
        ca, cb = row.checks_a, row.checks_b
        verdict = OUTCOME_LABELS.get(row.outcome or "", "—") + (" ≠" if row.disagrees else "")
        lines.append(
            f"| {row.index + 1} | {verdict} | {row.a_side} | {_flag(ca.exact) if ca else ''} | "
            f"{_flag(cb.exact) if cb else ''} | {_flag(ca.valid_json) if ca else ''} | "
            f"{_flag(cb.valid_json) if cb else ''} | {len(item.output_a.strip())} | "
            f"{len(item.output_b.strip())} | {(row.checks_prefer or '').upper() or '—'} | "
            f"{_cell(item.prompt_text)} |")
    lines += ["", "≠: the verdict and the exact-match check disagree.", ""]
    return "\n".join(lines)


# --- generating into a set ----------------------------------------------------------------


def generate_into(review: ReviewSet, request: "PairRequest", generator: "PairGenerator",
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


# --- finding sets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewSetInfo:
    """A review set as listed for reopening."""

    path: Path
    name: str
    label_a: str
    label_b: str
    total: int
    generated: int
    judged: int
    created: float


def find_review_sets(*roots: str | Path) -> list[ReviewSetInfo]:
    """Review sets under ``root/review/`` and ``root/*/review/`` for each root, newest first."""
    seen: set[Path] = set()
    out = []
    for root in roots:
        base = Path(root)
        for meta_path in [*base.glob(f"{REVIEW_DIR}/*/{META_FILE}"),
                          *base.glob(f"*/{REVIEW_DIR}/*/{META_FILE}")]:
            set_dir = meta_path.parent.resolve()
            if set_dir in seen:
                continue
            seen.add(set_dir)
            try:
                review = ReviewSet.open(meta_path.parent)
            except (ReviewError, OSError, KeyError, TypeError, ValueError):
                continue  # a foreign or damaged directory is not offered
            out.append(ReviewSetInfo(
                path=meta_path.parent, name=review.name,
                label_a=str(review.meta.get("a", {}).get("label", "A")),
                label_b=str(review.meta.get("b", {}).get("label", "B")),
                total=review.total, generated=len(review.items), judged=len(review.verdicts),
                created=float(review.meta.get("created", 0.0))))
    out.sort(key=lambda info: info.created, reverse=True)
    return out


def prompts_from_messages(rows: Iterable[tuple[int, list[dict[str, str]] | None]],
                          ) -> tuple[list[PromptItem], int]:
    """Prompt items from ``(line, messages)`` rows, and how many rows were not chats.

    A final assistant turn becomes the reference; a row must still have a user turn.
    """
    from core.generate import split_prompt

    prompts, skipped = [], 0
    for line, messages in rows:
        if not messages:
            skipped += 1
            continue
        prompt, reference = split_prompt(messages)
        if not any(m.get("role") == "user" for m in prompt):
            skipped += 1
            continue
        prompts.append(PromptItem(messages=prompt, reference=reference, source_line=line))
    return prompts, skipped


def load_prompts(source: str, limit: int | None = None) -> tuple[list[PromptItem], str]:
    """Prompts from a dataset path, ``sample:<name>``, or ``val:<run dir>`` (its validation split).

    Returns the prompts and a description of where they came from. Raises ``DataError`` or
    :class:`ReviewError` with the fix.
    """
    from core.data import load_examples, split_examples

    if source.startswith("val:"):
        from core.config import RunConfig
        from core.rundir import CONFIG_FILE

        run_dir = Path(source.removeprefix("val:")).expanduser()
        config = RunConfig.load(run_dir / CONFIG_FILE)
        loaded = load_examples(config.data.path, format=config.data.format,
                               on_bad_rows="drop")
        _, examples = split_examples(loaded.examples, config.data.validation_fraction,
                                     config.optim.seed)
        described = f"validation split of {run_dir.name} ({config.data.path})"
        if not examples:
            raise ReviewError(f"Run {run_dir.name} has no validation split "
                              "(data.validation_fraction is 0). Fix: choose a prompts file.")
    else:
        loaded = load_examples(source, on_bad_rows="drop")
        examples = loaded.examples
        described = source
    prompts, skipped = prompts_from_messages((e.line, e.messages) for e in examples)
    if not prompts:
        raise ReviewError(f"{described} has no chat rows to use as prompts ({skipped} plain-text "
                          "rows). Fix: use messages/sharegpt/alpaca rows.")
    if limit is not None and limit > 0:
        prompts = prompts[:limit]
    return prompts, described
