"""The tunetop engine: no UI imports (see README, Architecture)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) whose ``PYTHONPATH`` finds this package
    first, for the Python children tunetop starts (detached workers, dataset readers)."""
    out = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[1])
    out["PYTHONPATH"] = os.pathsep.join(p for p in (root, out.get("PYTHONPATH", "")) if p)
    return out


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain
