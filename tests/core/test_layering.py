"""The layering rules: core never loads Textual or prints; opening the app and building the
command line never load torch; core and tui import each other in no cycle."""

from __future__ import annotations

import ast
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


def test_building_the_command_line_loads_no_ml_library():
    """Every sub-command module is imported to build the parser: each must import lazily."""
    imports = "import tui.cli\ntui.cli.build_parser()"
    assert _loaded_after(imports, ("torch", "transformers", "trl", "peft", "datasets", "textual")) == []


def test_core_never_prints():
    """core returns values and raises; only the command line and the screens talk to the user."""
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert calls == [], f"print() in core: {', '.join(calls)}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_nodes(body: list[ast.stmt]):
    """Statements that run when the module is imported: not function bodies, not the
    ``if TYPE_CHECKING:`` block."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_nodes(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _import_time_nodes(getattr(node, field, []))


def _imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules ``name`` imports when it is imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_time_nodes(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                         for alias in node.names)
    return {m for m in found if m in known and m != name}


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path that ends where it starts, or ``[]``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_no_import_cycle_in_core_or_tui():
    """Module-level imports among core/ and tui/ form no cycle (lazy imports in functions are free)."""
    paths = {_module_name(p): p for pkg in ("core", "tui") for p in (ROOT / pkg).rglob("*.py")}
    known = set(paths)
    graph = {name: _imported_modules(name, path, known) for name, path in paths.items()}
    assert "tui.cli.subcommand" in graph["tui.cli"] and "core.config" in graph["tui.cli.train"]
    assert _find_cycle(graph) == [], " -> ".join(_find_cycle(graph))


def test_the_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) == []
