"""Keys and focus at 80x24 (issue 14): screen keys on every screen, no input grabbing the
keyboard, keys typed in one burst going to the field focused when they arrive, footers that
fit with ``? Keys``, the palette offering the screen's actions, quitting with unsaved edits.

The apps here use a data screen whose tokenizer is refused (no transformers import) and the
estimate of a tiny model, so each test opens in a second or two.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hyperparams import estimate_services
from helpers import wait_for
from test_review_screen import NoTokenizer, open_review
from test_review_snapshot import demo_set, reopen
from textual import events
from textual.widgets import Footer, Input
from textual.widgets._footer import FooterKey, KeyGroup

from core.config import RunConfig
from tui.app import AppServices, TunetopApp, make_app
from tui.commands import TunetopCommands
from tui.dataset_tasks import DatasetServices
from tui.screen_names import SCREENS
from tui.screens.dataset import DatasetScreen
from tui.screens.hyperparams import HyperparamsScreen
from tui.screens.review import ReviewScreen
from tui.widgets.config_form import GROUPS, BoolValue, ConfigForm
from tui.widgets.confirm import Confirm

KEY_NAMES = {".": "full_stop", "/": "slash", "?": "question_mark", " ": "space", "-": "minus",
             "_": "underscore"}
"""Textual's key names of the characters the tests type."""


def quick_app(workspace: Path, **kwargs) -> TunetopApp:
    """The app on ``workspace``: no tokenizer for the data screen, a tiny model's estimate."""
    services = AppServices(dataset=DatasetServices(load_tokenizer=NoTokenizer()),
                           estimate=estimate_services())
    return make_app(config=kwargs.pop("config", None) or RunConfig(run_name="test"),
                    services=services, workspace=str(workspace), **kwargs)


def burst(app: TunetopApp, *keys: str) -> None:
    """Send keys the way SSH delivers a fast typist's keys: all at once, no pause between
    them (a single character is typed; a longer name is a key such as ``tab``)."""
    for key in keys:
        character = key if len(key) == 1 else {"space": " ", "enter": "\r", "tab": "\t"}.get(key)
        app.post_message(events.Key(KEY_NAMES.get(key, key), character))


async def open_config(pilot) -> tuple[HyperparamsScreen, ConfigForm]:
    """Switch to the Config screen and wait for its first estimate."""
    await pilot.press("2")
    screen = pilot.app.screen
    assert isinstance(screen, HyperparamsScreen)
    # The first estimate of a test process imports torch: give a loaded machine time.
    await wait_for(pilot, lambda: screen.estimate is not None, timeout=90)
    return screen, screen.query_one(ConfigForm)


def first_hit(app: TunetopApp) -> str:
    """The text of the command palette's first hit (its title, then its help)."""
    hits = app.screen.query("CommandList")
    if not hits or not hits.first().option_count:
        return ""
    return str(hits.first().get_option_at_index(0).prompt)


def footer_text(app: TunetopApp) -> str:
    """The footer's line as shown."""
    footer = app.screen.query_one(Footer)
    return app.screen._compositor.render_strips()[footer.region.y].text


async def footer_ready(pilot) -> None:
    """Wait until the footer shows the current bindings (it recomposes after a change)."""
    await pilot.pause(0.3)
    await wait_for(pilot, lambda: pilot.app.screen.query_one(Footer).query(".-command-palette"))
    await pilot.pause(0.1)


def assert_footer_fits(app: TunetopApp, help_key: bool = True) -> None:
    """Every footer key is shown whole, left of the palette key, with a gap between two; no
    group of keys runs together; ``? Keys`` is there (unless typing)."""
    footer = app.screen.query_one(Footer)
    assert footer.query(".-command-palette"), "the footer is not composed yet"
    assert not footer.query(KeyGroup), "a key group renders its keys run together"
    keys = [key for key in footer.query(FooterKey) if not key.has_class("-command-palette")]
    palette = footer.query_one(".-command-palette", FooterKey)
    line = footer_text(app)
    for key in keys:
        assert key.region.right <= palette.region.x, f"{key.description} cut off: {line!r}"
        assert f" {key.key_display} {key.description} " in line, line  # a space either side
    assert ("? Keys" in line) == help_key, line


