"""The alerts area: the few things about the run that need the user's attention.

While no alert has fired it says what would make one fire (:func:`core.alerts.rules_summary`),
so a quiet panel reads as "all clear", not as "nothing is watching".
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.alerts import Alert, rules_summary

ICONS = {"error": "✖", "warning": "▲", "info": "●"}


class AlertLine(Static):
    """One alert: icon and title in the level's colour, then the detail."""

    def __init__(self, alert: Alert) -> None:
        text = Text()
        text.append(f"{ICONS.get(alert.level, '●')} {alert.title}: ", style="bold")
        text.append(alert.detail)
        super().__init__(text, classes=f"-{alert.level}")
        self.alert = alert


class AlertRules(Static):
    """What makes each alert fire; shown while there is no alert."""


class AlertsPanel(VerticalScroll, can_focus=False):
    """Newest alert first; the alert rules while there is none."""

    DEFAULT_CSS = """
    AlertsPanel {
        height: auto;
        max-height: 5;
    }
    AlertsPanel > AlertLine { padding: 0 1; }
    AlertsPanel > AlertLine.-error { color: $text-error; background: $error-muted; }
    AlertsPanel > AlertLine.-warning { color: $text-warning; background: $warning-muted; }
    AlertsPanel > AlertLine.-info { color: $text-primary; background: $primary-muted; }
    AlertsPanel > AlertRules { padding: 0 1; color: $text-muted; }
    AlertsPanel.-has-alerts > AlertRules { display: none; }
    """

    def compose(self) -> ComposeResult:
        """The rules line (hidden once an alert is shown)."""
        yield AlertRules(rules_summary())

    def show_rules_for(self, preference: bool, drift_threshold: float | None = None) -> None:
        """Say the rules of the run shown: a preference run (DPO, ORPO) has two more, a run
        that measures general drift one more (with its ``drift_threshold``)."""
        self.query_one(AlertRules).update(rules_summary(preference, drift_threshold))

    def add_alert(self, alert: Alert) -> None:
        """Show ``alert`` on top."""
        self.mount(AlertLine(alert), before=0)
        self.add_class("-has-alerts")

    def clear_alerts(self) -> None:
        """Remove every alert (a new run)."""
        self.query(AlertLine).remove()
        self.remove_class("-has-alerts")

    @property
    def alerts(self) -> list[Alert]:
        """The alerts shown, newest first."""
        return [line.alert for line in self.query(AlertLine)]
