"""Durations as people read them, shared by the CLI, the screens and core's status lines."""

from __future__ import annotations

import math


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``D d H:MM:SS``); an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(max(seconds, 0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text
