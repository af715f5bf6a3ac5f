"""Pilot tests of the chat screen at 80x24: keys, streaming, stop, clear, blind, switching
models, a run opened from the Runs screen, and one reply from a real tiny model.

Most tests use a scripted model (``chat_fakes.ScriptedModel``): the real tokenizer, streamer,
stopping criteria, worker and messages, with fixed answers and a per-token delay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_fakes import BASE_ANSWERS, TUNED_ANSWERS, scripted_models
from test_keys_and_focus import assert_footer_fits, footer_ready
from helpers import wait_for
from test_review_screen import NoTokenizer
from textual.widgets import Input, Select, Static

from core.config import BUNDLED_MODEL, RunConfig
from tui.app import AppServices, TunetopApp, make_app
from tui.commands import TunetopCommands
from tui.dataset_tasks import DatasetServices
from tui.screens.chat import ChatScreen
from tui.widgets.chat_pane import ChatPane


def write_run(workspace: Path, name: str, base: str = BUNDLED_MODEL,
              checkpoint: str | None = None, system: str = "model") -> Path:
    """A finished run directory: its config and a final adapter (only its config: the
    scripted models load nothing)."""
    run_dir = workspace / name
    config = RunConfig(run_name=name)
    config.model.name_or_path = base
    config.data.default_system_prompt = system
    (run_dir / "final").mkdir(parents=True)
    config.save(run_dir / "config.yaml")
    adapter = json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"})
    (run_dir / "final" / "adapter_config.json").write_text(adapter)
    if checkpoint:
        ckpt = run_dir / "checkpoints" / checkpoint
        ckpt.mkdir(parents=True)
        (ckpt / "adapter_config.json").write_text(adapter)
        (ckpt / "COMPLETE").write_text("done")
    return run_dir


def chat_app(workspace: Path, models, config: RunConfig | None = None) -> TunetopApp:
    """The app on ``workspace`` with the given chat models (no tokenizer for the data screen)."""
    services = AppServices(dataset=DatasetServices(load_tokenizer=NoTokenizer()),
                           chat_models=models)
    return make_app(config=config or RunConfig(run_name="test"), services=services,
                    workspace=str(workspace))


def app_with_a_run(tmp_path: Path, models) -> TunetopApp:
    """The app on ``tmp_path/runs`` holding one finished run, ``support-lora``."""
    write_run(tmp_path / "runs", "support-lora")
    return chat_app(tmp_path / "runs", models)


async def open_chat(pilot) -> ChatScreen:
    """Switch to the chat screen and wait for its models."""
    await pilot.press("6")
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    await wait_for(pilot, lambda: screen.scan is not None)
    await pilot.pause(0.1)
    return screen


async def reply_begun(pilot, screen: ChatScreen) -> None:
    """Send "hello" and wait until the first reply has its first words."""
    await send(pilot, "hello")
    await wait_for(pilot, lambda: pane_text(screen, 0)[-1] not in ("…", ""))


def pane_text(screen: ChatScreen, position: int) -> list[str]:
    """The turns shown in the pane at ``position`` (0 left, 1 right)."""
    pane = screen.query_one(f"#chat-pane-{position}", ChatPane)
    return [str(w.render()) for w in pane.query(Static)]


def status(screen: ChatScreen) -> str:
    return str(screen.query_one("#chat-status", Static).render())


async def send(pilot, text: str) -> None:
    """Enter, type ``text``, Enter."""
    await pilot.press("enter", *[{" ": "space", "?": "question_mark", ",": "comma"}.get(c, c)
                                 for c in text], "enter")


async def test_a_message_streams_to_the_base_and_the_fine_tune_side_by_side(tmp_path, tokenizer):
    run = write_run(tmp_path / "runs", "support-lora")
    models = scripted_models(tokenizer, delay=0.05)  # a window wide enough to see a partial answer under load
    app = chat_app(tmp_path / "runs", models)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert screen.side_by_side
        assert screen.query_one("#chat-model-a", Select).value == ("base", BUNDLED_MODEL)
        assert screen.query_one("#chat-model-b", Select).value == ("path", str(run))
        left = screen.query_one("#chat-pane-0", ChatPane)
        right = screen.query_one("#chat-pane-1", ChatPane)
        assert left.border_title == f"A base {BUNDLED_MODEL}"
        assert right.border_title == "B run support-lora (final)"
        assert left.region.width >= 38 and right.region.x >= 38  # side by side at 80 columns

        await send(pilot, "my invoice shows a double charge")
        # Streaming is visible: part of the answer, then all of it.
        await wait_for(pilot, lambda: 0 < len(pane_text(screen, 0)[-1]) < len(BASE_ANSWERS[0])
                       and pane_text(screen, 0)[-1] != "…")
        partial = pane_text(screen, 0)[-1]
        assert BASE_ANSWERS[0].startswith(partial), partial
        assert screen.generating
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert pane_text(screen, 0)[0] == "› my invoice shows a double charge"
        assert pane_text(screen, 0)[1].startswith(BASE_ANSWERS[0])
        assert pane_text(screen, 1)[1].startswith(TUNED_ANSWERS[0])
        assert "tok/s" in pane_text(screen, 1)[1] and "tok/s" in status(screen)
        assert models.loads == [[BASE_MODEL_SPEC, str(run)]]

        # A second turn carries the history; nothing loads again.
        await send(pilot, "thanks")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert screen.histories[1][-1] == {"role": "assistant", "content": TUNED_ANSWERS[1]}
        assert [m["role"] for m in screen.histories[0]] == ["user", "assistant"] * 2
        assert len(models.loads) == 1


BASE_MODEL_SPEC = BUNDLED_MODEL
"""The spec of the base side: the app's model."""


