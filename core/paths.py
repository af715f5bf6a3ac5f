"""Why a path the user gave cannot be used, in words: one home for "does not exist".

``Path.exists()`` is false for a missing file, a broken symbolic link and a link that loops
back on itself alike; each needs a different fix, so each gets its own words.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def missing_reason(path: str | Path) -> str:
    """Why ``path`` cannot be opened, as the end of a sentence starting with the path:
    ``does not exist``, ``is a symbolic link that loops back on itself`` or ``is a broken
    symbolic link (to X)``."""
    p = Path(path)
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that loops back on itself"
        if p.is_symlink():
            return f"is a broken symbolic link (to {os.readlink(p)})"
        return "does not exist"
    return "exists"


def link_fix(path: str | Path) -> str:
    """The fix for a path :func:`missing_reason` calls a link: point it somewhere real."""
    return (f"point the link at the real file or folder (ls -l {path} shows its target), "
            "or give that target's own path")