async def test_config_opens_on_the_list_and_screen_keys_work_there(tmp_path):
    """No input has the keyboard on arrival: 1-6 and ? act, and the model name is untouched."""
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        assert app.focused is form and form.editing is None
        await pilot.press("question_mark")
        assert screen.query("KeyPanel")
        await pilot.press("question_mark")
        assert not screen.query("KeyPanel")
        for key, screen_info in zip("345612", SCREENS[2:] + SCREENS[:2]):
            await pilot.press(key)
            assert app.current_mode == screen_info.mode
            assert screen_info.name in app.screen.title
        assert app.screen is screen and app.focused is form
        assert app.config.model.name_or_path == RunConfig().model.name_or_path
        assert not app.config_modified


async def test_enter_edits_in_place_and_escape_returns_to_the_list(tmp_path):
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        form.highlight("lora.r")
        await pilot.press("e")
        control = form.field("lora.r").control
        assert app.focused is control and form.region.contains_region(control.region)
        await pilot.press(*"32")  # the value is selected: typing replaces it
        assert app.config.lora.r == 32
        await pilot.press("escape")
        assert app.focused is form and form.current.spec.path == "lora.r"
        await pilot.press("3")  # a screen key again, not a digit in the field
        assert app.current_mode == "training" and app.config.lora.r == 32

        await pilot.press("2")
        form.highlight("model.trust_remote_code")
        value = form.current.control
        assert isinstance(value, BoolValue) and "Off" in str(value.render())
        await pilot.press("enter")  # a switch flips, the list keeps the keyboard
        assert app.config.model.trust_remote_code and "On" in str(value.render())
        assert app.focused is form


async def test_keys_typed_in_one_burst_go_to_the_field_focused_when_they_arrive(tmp_path):
    """``Tab 0 . 1`` in one packet edits the next field, not the one Tab left."""
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        form.highlight("lora.lora_alpha")
        burst(app, "enter", "6", "4", "tab", "0", ".", "1", "enter", "down", "enter", "q", "_",
              "p", "r", "o", "j", "escape", "2", "3")
        await wait_for(pilot, lambda: app.current_mode == "training")
        assert app.config.lora.lora_alpha == 64
        assert app.config.lora.lora_dropout == pytest.approx(0.1)
        assert app.config.lora.target_modules == ["q_proj"]
        assert app.config.lora.r == RunConfig().lora.r


async def test_returning_to_config_finds_the_list_not_a_hidden_input(tmp_path):
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        await pilot.press("end", "enter")  # editing the last field, far down the list
        assert isinstance(app.focused, Input)
        await app.run_action("switch_mode('dataset')")  # as the palette's "Go to Data" does
        await pilot.press("2")
        assert app.focused is form and form.current.spec.path == GROUPS[-1][1][-1]
        await pilot.pause(0.2)
        assert form.region.contains_region(form.current.region)
        await pilot.press("1")  # typed nowhere
        assert app.current_mode == "dataset" and app.config.eval.save_total_limit == 3


