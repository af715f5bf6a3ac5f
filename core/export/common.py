"""What every export shares: its error, its progress callback, and writing a folder atomically."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Progress = Callable[[str, "float | None"], None]
"""Told the phase of a long export and how far it is (0-1), or ``None`` where that is unknown."""


class ExportError(RuntimeError):
    """The run cannot be exported; the message says why and what to do."""


def no_progress(phase: str, fraction: float | None) -> None:
    """The progress callback of a caller that passed none."""


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that becomes ``target`` when the block succeeds.

    An interrupted export never leaves something that looks complete: the folder is renamed
    into place only at the end, and removed on any error.
    """
    target = Path(target)
    if target.exists():
        raise ExportError(f"{target} already exists. Fix: choose another --out or remove it.")
    parent = _first_existing(target.parent)
    if not parent.is_dir():
        raise ExportError(
            f"Cannot write {target}: {parent} is a file, not a folder. Fix: choose an --out "
            f"outside it, e.g. {parent.parent / (parent.name + '-export')}."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except PermissionError:
        raise ExportError(f"Cannot write {target}: permission denied. Fix: choose an --out in a "
                          "folder you can write to.") from None
    try:
        yield tmp
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def dir_size(path: Path) -> int:
    """Bytes of every file under ``path`` (or of ``path`` itself when it is a file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
