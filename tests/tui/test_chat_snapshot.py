"""SVG snapshot of the chat screen at 80x24: the base model and the fine-tune side by side,
one question answered by each (scripted answers, a fixed clock for the speed figures).

Run as a script to rewrite ``screenshots/chat.svg`` from the real app in the same state
(at 110x30): ``.venv/bin/python tests/tui/test_chat_snapshot.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # run as a script too

from chat_fakes import scripted_models  # noqa: E402
from test_chat_screen import chat_app, open_chat, send, write_run  # noqa: E402
from helpers import wait_for  # noqa: E402

QUESTION = "My invoice shows a double charge"


def fixed_clock() -> types.SimpleNamespace:
    """``core.chat``'s clock: half a second a reading (a reply reads it at its start, first
    token and end), so the speed figures never change."""
    ticks = itertools.count()
    return types.SimpleNamespace(perf_counter=lambda: next(ticks) * 0.5)


def demo_app(tokenizer):
    """The app on ``runs/`` (relative) holding one finished run, with scripted models."""
    workspace = Path("runs")
    write_run(workspace, "support-lora")
    return chat_app(workspace, scripted_models(tokenizer))


async def chat_before(pilot) -> None:
    """Open the chat, ask one question, wait for both answers, leave the message field."""
    screen = await open_chat(pilot)
    await send(pilot, QUESTION)
    await wait_for(pilot, lambda: not screen.generating, timeout=30)
    await pilot.press("escape")
    pilot.app.clear_notifications()
    await pilot.pause(0.3)


def test_chat_snapshot_at_80x24(snap_compare, tmp_path, monkeypatch, bundled_dir):
    from transformers import AutoTokenizer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("core.chat.time", fixed_clock())
    app = demo_app(AutoTokenizer.from_pretrained(bundled_dir))
    assert snap_compare(app, terminal_size=(80, 24), run_before=chat_before)


async def _screenshot(out: Path, tokenizer) -> None:
    app = demo_app(tokenizer)
    async with app.run_test(size=(110, 30)) as pilot:
        await chat_before(pilot)
        app.save_screenshot(str(out))


def main() -> None:
    """Write screenshots/chat.svg."""
    import core.chat
    from core.models import ensure_bundled_model
    from transformers import AutoTokenizer

    core.chat.time = fixed_clock()
    tokenizer = AutoTokenizer.from_pretrained(ensure_bundled_model())
    out = HERE.parents[1] / "screenshots" / "chat.svg"
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        asyncio.run(_screenshot(out, tokenizer))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
