"""Shared fixtures for the training, runs and gauge tests: apps built with fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


from fakes import build_app  # noqa: E402

from tui.app import TunetopApp  # noqa: E402


@pytest.fixture
def app_factory(tmp_path: Path):
    """Call with (engine_factory=..., sample=...) to get an app on tmp_path/runs."""

    def make(**kwargs: Any) -> TunetopApp:
        return build_app(tmp_path, **kwargs)

    return make
