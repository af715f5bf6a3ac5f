"""Shared fixtures for the training, runs and gauge tests: apps built with fakes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `import fakes` from any test directory

from fakes import build_app  # noqa: E402

from tui.app import TunetopApp  # noqa: E402


@pytest.fixture
def app_factory(tmp_path: Path):
    """Call with (engine_factory=..., sample=...) to get an app on tmp_path/runs."""

    def make(**kwargs: Any) -> TunetopApp:
        return build_app(tmp_path, **kwargs)

    return make