async def test_escape_stops_the_reply_and_keeps_what_was_written(tmp_path, tokenizer):
    app = app_with_a_run(tmp_path, scripted_models(tokenizer, delay=0.1))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await reply_begun(pilot, screen)
        await footer_ready(pilot)
        assert "esc Stop" in str(pilot.app.screen._compositor.render_strips()[23].text)
        await pilot.press("escape")
        assert isinstance(app.focused, Input)  # Esc stopped the reply; typing goes on
        await wait_for(pilot, lambda: not screen.generating, timeout=10)
        kept = screen.histories[0][-1]["content"]
        assert kept and BASE_ANSWERS[0].startswith(kept) and len(kept) < len(BASE_ANSWERS[0])
        assert "stopped" in pane_text(screen, 0)[-1]
        # B had not started: its question is dropped, the pane says so.
        assert screen.histories[1] == [] and pane_text(screen, 1)[-1] == "(no reply: stopped)"
        assert "Stopped" in status(screen)
        await pilot.press("escape")  # now Esc leaves the field: screen keys work again
        assert not isinstance(app.focused, Input)
        await pilot.press("1")
        assert app.current_mode == "dataset"
        await pilot.press("6")
        assert app.screen is screen and screen.histories[0][-1]["content"] == kept


async def test_keys_clear_and_typing_digits(tmp_path, tokenizer):
    app = app_with_a_run(tmp_path, scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await footer_ready(pilot)
        assert_footer_fits(app)
        await send(pilot, "is 1+1 2?")  # digits and ? type into the message
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert screen.histories[0][0]["content"] == "is 1+1 2?"
        assert app.current_mode == "chat" and not screen.query("KeyPanel")
        await pilot.press("ctrl+l")  # works while typing
        assert screen.histories == [[], []] and pane_text(screen, 0) == []
        assert "cleared" in status(screen)
        await pilot.press("escape", "question_mark")
        assert screen.query("KeyPanel")
        await pilot.press("question_mark", "s")  # one model
        await pilot.pause(0.1)
        assert not screen.side_by_side and not screen.query_one("#chat-pane-1").display
        await pilot.press("s")
        await pilot.pause(0.1)
        assert screen.side_by_side
        titles = [hit.text async for hit in TunetopCommands(screen).discover()]
        for title in ("Chat: Write a message (Enter sends it)", "Chat: Clear the conversation",
                      "Chat: Side by side (or one model)",
                      "Chat: Settings (system prompt, temperature, top-p, max tokens)",
                      "Chat: Models (choose A and B)", "Go to Review"):
            assert title in titles
        assert not any(title.startswith("Chat: Stop") for title in titles)  # nothing streams
        await pilot.press("t")
        assert app.focused.id == "chat-system"
        await pilot.press("escape", "m")
        assert app.focused.id == "chat-model-a"


async def test_blind_hides_and_shuffles_the_sides_then_reveals(tmp_path, tokenizer):
    app = app_with_a_run(tmp_path, scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "hello")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        await pilot.press("escape")
        for _ in range(12):  # both orders show up
            await pilot.press("b")
            assert screen.blind
            titles = [screen.query_one(f"#chat-pane-{i}", ChatPane).border_title for i in (0, 1)]
            assert titles == ["Left", "Right"]
            tuned_at = 1 - int(screen.swapped)
            assert pane_text(screen, tuned_at)[1].startswith(TUNED_ANSWERS[0])
            await pilot.press("b")  # reveal: names in place
            assert not screen.blind
            title = screen.query_one(f"#chat-pane-{tuned_at}", ChatPane).border_title
            assert title == "B run support-lora (final)"


async def test_switching_models_notes_it_and_loads_only_what_is_new(tmp_path, tokenizer):
    workspace = tmp_path / "runs"
    run = write_run(workspace, "support-lora", checkpoint="checkpoint-000002",
                    system="You route support tickets.")
    models = scripted_models(tokenizer)
    app = chat_app(workspace, models)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "hello")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        generator = screen.models.get(screen_refs(screen))[1]
        assert "You route support tickets." in generator.model.prompts[-1]  # as trained
        checkpoint = run / "checkpoints" / "checkpoint-000002"
        screen.query_one("#chat-model-b", Select).value = ("path", str(checkpoint))
        await pilot.pause(0.1)
        assert pane_text(screen, 1)[-1] == "— now talking to run support-lora checkpoint-000002 —"
        assert screen.query_one("#chat-pane-1", ChatPane).border_title.endswith("checkpoint-000002")
        await send(pilot, "again")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert models.loads[-1] == [BUNDLED_MODEL, str(checkpoint)]
        await pilot.press("escape", "s")  # A alone: already loaded
        await send(pilot, "alone")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert len(models.loads) == 2
        # A system prompt typed on the screen replaces the run's.
        await pilot.press("escape", "t", *"Be brief", "escape")
        await send(pilot, "hi")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        prompt = screen.models.get(screen_refs(screen))[0].model.prompts[-1]
        assert "Be brief" in prompt and "You route" not in prompt


