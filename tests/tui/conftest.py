"""Shared fixtures for the training, runs and gauge tests: apps built with fakes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import fakes` from any test directory

from fakes import StubGpuMonitor, h100_sample  # noqa: E402

from core.config import RunConfig  # noqa: E402
from tui.app import AppServices, TunetopApp, make_app  # noqa: E402


def build_app(tmp_path: Path, engine_factory: Any = None, sample: Any = None,
              monitor_factory: Any = None, **kwargs: Any) -> TunetopApp:
    """An app on a temporary workspace with a stubbed GPU and an optional fake engine.

    With an engine factory, runs train in the app's process (the fake engine); without, they
    start detached like the real app's.
    """
    services = AppServices(
        in_process=engine_factory is not None,
        engine_factory=engine_factory,
        gpu_monitor_factory=monitor_factory or (lambda: StubGpuMonitor(sample or h100_sample())),
    )
    config = kwargs.pop("config", None) or RunConfig(run_name="test-run")
    workspace = str(kwargs.pop("workspace", tmp_path / "runs"))
    return make_app(config=config, services=services, workspace=workspace, **kwargs)


@pytest.fixture
def app_factory(tmp_path: Path):
    """Call with (engine_factory=..., sample=...) to get an app on tmp_path/runs."""

    def make(**kwargs: Any) -> TunetopApp:
        return build_app(tmp_path, **kwargs)

    return make
