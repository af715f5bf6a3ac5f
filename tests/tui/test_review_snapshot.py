"""SVG snapshots of the review screen on a fixed review set (fixed seed, fixed answers).

The set holds twelve held-out support tickets: A is a chatty untuned answer, B the JSON the
task asks for (wrong on two tickets). Four items are judged; reopening shows the fifth.

Run as a script to rewrite ``screenshots/review.svg`` from the real app in the same state:
``.venv/bin/python tests/tui/test_review_snapshot.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # run as a script too

from test_review_screen import dismiss_data_screen_notice, open_review, review_app, wait_for  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from core.review import ReviewSet, load_prompts  # noqa: E402

SIDE_SEED = 2024
"""Fixed side randomisation, so the same answer is always on the same side."""


def chatty(reference: dict) -> str:
    """What an untuned model says instead of the JSON."""
    product = reference.get("product") or "your order"
    return (f"I'm sorry to hear about the trouble with {product}. As a support assistant I "
            f"would classify this as a {reference['category']} issue with {reference['priority']} "
            "priority. Please share your order number so our team can look into it.")


def demo_set(workspace: Path) -> ReviewSet:
    """The fixed review set, written under ``workspace/lora-demo/review/``."""
    prompts, source = load_prompts("sample:support-tickets-heldout", limit=12)
    review = ReviewSet.create(
        workspace / "lora-demo", "base-vs-lora-demo",
        {"spec": "base", "kind": "base", "label": "base bundled:smollm2-135m-instruct"},
        {"spec": "runs/lora-demo", "kind": "run", "label": "run lora-demo (final)"},
        prompts, source, {"max_new_tokens": 256, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                          "batch_size": 8, "greedy": True}, SIDE_SEED)
    items = []
    for i, prompt in enumerate(prompts):
        reference = json.loads(prompt.reference or "{}")
        wrong = {**reference, "priority": "low"} if i in (3, 8) else reference
        items.append(review.make_item(i, chatty(reference), json.dumps(wrong)))
    review.append_items(items)
    review.mark_complete()
    for i, outcome in enumerate(["b", "b", "tie", "a"]):
        a_side = review.items[i].a_side
        side = a_side if outcome == "a" else ("right" if a_side == "left" else "left")
        review.judge(i, side if outcome in ("a", "b") else outcome)
    return review


async def reopen(pilot) -> None:
    """Open the review screen, reopen the set from the list, wait for item 5."""
    screen = await open_review(pilot)
    table = screen.query_one("#review-sets", DataTable)
    await wait_for(pilot, lambda: table.row_count == 1)
    table.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.review is not None and screen.view == "judge")
    await dismiss_data_screen_notice(pilot)


async def reveal_results(pilot) -> None:
    """Reopen, then reveal (confirmed) to show the results with the per-item table."""
    await reopen(pilot)
    await pilot.press("v", "y")
    await pilot.pause(0.3)
    pilot.app.clear_notifications()
    await pilot.pause(0.1)


def test_review_judge_snapshot(snap_compare, tmp_path, monkeypatch):
    """Item 5 of 12 side by side at 120x36, four judged, sides hidden."""
    monkeypatch.chdir(tmp_path)
    demo_set(Path("runs"))
    assert snap_compare(review_app(Path("runs")), terminal_size=(120, 36), run_before=reopen)


def test_review_results_snapshot_at_80x24(snap_compare, tmp_path, monkeypatch):
    """After reveal at 80x24: counts, win rate and the per-item table with checks."""
    monkeypatch.chdir(tmp_path)
    demo_set(Path("runs"))
    assert snap_compare(review_app(Path("runs")), terminal_size=(80, 24), run_before=reveal_results)


async def _write_screenshot(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        demo_set(Path("runs"))
        app = review_app(Path("runs"))
        async with app.run_test(size=(120, 36)) as pilot:
            await reopen(pilot)
            app.save_screenshot(str(out))


if __name__ == "__main__":
    asyncio.run(_write_screenshot(HERE.parents[1] / "screenshots" / "review.svg"))
