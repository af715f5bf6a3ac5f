"""LLaMA-Factory dataset registries: a directory whose ``dataset_info.json`` names datasets.

Each entry points at a file or folder of the directory (``file_name``) or a Hub dataset
(``hf_hub_url``, with ``subset``, ``split`` and ``folder``), says its ``formatting`` (alpaca,
sharegpt, openai) and whether it is a preference dataset (``ranking``), and may rename columns
(``columns``: prompt, query, response, history, messages, system, tools, chosen, rejected) and
roles (``tags``: role_tag, content_tag, user_tag, assistant_tag, observation_tag,
function_tag, system_tag), as LLaMA-Factory's ``data/README.md`` documents. An entry becomes a
format and a :class:`~core.data.normalise.RowShape` here; :mod:`core.data.sources` reads it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.normalise import RowShape, Tags
from core.data.problems import DataError

REGISTRY_FILE = "dataset_info.json"
"""The registry file of a LLaMA-Factory data directory."""

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                  "history": "history", "system": "system", "tools": "tools",
                  "chosen": "chosen", "rejected": "rejected", "images": "images",
                  "videos": "videos", "audios": "audios"}
"""LLaMA-Factory column roles of the alpaca formatting, to the field tunetop reads."""
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools",
                    "chosen": "chosen", "rejected": "rejected", "images": "images",
                    "videos": "videos", "audios": "audios"}
"""LLaMA-Factory column roles of the sharegpt formatting, to the field tunetop reads."""
TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "observation_tag": "tool",
             "function_tag": "call", "system_tag": "system"}
"""LLaMA-Factory ``tags`` that name a role, and the role."""
OTHER_SOURCES = {"ms_hub_url": "ModelScope", "om_hub_url": "Modelers", "script_url":
                 "a loading script", "cloud_file_name": "cloud storage"}
"""Entry sources tunetop cannot read, and what they are."""


def is_registry(path: Path) -> bool:
    """Whether ``path`` is a registry directory (a ``dataset_info.json`` that is not the one a
    ``save_to_disk`` dataset writes beside its ``state.json``)."""
    return (path.is_dir() and (path / REGISTRY_FILE).is_file()
            and not (path / "state.json").is_file()
            and not (path / "dataset_dict.json").is_file())


@dataclass(frozen=True)
class RegistryEntry:
    """One dataset of a registry."""

    name: str
    file_name: str | None = None
    hf_hub_url: str | None = None
    formatting: str | None = None
    """alpaca, sharegpt or openai; ``None`` when the entry does not say (LLaMA-Factory reads
    alpaca then; tunetop detects the format, which finds alpaca rows too)."""
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    """Folder of the Hub repository that holds the data (``data_dir``)."""
    num_samples: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    """Why the entry cannot be loaded (an unsupported source, a malformed entry)."""
    elsewhere: str = ""
    """Where an entry tunetop cannot read lives, e.g. ``ModelScope AI-ModelScope/alpaca``."""

    @property
    def where(self) -> str:
        """The file or Hub id the entry reads."""
        if self.hf_hub_url:
            return f"hub:{self.hf_hub_url}" + (f":{self.subset}" if self.subset else "")
        return self.file_name or self.elsewhere or "(no source)"

    @property
    def format(self) -> str:
        """The tunetop format of the entry's rows."""
        if self.ranking:
            return "preference"
        if self.formatting == "openai":
            return "messages"
        if self.formatting == "sharegpt":
            return "sharegpt"
        if set(self.columns) == {"prompt"}:  # a pre-training entry: only a text column
            return "text"
        return "alpaca" if self.formatting or self.columns else "auto"

    @property
    def shape(self) -> RowShape:
        """Column renames and role names of the entry."""
        if self.format == "text":
            columns = {"text": self.columns["prompt"]}
        else:
            roles = SHAREGPT_COLUMNS if self.formatting in ("sharegpt", "openai") else ALPACA_COLUMNS
            if self.formatting == "openai":
                roles = {**roles, "messages": "messages"}
            columns = {roles[role]: theirs for role, theirs in self.columns.items()
                       if role in roles}
        tags = self.tags
        return RowShape(
            tuple(sorted(columns.items())),
            Tags(tags.get("role_tag"), tags.get("content_tag"),
                 tuple(sorted((str(tags[k]).lower(), role) for k, role in TAG_ROLES.items()
                              if isinstance(tags.get(k), str)))))

    def describe(self) -> str:
        """One line: name, source, formatting and renamed columns."""
        fmt = self.format
        kind = (self.formatting or ("format detected" if fmt == "auto" else fmt)) + (
            " preference (ranking)" if self.ranking else "")
        renamed = ", ".join(f"{k}={v}" for k, v in self.columns.items())
        text = f"{self.name}: {self.where} ({kind}{'; columns ' + renamed if renamed else ''})"
        return text + (f" - cannot load: {self.problem}" if self.problem else "")