def screen_refs(screen: ChatScreen):
    """The refs the chat resolves for the chosen models."""
    from core.generate import resolve_pair

    a = screen._spec(0)
    b = screen._spec(1)
    return list(resolve_pair(a, b or a, BUNDLED_MODEL))[:2 if b else 1]


async def test_bad_settings_are_named_and_nothing_is_sent(tmp_path, tokenizer):
    app = chat_app(tmp_path / "runs", scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        assert not screen.side_by_side  # no run: one model
        max_tokens = screen.query_one("#chat-max-tokens", Input)
        max_tokens.value = "0"
        await send(pilot, "hello")
        await pilot.pause(0.1)
        assert screen.histories == [[], []] and not screen.generating
        assert any("max_new_tokens must be at least 1" in str(n.message)
                   for n in app._notifications)
        assert app.screen.query_one("#chat-input", Input).value == "hello"  # not lost


async def test_runs_screen_opens_the_chat_on_a_run(tmp_path, tokenizer):
    workspace = tmp_path / "runs"
    write_run(workspace, "older-lora")
    wanted = write_run(workspace, "support-lora")
    (workspace / "older-lora" / "config.yaml").touch()  # the newest is not the one asked for
    app = chat_app(workspace, scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        runs = app.screen
        await wait_for(pilot, lambda: len(runs.runs) == 2)
        row = [r.path.name for r in runs.runs].index("support-lora")
        runs.query_one("DataTable").move_cursor(row=row)
        await pilot.press("t")
        await wait_for(pilot, lambda: app.current_mode == "chat")
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#chat-model-b", Select).value
                       == ("path", str(wanted)))


async def test_a_real_tiny_model_answers_in_the_chat(tmp_path, tiny_model_dir):
    """The whole path with real weights: load (the phase shown), stream, tokens/s."""
    config = RunConfig(run_name="test")
    config.model.name_or_path = str(tiny_model_dir)
    app = chat_app(tmp_path / "runs", None, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        screen.query_one("#chat-max-tokens", Input).value = "8"
        await send(pilot, "hello")
        await wait_for(pilot, lambda: not screen.generating, timeout=120)
        assert not [n for n in app._notifications if n.title == "Chat failed"]
        reply = pane_text(screen, 0)[-1]
        assert "tokens" in reply and "tok/s" in reply
        assert screen.histories[0][-1]["role"] == "assistant"


async def test_a_adds_the_exchange_to_a_review_set_judged_on_the_review_screen(tmp_path, tokenizer):
    from core.review import find_review_sets

    workspace = tmp_path / "runs"
    run = write_run(workspace, "support-lora")
    app = chat_app(workspace, scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "double charge")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        await pilot.press("escape", "a")
        (info,) = find_review_sets(workspace)
        assert info.path.parent.parent == run and info.total == info.generated == 1
        assert any("Added to review set" in str(n.message) for n in app._notifications)
        assert screen.check_action("add_to_review", ()) is False  # once per exchange
        await pilot.press("4")  # the review screen offers it
        review = app.screen
        await wait_for(pilot, lambda: review.scan is not None and review.scan.sets)
        assert review.scan.sets[0].path == info.path


async def test_conversations_are_saved_and_reopened(tmp_path, tokenizer):
    from core.chat import list_chats

    workspace = tmp_path / "runs"
    write_run(workspace, "support-lora")
    app = chat_app(workspace, scripted_models(tokenizer))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "double charge")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        await send(pilot, "thanks")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        saved = [dict(m) for m in screen.histories[1]]
        shown = pane_text(screen, 1)
        ((path, first),) = list_chats(workspace)
        assert first == "double charge" and path == screen.chat_path
        await pilot.press("ctrl+l", "escape")
        assert screen.histories == [[], []]
        screen.query_one("#chat-model-b", Select).clear()  # B changed since
        await pilot.press("o")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.histories[1] == saved)
        assert screen.side_by_side and pane_text(screen, 1) == shown  # no "now talking" note
        assert "Reopened" in status(screen)
        await send(pilot, "and then?")  # the reopened conversation goes on in the same file
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert screen.chat_path == path and len(list_chats(workspace)) == 1
        assert len(screen.histories[0]) == 6


