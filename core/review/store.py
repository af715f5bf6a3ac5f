"""Review sets on disk: create, open, append items, log judgements, find them again.

The files of a set are described in :mod:`core.review`. Judgements are written (flushed and
fsync-ed) before memory changes, so what the screen shows is always on disk.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.metrics import score
from core.review.records import (
    VERDICTS,
    Judgement,
    PromptItem,
    ReviewError,
    ReviewItem,
    a_side_for,
)
from core.review.report import markdown_report, write_csv
from core.review.stats import ItemRow, ReviewStats, SideChecks, check_answer

REVIEW_DIR = "review"
"""Sub-directory of a run (or any directory) that holds its review sets."""
META_FILE = "meta.json"
PROMPTS_FILE = "prompts.jsonl"
ITEMS_FILE = "items.jsonl"
JUDGEMENTS_FILE = "judgements.jsonl"
MARKDOWN_FILE = "results.md"
CSV_FILE = "results.csv"
FORMAT_VERSION = 1


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

    def add_prompt(self, prompt: PromptItem, output_a: str, output_b: str) -> ReviewItem:
        """Append one more prompt with both answers (a finding from the chat): the prompt,
        the count in ``meta.json`` and the item are written before memory changes."""
        _append_lines(self.path / PROMPTS_FILE, [asdict(prompt)])
        prompts_meta = {**self.meta.get("prompts", {}), "count": self.total + 1}
        write_meta(self.path, {**self.meta, "prompts": prompts_meta})
        self.meta = {**self.meta, "prompts": prompts_meta}
        self.prompts.append(prompt)
        item = self.make_item(self.total - 1, output_a, output_b)
        self.append_items([item])
        return item

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
        write_csv(self, target)
        return target


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
