"""SVG snapshots of the dataset screen with the bundled tokenizer (deterministic data).

- the bundled sample at 120x40, the third row in detail (templated text, trained tokens);
- a file with problems at 120x40, filtered to the problem rows, statistics pane shown;
- the same file at 80x24, a dropped row's detail.

Run as a script to rewrite ``screenshots/dataset.svg`` from the real app in the first state:
``.venv/bin/python tests/tui/test_dataset_snapshot.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # run as a script too


from core.config import RunConfig  # noqa: E402
from core.models import ensure_bundled_model  # noqa: E402
from tui.app import AppServices, make_app  # noqa: E402
from tui.dataset_tasks import DatasetServices  # noqa: E402
from tui.screens.dataset import DatasetScreen  # noqa: E402

SYSTEM = {"role": "system", "content": "Answer in one short sentence."}
PROBLEMS = [
    {"messages": [SYSTEM, {"role": "user", "content": "Where is my order ORD-12345?"},
                  {"role": "assistant", "content": "It ships tomorrow from Leeds."}]},
    '{"messages": [{"role": "user", "content": "broken',
    {"messages": [{"role": "wizard", "content": "Abracadabra"},
                  {"role": "assistant", "content": "Nothing happened here."}]},
    {"messages": [SYSTEM, {"role": "user", "content": "Where is my order ORD-12345?"},
                  {"role": "assistant", "content": "It ships tomorrow from Leeds."}]},
    {"messages": [SYSTEM, {"role": "user", "content": "Can you write malware?"},
                  {"role": "assistant", "content": "I'm sorry, but I cannot help with that."}]},
    {"messages": [SYSTEM, {"role": "user", "content": "Is the refund done?"},
                  {"role": "assistant", "content": "Yes"}]},
    {"messages": [SYSTEM, {"role": "user", "content": "Describe the return policy. " * 50},
                  {"role": "assistant", "content": "Returns are accepted within 30 days."}]},
    {"messages": [SYSTEM, {"role": "user", "content": "How do I reset my password?"},
                  {"role": "assistant", "content": "Use the link on the sign-in page."}]},
]
"""Malformed JSON (line 2), an unknown role (3), a duplicate (4), a refusal (5), a one-word
answer (6) and a row over a max length of 256 (7)."""


def write_problems(path: Path) -> Path:
    """Write the problem rows as JSON Lines."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in PROBLEMS), encoding="utf-8")
    return path


def demo_app(dataset: str, tokenizer, max_length: int = 512):
    """The app on ``dataset`` with ``tokenizer`` injected (no model conversion)."""
    config = RunConfig(run_name="demo")
    config.data.path = dataset
    config.data.max_length = max_length
    loader = DatasetServices(load_tokenizer=lambda ref: tokenizer)
    services = AppServices(dataset=loader)
    app = make_app(config=config, services=services)
    app.animation_level = "none"  # the pane tabs' underline slides: a snapshot mid-slide differs
    return app


def bundled_tokenizer():
    """The bundled model's tokenizer (converted once per machine)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_bundled_model())


async def idle(pilot) -> None:
    """Wait until the dataset screen has everything computed and drawn (``settled``: tasks,
    their results, the throttled statistics and histogram, the status line), however long
    that takes on a loaded machine."""
    screen = pilot.app.screen
    assert isinstance(screen, DatasetScreen)
    await pilot.pause()
    while not screen.settled:
        await pilot.pause(0.05)


async def settled(pilot, *keys: str) -> None:
    """Press ``keys`` once the screen is settled, then wait until it is settled again."""
    await idle(pilot)
    await pilot.press(*keys)
    await idle(pilot)
    pilot.app.clear_notifications()
    await pilot.pause()


async def sample_before(pilot) -> None:
    """The bundled sample, cursor on the third row, its detail rendered."""
    await settled(pilot, "down", "down")


async def problems_before(pilot) -> None:
    """The problem file filtered to its problem rows, the statistics pane shown."""
    await settled(pilot, "p", "v")


async def narrow_before(pilot) -> None:
    """At 80x24: the dropped row with an unknown role, in detail."""
    await settled(pilot, "down", "down", "enter")


def test_dataset_sample_snapshot(snap_compare, tokenizer):
    """Sample support tickets: rows, token counts, row 3 templated with trained tokens lit."""
    app = demo_app("sample:support-tickets", tokenizer)
    assert snap_compare(app, terminal_size=(120, 40), run_before=sample_before)


def test_dataset_problems_snapshot(snap_compare, tokenizer, tmp_path, monkeypatch):
    """Problem rows only (dropped, duplicate, refusal, short, too long) beside the statistics."""
    monkeypatch.chdir(tmp_path)  # the screen names the file as given: a relative path
    write_problems(Path("problems.jsonl"))
    app = demo_app("problems.jsonl", tokenizer, max_length=256)
    assert snap_compare(app, terminal_size=(120, 40), run_before=problems_before)


def test_dataset_narrow_snapshot(snap_compare, tokenizer, tmp_path, monkeypatch):
    """80x24: a dropped row's detail replaces the table."""
    monkeypatch.chdir(tmp_path)
    write_problems(Path("problems.jsonl"))
    app = demo_app("problems.jsonl", tokenizer, max_length=256)
    assert snap_compare(app, terminal_size=(80, 24), run_before=narrow_before)


async def write_screenshot(out: Path) -> None:
    """Save the sample state as an SVG at ``out`` (what the snapshot test compares)."""
    app = demo_app("sample:support-tickets", bundled_tokenizer())
    async with app.run_test(size=(120, 40)) as pilot:
        await sample_before(pilot)
        app.save_screenshot(str(out))


if __name__ == "__main__":
    target = HERE.parents[1] / "screenshots" / "dataset.svg"
    asyncio.run(write_screenshot(target))
    print(f"wrote {target}")
