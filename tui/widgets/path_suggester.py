"""Completion of file-system paths (and ``sample:`` datasets) for path inputs.

An ``Input(suggester=PathSuggester())`` shows the rest of the first matching entry dimmed;
the right arrow (or ``End``) takes it. Directories complete with a trailing ``/`` so the next
keystrokes go on into them.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester

SAMPLE_PREFIX = "sample:"
"""Datasets bundled with tunetop are named ``sample:<name>``."""


class PathSuggester(Suggester):
    """Suggests the first entry of the typed directory that starts with the typed name.

    ``samples=True`` also completes ``sample:<name>`` references (dataset inputs); ``suffixes``
    limits files to those endings (directories are always offered: the file may be inside).
    """

    def __init__(self, *, samples: bool = False, suffixes: tuple[str, ...] = ()) -> None:
        # No cache: the directory may change between two keystrokes (a save, a new run).
        super().__init__(use_cache=False, case_sensitive=True)
        self.samples = samples
        self.suffixes = suffixes

    async def get_suggestion(self, value: str) -> str | None:
        """The completed path, or ``None`` when nothing matches."""
        if not value:
            return None
        if self.samples and value.startswith(SAMPLE_PREFIX):
            return self._sample(value[len(SAMPLE_PREFIX):])
        found = self._path(value)
        if found is None and self.samples and SAMPLE_PREFIX.startswith(value):
            return self._sample("")
        return found

    @staticmethod
    def _sample(typed: str) -> str | None:
        from core.data.sources import SAMPLES

        names = sorted(name for name in SAMPLES if name.startswith(typed))
        return SAMPLE_PREFIX + names[0] if names else None

    def _path(self, value: str) -> str | None:
        head, sep, prefix = value.rpartition("/")
        folder = Path(os.path.expanduser(head + sep) if sep else ".")
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return None
        hidden = prefix.startswith(".")
        for entry in entries:
            name = entry.name
            if not name.startswith(prefix) or (name.startswith(".") and not hidden):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                return f"{head}{sep}{name}/"
            if not self.suffixes or name.endswith(self.suffixes):
                return f"{head}{sep}{name}"
        return None