async def test_find_jumps_to_a_field_by_name(tmp_path):
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        await pilot.press("slash")
        await pilot.pause(0.3)
        await pilot.press(*"grad acc")
        await wait_for(pilot,
                       lambda: first_hit(app).startswith("optim.gradient_accumulation_steps"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert form.current.spec.path == "optim.gradient_accumulation_steps"
        assert app.focused is form
        await pilot.pause(0.2)
        assert form.region.contains_region(form.current.region)
        for query, path in (("rank", "lora.r"), ("lora.lora_alpha", "lora.lora_alpha"),
                            ("max len", "data.max_length")):
            await pilot.press("slash")
            await pilot.pause(0.3)
            await pilot.press(*query)
            await wait_for(pilot, lambda: first_hit(app).split()[0] == path)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen)
            assert form.current.spec.path == path


async def test_footers_fit_80_columns_with_the_help_key_on_every_screen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo_set(Path("runs"))
    app = quick_app(Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "123456":
            await pilot.press(key)
            await footer_ready(pilot)
            assert_footer_fits(app)
        await pilot.press("1", "o")  # typing a path: ? types, so it is not offered
        await footer_ready(pilot)
        assert isinstance(app.focused, Input)
        assert_footer_fits(app, help_key=False)
        await pilot.press("escape", "2")
        screen, form = await open_config(pilot)
        await pilot.press("enter")
        await footer_ready(pilot)
        assert "⏎ Done" in footer_text(app)
        assert_footer_fits(app, help_key=False)
        await pilot.press("escape", "4")
        await reopen(pilot)  # judging
        await footer_ready(pilot)
        assert_footer_fits(app)
        assert "l Left" in footer_text(app) and "o Results" in footer_text(app)
        await pilot.press("o")  # results
        await footer_ready(pilot)
        assert_footer_fits(app)
        assert "m Markdown" in footer_text(app)


async def test_palette_offers_every_action_of_the_screen_in_front(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo_set(Path("runs"))
    app = quick_app(Path("runs"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        titles = [hit.text async for hit in TunetopCommands(screen).discover()]
        for title in ("Config: Train with this config", "Config: Save the config to a YAML file",
                      "Config: Load a config from a YAML file", "Config: LoRA preset",
                      "Config: Full fine-tune preset", "Config: QLoRA preset for a small GPU",
                      "Config: Default for the highlighted field",
                      "Go to Data", "Go to Train", "Go to Review", "Go to Runs"):
            assert title in titles
        assert "Go to Config" not in titles and "Hyperparameters" not in " ".join(titles)

        review = await open_review(pilot)
        titles = [hit.text async for hit in TunetopCommands(review).discover()]
        assert "Review: Generate a new review set" in titles
        assert not any("Reveal" in title for title in titles)  # nothing to reveal in setup
        await reopen(pilot)
        titles = [hit.text async for hit in TunetopCommands(review).discover()]
        assert any(title.startswith("Review: Reveal") for title in titles)
        assert "Review: Left is better" in titles

        await pilot.press("5")
        titles = [hit.text async for hit in TunetopCommands(app.screen).discover()]
        assert "Runs: Open on the Train screen" in titles
        assert "Runs: Resume from the last checkpoint" in titles


async def test_quitting_with_unsaved_config_edits_asks_first(tmp_path):
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        form.highlight("lora.r")
        await pilot.press("enter", *"8", "enter")
        assert app.config_modified and app.modified_fields() == ["lora.r"]
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, Confirm) and "lora.r" in app.screen.question
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.screen is screen and app.return_code is None

        await pilot.press("ctrl+s")
        assert app.focused.id == "path-input"
        assert app.focused.value == str(tmp_path / "runs" / "tunetop.yaml")  # the workspace
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert RunConfig.load(tmp_path / "runs" / "tunetop.yaml").lora.r == 8
        assert not app.config_modified and app.focused is form
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert app.return_code == 0  # saved: no question


async def test_ctrl_q_twice_quits_with_unsaved_edits(tmp_path):
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen, form = await open_config(pilot)
        await pilot.press("f4")  # a preset changes the config
        assert app.config_modified
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, Confirm)
        await pilot.press("ctrl+q")
        await pilot.pause(0.3)
        assert app.return_code == 0


async def test_data_screen_keys_and_typing_digits(tmp_path):
    """Digits type into the Data screen's inputs; out of them they switch screens."""
    app = quick_app(tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        await pilot.press("t", *"256")
        assert screen.query_one("#dataset-max-length", Input).value == "256"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.config.data.max_length == 256
        await pilot.press("4")
        assert isinstance(app.screen, ReviewScreen)