def test_a_damaged_saved_conversation_is_named(tmp_path):
    from core.chat import ChatFileError, list_chats, load_chat

    chats = tmp_path / "chats"
    chats.mkdir()
    (chats / "20250101-000000.json").write_text("{not json")
    (chats / "20250101-000001.json").write_text('{"turns": []}')
    for name in ("20250101-000000.json", "20250101-000001.json"):
        with pytest.raises(ChatFileError, match=name):
            load_chat(chats / name)
    assert list_chats(tmp_path) == []


async def test_clearing_while_a_reply_streams_drops_the_rest_of_it(tmp_path, tokenizer):
    app = app_with_a_run(tmp_path, scripted_models(tokenizer, delay=0.05))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await reply_begun(pilot, screen)
        assert screen.query_one("#chat-model-b", Select).disabled  # models fixed meanwhile
        assert screen.check_action("toggle_side_by_side", ()) is False
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: not screen.generating, timeout=10)
        await pilot.pause(0.2)
        assert screen.histories == [[], []] and pane_text(screen, 0) == []
        assert not screen.query_one("#chat-model-b", Select).disabled
        await send(pilot, "again")  # a new conversation works as usual
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert [m["role"] for m in screen.histories[1]] == ["user", "assistant"]


async def test_a_slow_load_shows_its_phase_and_seconds(tmp_path, tokenizer):
    app = chat_app(tmp_path / "runs", scripted_models(tokenizer, load_seconds=2.5))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, "hello")
        await wait_for(pilot, lambda: status(screen).startswith(f"Loading {BUNDLED_MODEL} on cpu… ")
                       and status(screen).endswith(("1 s", "2 s")), timeout=10)
        await pilot.press("escape")  # the keyboard works meanwhile: Esc stops
        await wait_for(pilot, lambda: not screen.generating, timeout=10)
        assert "Stopped" in status(screen)
