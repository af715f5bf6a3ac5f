"""Kill the app with SIGKILL in the middle of a blind session: no saved judgement is lost.

A child process runs the real app headless with the fake generator and judges item after
item by key presses, printing each judgement once the screen has recorded it. The parent
kills it without warning after a dozen, while keys are still coming, then reads the review
set from disk: every judgement the child reported is there, with its verdict.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core.review import ReviewSet

HERE = Path(__file__).resolve().parent
CHILD = textwrap.dedent("""
    import asyncio, sys
    sys.path[:0] = [{here!r}, {here!r} + "/..", {root!r}]  # tests/tui, tests (helpers), the repo
    from pathlib import Path
    from test_review_screen import open_review, review_app, start_generation, wait_for, write_prompts

    async def main(tmp):
        prompts = write_prompts(tmp / "prompts.jsonl", 40)
        app = review_app(tmp / "runs")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_review(pilot)
            review = await start_generation(pilot, screen, prompts, batch="8")
            await wait_for(pilot, lambda: review.complete and not screen.generating)
            print("SET", review.path, flush=True)
            for n in range(40):
                key = "lrtbs"[n % 5]
                index = screen.index
                await pilot.press(key)
                verdict = review.verdict(index)
                print("JUDGED", index, verdict, flush=True)
                await pilot.pause(0.03)
            await asyncio.sleep(3600)

    asyncio.run(main(Path(sys.argv[1])))
""").format(here=str(HERE), root=str(HERE.parents[1]))


def test_sigkill_mid_session_keeps_every_saved_judgement(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    reported: dict[int, str] = {}
    set_dir = None
    deadline = time.monotonic() + 120
    try:
        while len(reported) < 12 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            kind, *rest = line.split()
            if kind == "SET":
                set_dir = Path(rest[0])
            elif kind == "JUDGED":
                reported[int(rest[0])] = rest[1]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        stderr = child.stderr.read()
    assert child.returncode == -signal.SIGKILL
    assert set_dir is not None and len(reported) >= 12, stderr[-3000:]
    review = ReviewSet.open(set_dir)
    on_disk = {i: j.verdict for i, j in review.verdicts.items()}
    assert {i: on_disk.get(i) for i in reported} == reported
    assert set(reported.values()) == {"left", "right", "tie", "both_bad", "skip"}
    assert review.complete  # the generated items survived too
    assert review.first_unjudged() == max(on_disk) + 1  # reopening resumes after the last one
