"""Where rows come from: a dataset reference as the user writes it, resolved to a path.

Today a reference is a path (``~`` expanded) or ``sample:<name>`` for the data bundled in
``core/samples``. Other sources (Hub ids, dataset registries, mixes of several sources)
resolve here too, so that readers and loaders take one kind of reference.
"""

from __future__ import annotations

from pathlib import Path

from core.data.problems import DataError

SAMPLES_DIR = Path(__file__).parents[1] / "samples"
SAMPLES = {
    "support-tickets": "support_tickets_train.jsonl",
    "support-tickets-heldout": "support_tickets_heldout.jsonl",
}
"""``sample:<name>`` references and the file in ``core/samples`` each resolves to."""


def resolve_data_path(ref: str | Path) -> Path:
    """Turn ``sample:<name>`` or a user path (``~`` expanded) into a filesystem path."""
    text = str(ref).strip()
    if text.startswith("sample:"):
        name = text.removeprefix("sample:")
        if name not in SAMPLES:
            raise DataError(f"Unknown sample dataset '{name}'.",
                            f"Use one of: {', '.join('sample:' + s for s in SAMPLES)}.", text)
        return SAMPLES_DIR / SAMPLES[name]
    return Path(text).expanduser()