def read_registry(directory: str | Path) -> dict[str, RegistryEntry]:
    """The entries of ``directory/dataset_info.json``, in file order.

    Raises :class:`DataError` for a missing or malformed file; an entry tunetop cannot load
    (a ModelScope id, a script) is kept with its :attr:`RegistryEntry.problem`.
    """
    path = Path(directory) / REGISTRY_FILE
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{directory} has no {REGISTRY_FILE}.",
                        "Give a LLaMA-Factory data directory, or a dataset file.",
                        str(directory)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{source} cannot be read as JSON: {exc}.",
                        "Fix the JSON syntax of the registry.", source) from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{source} holds no datasets (expected an object of named entries).",
                        "Write {\"name\": {\"file_name\": \"data.json\", ...}}, as LLaMA-Factory "
                        "documents.", source)
    return {str(name): _entry(str(name), value) for name, value in data.items()}


def _entry(name: str, value: Any) -> RegistryEntry:
    if not isinstance(value, dict):
        return RegistryEntry(name, problem=f"the entry is {type(value).__name__}, not an object")
    other = next((key for key in OTHER_SOURCES
                  if value.get(key) and not value.get("hf_hub_url")), None)
    problem = elsewhere = ""
    if other:
        problem = f"it is read from {OTHER_SOURCES[other]}, which tunetop does not read"
        elsewhere = f"{OTHER_SOURCES[other]} {value[other]}"
    elif not value.get("hf_hub_url") and not value.get("file_name"):
        problem = "it has neither file_name nor hf_hub_url"
    formatting = str(value["formatting"]).lower() if value.get("formatting") else None
    if formatting not in (None, "alpaca", "sharegpt", "openai"):
        problem = problem or f"formatting '{formatting}' is not alpaca, sharegpt or openai"
    columns = value.get("columns") or {}
    tags = value.get("tags") or {}
    if not isinstance(columns, dict) or not isinstance(tags, dict):
        problem = problem or "columns and tags must be objects"
        columns, tags = {}, {}
    samples = value.get("num_samples")
    return RegistryEntry(
        name=name, file_name=value.get("file_name"), hf_hub_url=value.get("hf_hub_url"),
        formatting=formatting, ranking=bool(value.get("ranking")), subset=value.get("subset"),
        split=str(value.get("split") or "train"), folder=value.get("folder"),
        num_samples=samples if isinstance(samples, int) and samples > 0 else None,
        columns={str(k): str(v) for k, v in columns.items() if v},
        tags={str(k): str(v) for k, v in tags.items() if v}, problem=problem,
        elsewhere=elsewhere)


def registry_entry(directory: str | Path, name: str) -> RegistryEntry:
    """Entry ``name`` of the registry in ``directory``; :class:`DataError` naming the entries
    there when it has none of that name or it cannot be loaded."""
    entries = read_registry(directory)
    source = str(Path(directory) / REGISTRY_FILE)
    if name not in entries:
        close = ([n for n in entries if name and name.lower() in n.lower()][:1]
                 or difflib.get_close_matches(name, list(entries), n=1))
        hint = f"Did you mean {close[0]}? " if close else ""
        raise DataError(f"{source} has no dataset '{name}' (it has {', '.join(entries)}).",
                        f"{hint}Set data.dataset to one of its names (tunetop inspect "
                        f"{directory} lists them).", source)
    entry = entries[name]
    if entry.problem:
        raise DataError(f"{source}: dataset '{name}' cannot be loaded: {entry.problem}.",
                        "Download the data and point file_name at it, or give hf_hub_url.",
                        source)
    return entry
