"""The alerts panel says what makes an alert fire while none has, at 80x24 too."""

from __future__ import annotations

from fakes import engine_factory, overfit_series
from test_training_screen import open_training

from helpers import wait_for
from core.alerts import ALERT_RULES, rules_summary
from tui.widgets.alerts import AlertRules, AlertsPanel


async def test_rules_show_until_an_alert_fires(app_factory):
    app = app_factory(engine_factory=engine_factory(script=overfit_series()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_training(pilot)
        rules = screen.query_one(AlertRules)
        text = str(rules.render())
        assert rules.display and rules.region.height == 1 and text == rules_summary()  # 80 columns
        for needle in ("NaN", "1.5x", "val up 2x", "flat 20 logs", "early stop"):
            assert needle in text
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.run_state == "finished")
        await pilot.pause()
        panel = screen.query_one(AlertsPanel)
        assert panel.alerts and not rules.display
        panel.clear_alerts()
        await pilot.pause()
        assert rules.display and not panel.alerts


def test_every_rule_names_its_threshold():
    by_key = {r.key: r for r in ALERT_RULES}
    assert "5 logged training losses" in by_key["diverging"].when and "1.5x" in by_key["diverging"].when
    assert "2 evaluations in a row" in by_key["overfit"].when
    assert "10 logged training losses average less than 1%" in by_key["flat"].when
    assert "NaN or infinite" in by_key["nonfinite"].when
