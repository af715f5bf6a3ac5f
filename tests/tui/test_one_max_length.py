"""One max length: the Data screen's ``Max len`` and the Config field are ``app.config``'s
``data.max_length``. A change on either screen shows on the other (marked as modified on the
Config screen, the long rows re-marked on the Data screen) and re-runs the memory estimate;
text typed but never entered is dropped, so a run never trains with a value nobody saw."""

from __future__ import annotations

from test_dataset_screen import PROBLEM_LINES, settle, shown_lines, write_jsonl
from test_hyperparams import estimate_services, settle as settle_estimate, type_into

from core.config import RunConfig
from tui.app import AppServices, make_app
from tui.dataset_tasks import DatasetServices
from tui.screens.dataset import DatasetScreen
from tui.screens.hyperparams import HyperparamsScreen
from tui.widgets.config_form import ConfigForm


def both_screens_app(tmp_path, tokenizer):
    """Data screen on a file with one long row; the estimate on a tiny model whose longest row
    is ``data.max_length`` (so the estimate shows the length it used)."""
    config = RunConfig(run_name="test")
    config.data.path = str(write_jsonl(tmp_path / "rows.jsonl", PROBLEM_LINES))
    services = AppServices(dataset=DatasetServices(load_tokenizer=lambda ref: tokenizer),
                           estimate=estimate_services())
    return make_app(config=config, services=services, workspace=str(tmp_path / "runs"))


async def test_max_length_from_the_data_screen_shows_on_the_config_screen(tmp_path, tokenizer):
    app = both_screens_app(tmp_path, tokenizer)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        config_screen = app.screen
        assert isinstance(config_screen, HyperparamsScreen)
        await settle_estimate(app, pilot)
        assert config_screen.estimate.tokens_per_row == 512

        await pilot.press("1", "t", *"100", "enter")
        await settle(pilot)
        assert app.config.data.max_length == 100
        await pilot.press("2")
        await settle_estimate(app, pilot)
        field = config_screen.query_one(ConfigForm).field("data.max_length")
        assert field.control.value == "100" and field.has_class("-modified")
        assert config_screen.estimate.tokens_per_row == 100  # recomputed, not the old 512
        assert app.config_modified and "data.max_length" in app.modified_fields()


async def test_max_length_from_the_config_screen_marks_long_rows_on_the_data_screen(
        tmp_path, tokenizer):
    app = both_screens_app(tmp_path, tokenizer)
    async with app.run_test(size=(80, 24)) as pilot:
        data_screen = await settle(pilot)
        await pilot.press("l")
        assert shown_lines(data_screen.table) == []  # no row over 512 tokens
        await pilot.press("2")
        await settle_estimate(app, pilot)
        await type_into(pilot, app.screen, "data.max_length", "100")
        assert app.config.data.max_length == 100
        await pilot.press("1")
        assert app.screen is data_screen
        await settle(pilot)
        assert data_screen.max_length == 100
        assert data_screen.query_one("#dataset-max-length").value == "100"
        assert shown_lines(data_screen.table) == [7]  # the long row, by the new length


async def test_max_length_typed_but_not_entered_is_not_used(tmp_path, tokenizer):
    """Typing in the Data screen's Max len and leaving without Enter puts back the value in
    use; the Config screen and the run see that value."""
    app = both_screens_app(tmp_path, tokenizer)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await settle(pilot)
        assert isinstance(screen, DatasetScreen)
        await pilot.press("t", *"64")
        max_input = screen.query_one("#dataset-max-length")
        assert max_input.value == "64" and app.config.data.max_length == 512
        await pilot.press("2")  # typed too: a screen key is a digit in a text field
        assert max_input.value == "642" and app.screen is screen
        await app.run_action("switch_mode('hyperparams')")  # the palette's "Go to Config"
        assert isinstance(app.screen, HyperparamsScreen)
        await settle_estimate(app, pilot)
        assert app.screen.query_one(ConfigForm).field("data.max_length").control.value == "512"
        await pilot.press("1")
        await pilot.pause()
        assert max_input.value == "512"
        await pilot.press("t", *"64", "escape")
        await pilot.pause()
        assert max_input.value == "512" and app.config.data.max_length == 512
