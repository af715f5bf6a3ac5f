"""Where rows come from: a dataset reference as the user writes it, resolved to what reads it.

A reference is a path (``~`` expanded), ``sample:<name>`` for the data bundled in
``core/samples``, a directory (a ``save_to_disk`` dataset; a folder ``datasets.load_dataset``
reads, with data files and a README dataset card; a LLaMA-Factory registry with a
``dataset_info.json``, with the entry's name), or a Hub dataset id ``org/name`` (or
``org/name:subset``). A :class:`~core.config.SourceConfig` is one source as the config names
it (``data`` itself, or each of ``data.sources``); :func:`resolve_source` says how to read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.config import SourceConfig
from core.data.normalise import RowShape
from core.data.problems import DataError

SAMPLES_DIR = Path(__file__).parents[1] / "samples"
SAMPLES = {
    "support-tickets": "support_tickets_train.jsonl",
    "support-tickets-heldout": "support_tickets_heldout.jsonl",
    "general-prompts": "general_prompts.jsonl",
}
"""``sample:<name>`` references and the file in ``core/samples`` each resolves to."""

HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<subset>[\w.-]+))?")
"""A Hub dataset id, ``org/name`` with an optional ``:subset``."""
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".txt")
"""Endings of data files: a missing ``dir/file.jsonl`` is a wrong path, never a Hub id."""


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


def parse_hub_id(ref: str) -> tuple[str, str | None] | None:
    """``(repo, subset)`` when ``ref`` is a Hub dataset id and not a local path, else ``None``."""
    text = ref.strip()
    match = HUB_ID.fullmatch(text)
    if (match is None or text.lower().endswith(DATA_SUFFIXES) or text.startswith(".")
            or Path(text).expanduser().exists()):
        return None
    return match["repo"], match["subset"]


def source_specs(data: Any) -> list[SourceConfig]:
    """The sources of a ``DataConfig``: each of ``data.sources``, or ``data.path`` alone."""
    if data.sources:
        return [replace(s) for s in data.sources]  # copies: the form may edit the config
    return [SourceConfig(data.path, data.dataset, data.split, data.revision, data.format)]


def selection_ref(data: Any, seed: int) -> str:
    """The one string that names what ``data`` reads, for the dataset screen's reader: the path
    alone when that says everything, else the sources and seed as JSON."""
    specs = source_specs(data)
    if len(specs) == 1 and specs[0] == SourceConfig(data.path, format=specs[0].format):
        return data.path
    return json.dumps({"sources": [asdict(s) for s in specs], "seed": seed})


def parse_selection(ref: str) -> tuple[list[SourceConfig], int] | None:
    """The sources and seed of a :func:`selection_ref` in JSON, else ``None`` (a plain path)."""
    if not ref.lstrip().startswith("{"):
        return None
    data = json.loads(ref)
    return [SourceConfig(**s) for s in data["sources"]], int(data.get("seed", 0))


@dataclass(frozen=True)
class Resolved:
    """How to read one source."""

    kind: str
    """``file`` (a file, a sample or a ``save_to_disk`` directory), ``folder`` (a directory
    ``datasets.load_dataset`` reads) or ``hub`` (a Hub dataset id)."""
    location: str
    """The path, or the Hub repository id."""
    label: str
    """How messages name the source."""
    format: str = "auto"
    shape: RowShape = field(default_factory=RowShape)
    subset: str | None = None
    split: str = "train"
    revision: str | None = None
    data_dir: str | None = None
    max_rows: int | None = None
    """A cap the source itself sets (a registry entry's ``num_samples``)."""
    reason: str = ""
    """Why the format, when the source sets it (a registry entry's ``formatting``)."""


def resolve_source(spec: SourceConfig) -> Resolved:
    """Say how to read ``spec``. Raises :class:`DataError` for a registry without the entry,
    an entry that cannot be loaded, or a split or revision given for a file (which has
    neither). Paths that do not exist resolve to ``file`` (opening them says so), unless they
    are Hub ids."""
    resolved = _resolve(spec)
    if resolved.kind == "file" and (spec.split != "train" or spec.revision):
        name = "split" if spec.split != "train" else "revision"
        raise DataError(f"{resolved.label} is a file, which has no {name} "
                        f"('{getattr(spec, name)}'): data.{name} applies to Hub datasets and "
                        "dataset card folders.", f"Remove data.{name}, or give the Hub id or "
                        "the folder.", resolved.label)
    return resolved


def _resolve(spec: SourceConfig) -> Resolved:
    text = spec.path.strip()
    if spec.dataset:
        return _from_registry(spec, Path(text).expanduser())
    if text.startswith("sample:"):
        return Resolved("file", text, text, spec.format, max_rows=spec.max_rows)
    path = Path(text).expanduser()
    if path.is_dir():
        return _directory(spec, path)
    hub = parse_hub_id(text)
    if hub is not None:
        repo, subset = hub
        folder, colon, local_subset = text.rpartition(":")
        if colon and folder and Path(folder).expanduser().is_dir():  # a card folder:subset
            return _directory(spec, Path(folder).expanduser(), local_subset)
        label = f"{repo}{':' + subset if subset else ''} ({spec.split})"
        return Resolved("hub", repo, label, spec.format, subset=subset, split=spec.split,
                        revision=spec.revision, max_rows=spec.max_rows)
    return Resolved("file", text, str(path), spec.format, max_rows=spec.max_rows)


def _directory(spec: SourceConfig, path: Path, subset: str | None = None) -> Resolved:
    from core.data.registry import is_registry, read_registry

    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return Resolved("file", str(path), str(path), spec.format, max_rows=spec.max_rows)
    if is_registry(path):
        names = list(read_registry(path))
        raise DataError(f"{path} is a dataset registry (dataset_info.json) with "
                        f"{len(names)} dataset(s): {', '.join(names[:12])}"
                        f"{'…' if len(names) > 12 else ''}.",
                        f"Choose one with data.dataset (tunetop inspect {path} --dataset "
                        f"{names[0]}).", str(path))
    if (path / "README.md").is_file():
        label = f"{path}{':' + subset if subset else ''} ({spec.split})"
        return Resolved("folder", str(path), label, spec.format, subset=subset,
                        split=spec.split, max_rows=spec.max_rows)
    return Resolved("file", str(path), str(path), spec.format, max_rows=spec.max_rows)


def _from_registry(spec: SourceConfig, directory: Path) -> Resolved:
    from core.data.registry import REGISTRY_FILE, registry_entry

    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory, so it has no dataset "
                        f"'{spec.dataset}'.", "Point data.path at the directory holding "
                        "dataset_info.json, or remove data.dataset.", str(directory))
    entry = registry_entry(directory, spec.dataset or "")
    fmt = entry.format if spec.format == "auto" else spec.format
    reason = (f"{fmt}: dataset_info.json entry '{entry.name}' (formatting {entry.formatting}"
              f"{', ranking' if entry.ranking else ''})") if fmt != "auto" else ""
    max_rows = spec.max_rows or entry.num_samples
    label = f"{directory} [{entry.name}]"
    split = spec.split if spec.split != "train" else entry.split  # the config's wins
    if entry.hf_hub_url:
        return Resolved("hub", entry.hf_hub_url, f"{entry.hf_hub_url} [{entry.name}]", fmt,
                        entry.shape, entry.subset, split, spec.revision, entry.folder,
                        max_rows, reason)
    target = (directory / str(entry.file_name)).resolve()
    if not target.exists():
        raise DataError(f"{directory / REGISTRY_FILE}: dataset '{entry.name}' names "
                        f"{entry.file_name}, which does not exist in {directory}.",
                        "Put the file there, or correct file_name.", str(target))
    kind = "folder" if target.is_dir() and not (target / "state.json").is_file() else "file"
    return Resolved(kind, str(target), label, fmt, entry.shape, split=split if kind == "folder"
                    else "train", max_rows=max_rows, reason=reason)

