"""Pilot tests of the review screen with a fake generator: a whole blind session by keys.

The fake answers every prompt instantly (or batch by batch when gated), so each test runs in
about a second. Helpers here (``FakeGenerator``, ``review_app``, ``wait_for``...) are shared
with the crash and snapshot tests.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable

from helpers import wait_for
from core.config import RunConfig
from core.generate import GeneratedPair, GenerationSettings, PairRequest
from core.review import JUDGEMENTS_FILE, ReviewSet, find_review_sets, wilson_interval
from tui.app import AppServices, make_app
from tui.messages import ReviewRun
from tui.dataset_tasks import DatasetServices
from tui.screens.review import ReviewScreen
from tui.widgets.confirm import Confirm


class FakeGenerator:
    """A ``PairGenerator``: A repeats the reference, B answers ``B says <n>``.

    ``gate`` (optional) makes it wait before every batch after the first, so a test can judge
    while generation is still running; it always honours ``request.stop``.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.requests: list[PairRequest] = []

    def __call__(self, request: PairRequest, on_status):
        self.requests.append(request)
        on_status("Loading fake models…")
        size = request.settings.batch_size
        for start in range(request.start, len(request.conversations), size):
            if start > request.start and self.gate is not None:
                while not self.gate.wait(0.05):
                    if request.stop.is_set():
                        return
            if request.stop.is_set():
                return
            for i in range(start, min(start + size, len(request.conversations))):
                user = request.conversations[i][-1]["content"]
                yield GeneratedPair(i, answer_a(i, user), f"B says {i + 1}")


def answer_a(index: int, user: str) -> str:
    """A's fake answer: the reference for prompts written by ``write_prompts``."""
    return json.dumps({"n": index + 1}) if user.startswith("Ticket") else f"A says {index + 1}"


