"""Experiment trackers (``report_to``): which exist, and where their local files go.

The trainer's own integrations do the logging; tunetop points the ones that write locally
into ``RUN/tracker/`` (TensorBoard events, a W&B offline/run folder, MLflow's file store,
Trackio's database) unless the user already chose a place through the tracker's own
environment variable. Tokens (``WANDB_API_KEY``, ``HF_TOKEN``...) stay in the environment:
nothing here reads or writes them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow")
"""Trackers ``report_to`` may name (``none`` for no tracker)."""

TRACKER_DIR = "tracker"
"""Folder of a run directory that holds the trackers' local files."""

PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
            "trackio": ("trackio",), "mlflow": ("mlflow",)}
"""The package(s) each tracker needs; one of them is enough."""

_OURS: set[str] = set()
"""Environment variables tunetop set (for an earlier run in this process), not the user."""


def tracker_names(report_to: str | list[str] | None) -> list[str]:
    """``report_to`` as a list of trackers (``none`` and empty give none)."""
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return [n.strip() for n in names if n.strip() and n.strip() != "none"]


def missing_packages(names: list[str]) -> list[str]:
    """The pip package to install for each named tracker that is not installed."""
    return [PACKAGES[n][0] for n in names
            if n in PACKAGES and not any(importlib.util.find_spec(p) for p in PACKAGES[n])]


def tracker_env(names: list[str], run_dir: str | Path) -> dict[str, str]:
    """Environment variables that send the named trackers' local files under the run."""
    root = Path(run_dir).resolve() / TRACKER_DIR
    wanted = {
        "wandb": {"WANDB_DIR": str(root)},
        "mlflow": {"MLFLOW_TRACKING_URI": (root / "mlruns").as_uri()},
        "trackio": {"TRACKIO_DIR": str(root / "trackio")},
    }
    return {k: v for n in names for k, v in wanted.get(n, {}).items()}


def apply_tracker_env(names: list[str], run_dir: str | Path) -> dict[str, str]:
    """Set :func:`tracker_env` in this process, leaving variables the user set alone; returns
    what was set."""
    applied = {}
    for key, value in tracker_env(names, run_dir).items():
        if key in os.environ and key not in _OURS:
            continue  # the user's own choice
        os.environ[key] = value
        _OURS.add(key)
        applied[key] = value
    if applied:
        (Path(run_dir) / TRACKER_DIR).mkdir(parents=True, exist_ok=True)
    return applied


def point_tensorboard(trainer: Any, run_dir: str | Path) -> Path | None:
    """Send the trainer's TensorBoard events to ``RUN/tracker/tensorboard`` (transformers would
    put them under the checkpoints) unless ``TENSORBOARD_LOGGING_DIR`` says otherwise."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(Path(run_dir) / TRACKER_DIR / "tensorboard")
            return Path(callback.logging_dir)
    return None
