"""The alerts area: the few things about the run that need the user's attention."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from core.alerts import Alert

ICONS = {"error": "✖", "warning": "▲", "info": "●"}


class AlertLine(Static):
    """One alert: icon and title in the level's colour, then the detail."""

    def __init__(self, alert: Alert) -> None:
        text = Text()
        text.append(f"{ICONS.get(alert.level, '●')} {alert.title}: ", style="bold")
        text.append(alert.detail)
        super().__init__(text, classes=f"-{alert.level}")
        self.alert = alert


class AlertsPanel(VerticalScroll, can_focus=False):
    """Newest alert first; hidden while there is none."""

    DEFAULT_CSS = """
    AlertsPanel {
        height: auto;
        max-height: 5;
        display: none;
    }
    AlertsPanel.-has-alerts { display: block; }
    AlertsPanel > AlertLine { padding: 0 1; }
    AlertsPanel > AlertLine.-error { color: $text-error; background: $error-muted; }
    AlertsPanel > AlertLine.-warning { color: $text-warning; background: $warning-muted; }
    AlertsPanel > AlertLine.-info { color: $text-primary; background: $primary-muted; }
    """

    def add_alert(self, alert: Alert) -> None:
        """Show ``alert`` on top."""
        self.mount(AlertLine(alert), before=0 if self.children else None)
        self.add_class("-has-alerts")

    def clear_alerts(self) -> None:
        """Remove every alert (a new run)."""
        self.remove_children()
        self.remove_class("-has-alerts")

    @property
    def alerts(self) -> list[Alert]:
        """The alerts shown, newest first."""
        return [line.alert for line in self.query(AlertLine)]
