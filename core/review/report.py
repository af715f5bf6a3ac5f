"""Reports of a review set: the Markdown summary and the per-item CSV (after reveal).

Both name A and B per item, so the screen offers them only once the sides are revealed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from core.review.stats import OUTCOME_LABELS, WIN_RATE_DEFINITION

if TYPE_CHECKING:
    from core.review.store import ReviewSet

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


def write_csv(review: ReviewSet, target: Path) -> None:
    """One CSV row per generated item, with both answers, verdict and checks."""
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in review.rows():
            item = review.items[row.index]
            j = review.verdicts.get(row.index)
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
