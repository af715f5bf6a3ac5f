"""SVG snapshots of the training screen mid-run (fixed series, stubbed GPU, frozen clock),
at 120x40 and at 80x24."""

from __future__ import annotations

import time

import pytest
from fakes import DEMO_RUN, demo_run_before, demo_services

from core.config import RunConfig
from tui.app import make_app


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_training_screen_snapshot(snap_compare, tmp_path, monkeypatch, size):
    """Training screen at step 60/100: loss chart, figures, H100 gauge, log."""
    monkeypatch.chdir(tmp_path)  # paths in the log are relative: runs/demo-lora
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        app = make_app(config=RunConfig(run_name=DEMO_RUN), services=demo_services(), workspace="runs")
        assert snap_compare(app, terminal_size=size, run_before=demo_run_before)
    finally:
        monkeypatch.undo()
        time.tzset()
