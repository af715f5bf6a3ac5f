"""Datasets read through ``datasets.load_dataset``: Hub ids and local dataset card folders.

A Hub dataset downloads once into the usual Hugging Face cache and is read from there after.
Offline (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``), or with no network, a dataset that
is not in the cache fails at once instead of after the library's retries (about 25 to 50 s),
and every failure says which it is: not found, no network, or gated (log in with
``hf auth login``). The rows of the loaded split are read like a ``save_to_disk`` dataset.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core import exception_chain
from core.data.files import DatasetFile, RawRow
from core.data.problems import DataError
from core.data.sources import Resolved

PROBE_SECONDS = 5.0
"""How long the quick look at the Hub waits before calling the network unreachable."""
_TRUE = ("1", "on", "yes", "true")


class LoadedDataset(DatasetFile):
    """The split of a dataset ``load_dataset`` returned, read row by row like a saved one."""

    def __init__(self, dataset: Any, resolved: Resolved) -> None:
        super().__init__(Path(resolved.location), resolved.kind)
        self._handle = dataset
        self._label = resolved.label

    @property
    def source(self) -> str:
        """The id or folder, subset and split, as shown in messages."""
        return self._label

    def iter_rows(self) -> Iterator[RawRow]:
        """Every row of the split, numbered from 1."""
        return self._iter_saved()

    def count_rows(self) -> int:
        """Rows of the split (known without reading them)."""
        return len(self._handle)


def offline() -> bool:
    """Whether the Hub must not be contacted (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``).

    Read from the environment, not from ``datasets`` (importing it takes seconds, and an
    offline failure must be quick)."""
    from huggingface_hub import constants

    return (any(os.environ.get(name, "").strip().lower() in _TRUE
                for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
            or bool(constants.HF_HUB_OFFLINE))


def cached(repo: str) -> bool:
    """Whether ``repo`` was loaded before: the datasets cache or the Hub cache has it."""
    from huggingface_hub import constants

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE")
                          or Path(constants.HF_HOME) / "datasets")
    return ((datasets_cache / repo.replace("/", "___")).is_dir()
            or (Path(constants.HF_HUB_CACHE) / f"datasets--{repo.replace('/', '--')}").is_dir())


@contextlib.contextmanager
def _offline_mode() -> Iterator[None]:
    """Make ``datasets`` and ``huggingface_hub`` read only the cache while loading, so an
    unreachable Hub is not retried (the libraries read these flags at call time)."""
    import datasets
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def not_found(repo: str) -> DataError:
    """The error for an id the Hub does not have (or hides: private)."""
    return DataError(f"{repo} was not found on the Hugging Face Hub (no dataset with that id, "
                     "or a private one you cannot see); no local path of that name exists "
                     "either.", "Check the id (org/name) on huggingface.co/datasets or the "
                     "path; for a private dataset log in with `hf auth login`.", repo)


def no_network(repo: str, forced: bool) -> DataError:
    """The error for an id not in the cache while the Hub cannot be reached."""
    why = ("offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)" if forced
           else "no network: the Hub cannot be reached")
    return DataError(f"{repo} cannot be downloaded: {why}, and it is not in the local cache.",
                     "Load it once with network access (it is cached for later offline use)"
                     + (", or unset HF_HUB_OFFLINE / HF_DATASETS_OFFLINE" if forced else "")
                     + ", or give a local file.", repo)


def gated(repo: str) -> DataError:
    """The error for a gated dataset the user has no access to."""
    return DataError(f"{repo} is a gated dataset: you must accept its conditions and be "
                     "logged in to download it.",
                     f"Accept them on https://huggingface.co/datasets/{repo}, then log in with "
                     "`hf auth login` (or set HF_TOKEN).", repo)


NETWORK_ERRORS = {"OfflineModeIsEnabled", "ConnectError", "ConnectTimeout", "TimeoutException",
                  "ReadTimeout", "ConnectionError", "LocalEntryNotFoundError"}
"""Names of the exceptions (datasets, huggingface_hub, httpx, requests) that mean the Hub
could not be reached."""


def failure_kind(exc: BaseException) -> str:
    """What a loading failure is: ``gated``, ``revision``, ``network``, ``not_found``,
    ``split``, ``subset`` or ``other`` (read from the exception and its causes)."""
    chain = exception_chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if "GatedRepoError" in names or "gated dataset" in text:
        return "gated"
    if "RevisionNotFoundError" in names or text.startswith("Revision"):
        return "revision"
    if names & NETWORK_ERRORS:
        return "network"
    if names & {"RepositoryNotFoundError", "DatasetNotFoundError"} or "doesn't exist" in text:
        return "not_found"
    if "Unknown split" in text or "Bad split" in text:
        return "split"
    if "BuilderConfig" in text or "Config name is missing" in text:
        return "subset"
    return "other"


def classify(exc: BaseException, resolved: Resolved, forced_offline: bool = False) -> DataError:
    """A :class:`DataError` saying why loading ``resolved`` failed: not found, no network,
    gated, a wrong revision, split or subset, or else what the library said."""
    repo = resolved.location
    kind = failure_kind(exc)
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if kind == "gated":
        return gated(repo)
    if kind == "revision":
        return DataError(f"{repo} has no revision '{resolved.revision}'.",
                         "Give an existing branch, tag or commit in data.revision, or remove "
                         "it for the default branch.", repo)
    if kind == "network":
        return no_network(repo, forced_offline)
    if kind == "not_found":
        return not_found(repo)
    if kind == "split":
        return DataError(f"{resolved.label}: no split '{resolved.split}' ({said}).",
                         "Set data.split to one of the splits named.", repo)
    if kind == "subset":
        return DataError(f"{resolved.label}: the subset is missing or unknown ({said}).",
                         f"Name a subset after the id: {repo}:SUBSET.", repo)
    return DataError(f"{resolved.label} could not be loaded: {type(exc).__name__}: {said}",
                     "Check the dataset's files and card (datasets.load_dataset must read "
                     "them).", repo)


def _probe(resolved: Resolved) -> bool:
    """Look the id up on the Hub (a few seconds at most); ``False`` when the Hub cannot be
    reached. Raises the not-found and gated errors at once."""
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(resolved.location, revision=resolved.revision,
                             timeout=PROBE_SECONDS)
    except Exception as exc:  # httpx, requests and hub errors have no common base
        if failure_kind(exc) == "network":
            return False
        raise classify(exc, resolved) from None
    return True


def open_loaded(resolved: Resolved) -> LoadedDataset:
    """Load a Hub dataset or a dataset card folder (``resolved.kind`` ``hub`` or ``folder``).

    Raises :class:`DataError` naming what went wrong and the fix, fast when offline.
    """
    forced = offline()
    use_cache_only = forced
    if resolved.kind == "hub":  # settled before importing datasets, which takes seconds
        if forced and not cached(resolved.location):
            raise no_network(resolved.location, forced=True)
        if not forced and not _probe(resolved):
            if not cached(resolved.location):
                raise no_network(resolved.location, forced=False)
            use_cache_only = True
    import datasets

    datasets.disable_progress_bars()  # core never prints; bars would land in the UI
    try:
        with _offline_mode() if use_cache_only else contextlib.nullcontext():
            loaded = datasets.load_dataset(
                resolved.location, name=resolved.subset, split=resolved.split,
                revision=resolved.revision, data_dir=resolved.data_dir)
    except Exception as exc:  # the datasets library raises many unrelated types
        raise classify(exc, resolved, forced) from None
    return LoadedDataset(loaded, resolved)