def write_prompts(path: Path, count: int) -> Path:
    """``count`` chat rows ``Ticket n`` whose reference answer is ``{"n": n}``."""
    rows = [{"messages": [{"role": "system", "content": "Answer as JSON."},
                          {"role": "user", "content": f"Ticket {n}: my order is late."},
                          {"role": "assistant", "content": json.dumps({"n": n})}]}
            for n in range(1, count + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class NoTokenizer:
    """Tokenizer loader for the data screen (the app's first screen) that refuses: these tests
    never look at that screen, and a real tokenizer would import transformers into every app.
    ``asked`` tells when the screen has asked (and so will show its error notice)."""

    def __init__(self) -> None:
        self.asked = threading.Event()

    def __call__(self, ref: str):
        self.asked.set()
        raise RuntimeError(f"no tokenizer for {ref} in review tests")


def review_app(workspace: Path, generator=None):
    """The app on ``workspace`` with a fake generator (and no tokenizer for the data screen)."""
    services = AppServices(review_generator=generator or FakeGenerator(),
                           dataset=DatasetServices(load_tokenizer=NoTokenizer()))
    return make_app(config=RunConfig(run_name="test"), services=services, workspace=str(workspace))


async def dismiss_data_screen_notice(pilot) -> None:
    """Wait for the data screen's refused tokenizer, then clear its notice (for snapshots)."""
    app = pilot.app
    await wait_for(pilot, app.services.dataset.load_tokenizer.asked.is_set)
    await wait_for(pilot, lambda: all(w.is_finished for w in app.workers if w.group == "tokenizer"))
    await pilot.pause(0.2)
    app.clear_notifications()
    await pilot.pause(0.1)


def shown(widget) -> str:
    """The plain text a ``Static`` shows (strings, Text, Content or a rich renderable)."""
    content = widget.content
    if isinstance(content, str) or hasattr(content, "plain"):
        return content if isinstance(content, str) else content.plain
    console = Console(file=io.StringIO(), width=200)
    console.print(content)
    return console.file.getvalue()


async def open_review(pilot) -> ReviewScreen:
    """Switch to the review screen and wait for the workspace scan."""
    await pilot.press("4")
    screen = pilot.app.screen
    assert isinstance(screen, ReviewScreen)
    await wait_for(pilot, lambda: screen.scan is not None)
    return screen


async def start_generation(pilot, screen: ReviewScreen, prompts: Path, a: str = "A-model",
                           b: str = "B-model", batch: str = "4") -> ReviewSet:
    """Fill the setup form (models as plain references, a prompts file) and generate."""
    from textual.widgets import Input, Select

    for selector, value in (("#review-model-a", a), ("#review-model-b", b)):
        select = screen.query_one(selector, Select)
        select.set_options([*((label, v) for label, v in select._options if v != select.BLANK),
                            (value, ("path", value))])
        select.value = ("path", value)
    screen.query_one("#review-prompts", Select).value = ("file", "")
    screen.query_one("#review-prompts-path", Input).value = str(prompts)
    screen.query_one("#review-batch-size", Input).value = batch
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: screen.review is not None and screen.review.items)
    return screen.review


def key_for(review: ReviewSet, index: int, better: str) -> str:
    """The key that says model ``better`` (``a`` or ``b``) won item ``index``."""
    side = review.items[index].a_side if better == "a" else (
        "right" if review.items[index].a_side == "left" else "left")
    return "l" if side == "left" else "r"


async def test_blind_session_with_undo_resume_and_reveal(tmp_path):
    """Judge 6 items by keys (with an undo), restart, resume, reveal, check stats and exports."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", 8)
    workspace = tmp_path / "runs"
    app = review_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        review = await start_generation(pilot, screen, prompts)
        await wait_for(pilot, lambda: review.complete and not screen.generating)
        assert screen.view == "judge" and screen.index == 0
        # Blind: the panes are titled Left/Right only and show the outputs by side.
        left = screen.query_one("#review-left")
        assert left.border_title == "Left"
        assert str(left.content) == review.items[0].left
        # B better, A better, B better, wrong key then undo, tie, both bad.
        await pilot.press(key_for(review, 0, "b"), key_for(review, 1, "a"), key_for(review, 2, "b"))
        await pilot.press(key_for(review, 3, "a"), "u")
        assert screen.index == 3 and review.verdict(3) is None
        await pilot.press("t", "b")
        assert screen.index == 5
        await pilot.press("s")  # item 6 skipped
        assert len(review.verdicts) == 6 and screen.index == 6
        log = [json.loads(line) for line in (review.path / JUDGEMENTS_FILE).read_text().splitlines()]
        assert [r["kind"] for r in log].count("undo") == 1 and len(log) == 8
    # Restart: the set is listed, Enter reopens it at the first unjudged item (7).
    app = review_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        table = screen.query_one("#review-sets", DataTable)
        assert table.row_count == 1
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.review is not None)
        review = screen.review
        assert screen.view == "judge" and screen.index == 6 and len(review.verdicts) == 6
        await pilot.press(key_for(review, 6, "b"), key_for(review, 7, "b"))
        # Results before reveal: counts and win rate, no per-item table.
        await pilot.press("o")
        assert screen.view == "results"
        assert not screen.query_one("#review-table").display
        stats = review.stats()
        assert (stats.wins, stats.losses, stats.ties, stats.both_bad, stats.skipped) == (4, 1, 1, 1, 1)
        assert stats.win_rate == 0.8
        low, high = stats.interval
        assert abs(low - 0.3755) < 1e-3 and abs(high - 0.9638) < 1e-3  # Wilson 4/5 by hand
        assert (low, high) == wilson_interval(4, 5)
        assert "80.0% (95% CI 37.6%-96.4%, n=5)" in shown(screen.query_one("#review-summary"))
        # Export waits for reveal; reveal asks first and can be declined.
        await pilot.press("m")
        assert not (review.path / "results.md").exists()
        await pilot.press("v")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        assert not review.revealed
        await pilot.press("v")
        await pilot.press("y")
        assert review.revealed and screen.view == "results"
        table = screen.query_one("#review-table", DataTable)
        assert table.display and table.row_count == 8
        # Automatic checks: A matches every reference, B none; item 1 (B judged better) disagrees.
        row = table.get_row("0")
        assert str(row[1]) == "B better" and row[3] == "✓" and row[4] == "✗" and "≠" in str(row[9])
        assert str(table.get_row("1")[9]) == "A"  # A better and A exact: no disagreement mark
        assert review.stats().disagreements == 6  # four B wins, the tie and both bad
        await pilot.press("m", "c")
    md = (review.path / "results.md").read_text()
    assert "B win rate 80.0% (95% CI 37.6%-96.4%, n=5)" in md and "| 4 | 1 | 1 | 1 | 1 |" in md
    with open(review.path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["outcome"] for r in rows] == ["b", "a", "b", "tie", "both_bad", "skip", "b", "b"]
    assert rows[0]["a_exact"] == "yes" and rows[0]["disagrees"] == "yes"


async def test_reviewing_starts_before_generation_ends(tmp_path):
    """With batches held back, the first batch can be judged while the rest is pending."""
    gate = threading.Event()
    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    app = review_app(tmp_path / "runs", FakeGenerator(gate))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        review = await start_generation(pilot, screen, prompts, batch="2")
        assert screen.generating and len(review.items) == 2
        assert "2 ready" in shown(screen.query_one("#review-counter"))
        assert screen.query_one("#review-progress").display
        await pilot.press("t", "t")
        await pilot.press("n")  # item 3 is not generated yet: the screen stays put
        assert screen.index == 1 and len(review.verdicts) == 2
        gate.set()
        await wait_for(pilot, lambda: not screen.generating)
        assert review.complete and ReviewSet.open(review.path).meta["complete"]
        await pilot.press("j")
        assert screen.index == 2


async def test_quitting_mid_generation_stops_it_and_the_rest_can_be_generated(tmp_path):
    """ctrl+q during generation sets the stop flag; g later generates the missing answers."""
    gate = threading.Event()
    prompts = write_prompts(tmp_path / "p.jsonl", 6)
    fake = FakeGenerator(gate)
    app = review_app(tmp_path / "runs", fake)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        review = await start_generation(pilot, screen, prompts, batch="2")
    assert fake.requests[0].stop.is_set()
    partial = ReviewSet.open(review.path)
    assert len(partial.items) == 2 and not partial.complete
    app = review_app(tmp_path / "runs", FakeGenerator())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        screen.query_one("#review-sets", DataTable).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.review is not None)
        await pilot.press("g")
        await wait_for(pilot, lambda: screen.review.complete and not screen.generating)
    items = [json.loads(x) for x in (review.path / "items.jsonl").read_text().splitlines()]
    assert [i["index"] for i in items] == list(range(6))


async def test_narrow_terminal_stacks_answers_and_reference_toggles(tmp_path):
    """At 80x24 the answers stack; e shows the reference answer; wider, they sit side by side."""
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    app = review_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot)
        await start_generation(pilot, screen, prompts)
        await pilot.pause(0.1)
        left, right = screen.query_one("#review-left"), screen.query_one("#review-right")
        assert screen.has_class("-narrow")
        assert left.region.y < right.region.y and left.region.width == right.region.width
        assert left.region.height >= 3
        reference = screen.query_one("#review-reference")
        assert not reference.display
        await pilot.press("e")
        assert reference.display and str(reference.content) == '{"n": 1}'
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert left.region.y == right.region.y and left.region.x < right.region.x


async def test_prompt_pane_shows_the_user_turn_first_and_y_shows_the_system_prompt(tmp_path):
    """At 80x24 a long system prompt would fill the prompt pane: it comes last, on one line."""
    system = "You are the support desk of a shop. " * 12
    rows = [{"messages": [{"role": "system", "content": system},
                          {"role": "user", "content": f"Ticket {n}: my order is late."},
                          {"role": "assistant", "content": "{}"}]} for n in (1, 2)]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = review_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot)
        await start_generation(pilot, screen, prompts)
        await pilot.pause(0.1)
        pane = screen.query_one("#review-prompt")
        assert pane.region.height >= 3
        text = shown(pane.query_one("Static")).splitlines()
        assert text[0].startswith("user: Ticket 1")
        assert text[-1].startswith("system: You are the support desk") and "y: whole" in text[-1]
        await pilot.press("y")
        text = shown(pane.query_one("Static"))
        assert system.strip() in " ".join(text.split()) and "y: whole" not in text
        await pilot.press("y")
        assert "y: whole" in shown(pane.query_one("Static"))


async def test_review_run_message_preselects_the_run(tmp_path):
    """Opening a finished run from the training screen picks its adapter, base and split."""
    workspace = tmp_path / "runs"
    run_dir = workspace / "lora-1"
    (run_dir / "final").mkdir(parents=True)
    (run_dir / "final" / "adapter_config.json").write_text("{}")
    RunConfig(run_name="lora-1").save(run_dir / "config.yaml")
    app = review_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        screen.post_message(ReviewRun(run_dir))
        await wait_for(pilot, lambda: screen.query_one("#review-prompts").value == ("val", str(run_dir)))
        assert screen.query_one("#review-model-b").value == ("path", str(run_dir))
        assert screen.query_one("#review-model-a").value == ("base", "bundled:smollm2-135m-instruct")


async def test_bad_settings_and_missing_prompts_are_explained(tmp_path):
    """Invalid numbers and an empty file path say what to fix; nothing is generated."""
    from textual.widgets import Input, Select

    app = review_app(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        screen.query_one("#review-batch-size", Input).value = "0"
        await pilot.press("ctrl+g")
        assert "batch_size must be at least 1" in shown(screen.query_one("#review-setup-note"))
        screen.query_one("#review-batch-size", Input).value = "8"
        await pilot.press("ctrl+g")  # with no runs, A and B both default to the base model
        assert "Model A and model B are the same" in shown(screen.query_one("#review-setup-note"))
        select = screen.query_one("#review-model-b", Select)
        select.set_options([("other", ("path", "other-model"))])
        select.value = ("path", "other-model")
        screen.query_one("#review-prompts", Select).value = ("file", "")
        await pilot.press("ctrl+g")
        assert "Type the path of a prompts file" in shown(screen.query_one("#review-setup-note"))
        assert not screen.generating and not find_review_sets(tmp_path / "runs")


def test_settings_shown_match_the_stored_settings():
    """The settings line is the stored settings' description."""
    assert GenerationSettings(batch_size=4).describe() == "greedy · max 256 new tokens · batch 4"


async def test_real_generation_with_tiny_models(tmp_path, tiny_model_dir):
    """Without a fake, the worker loads two tiny models (torch only there) and fills the set."""
    import shutil

    other = shutil.copytree(tiny_model_dir, tmp_path / "tiny-copy")
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    services = AppServices(dataset=DatasetServices(load_tokenizer=NoTokenizer()))
    app = make_app(config=RunConfig(run_name="t"), services=services, workspace=str(tmp_path / "runs"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_review(pilot)
        from textual.widgets import Input

        screen.query_one("#review-max-new-tokens", Input).value = "4"
        review = await start_generation(pilot, screen, prompts, a=str(tiny_model_dir), b=str(other))
        await wait_for(pilot, lambda: not screen.generating, timeout=120)
        assert review.complete, screen._status
        assert review.meta["generation"]["max_new_tokens"] == 4
        assert review.meta["a"]["model"] == str(tiny_model_dir) and review.meta["b"]["kind"] == "model"
