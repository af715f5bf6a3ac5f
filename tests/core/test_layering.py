"""The one-way rule: core never loads Textual; opening the app never loads torch."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(imports: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{imports}\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # a printed list of names


def test_no_core_module_imports_textual():
    names = [m.name for m in pkgutil.walk_packages([str(ROOT / "core")], "core.")]
    assert "core.engine" in names and "core.data" in names
    imports = "\n".join(f"import {name}" for name in names)
    assert _loaded_after(imports, ("textual", "tui")) == []


def test_opening_the_app_loads_no_ml_library():
    assert _loaded_after("import tui.app, tui.cli", ("torch", "transformers", "trl", "peft", "datasets")) == []
