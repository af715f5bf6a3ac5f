"""What a workspace offers for a review: models, prompt sources and existing review sets.

Models are the base models of the app and of every run, each finished run's output and its
complete checkpoints (:func:`core.rundir.complete_checkpoints`: half-written ones are never
offered). Reads small files only, so the UI can call it from a thread at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import GENERAL_PROMPTS, RunConfig
from core.review.jobs import Choice
from core.review.store import ReviewSetInfo, find_review_sets
from core.rundir import CONFIG_FILE, FINAL_DIR, complete_checkpoints

HELD_OUT_SAMPLE = "sample:support-tickets-heldout"
"""The bundled held-out prompts, always offered."""
GENERAL_SAMPLE = GENERAL_PROMPTS
"""The bundled general prompts (the forgetting guard's probe set), always offered: a fine-tune
judged on general tasks as well as on its own."""
FILE_PROMPTS: Choice = ("file", "")
"""The prompts choice that reads a path the user types."""


@dataclass(frozen=True)
class ReviewChoices:
    """What a new review can compare, on which prompts, and the sets to reopen."""

    workspace: Path
    """The directory scanned."""
    models: list[tuple[str, Choice]]
    """``(label, (kind, value))``: kind ``base`` (a model ref) or ``path`` (run/checkpoint)."""
    prompts: list[tuple[str, Choice]]
    """``(label, (kind, value))``: ``sample`` (the held-out tickets, the general prompts),
    ``val`` (a run directory) or ``file``."""
    sets: list[ReviewSetInfo]
    """Review sets of the workspace and its runs, newest first."""
    default_a: Choice
    """The base model of the newest finished run (else the app's model)."""
    default_b: Choice
    """The newest finished run (else the newest checkpoint, else ``default_a``)."""

    def for_run(self, run_dir: Path) -> tuple[Choice | None, Choice, Choice | None] | None:
        """Model A, model B and prompts that review ``run_dir``: its base, its final output
        and its validation split. ``None`` when the run has no final output to review; A or
        the prompts are ``None`` when they are not on offer (an unreadable config, no split).
        """
        offered = {value for _, value in self.models}
        b: Choice = ("path", str(run_dir))
        if b not in offered:
            return None
        try:
            a: Choice | None = ("base", RunConfig.load(run_dir / CONFIG_FILE).model.name_or_path)
        except Exception:  # any unreadable config: keep whatever A is chosen
            a = None
        split: Choice = ("val", str(run_dir))
        return (a if a in offered else None, b,
                split if split in {value for _, value in self.prompts} else None)


def scan_workspace(workspace: Path, app_model: str) -> ReviewChoices:
    """Base models, finished runs, complete checkpoints, validation splits and review sets.

    Runs are the directories of ``workspace`` with a ``config.yaml``, newest first; a run whose
    config does not load is left out (the runs screen reports it).
    """
    bases: dict[str, None] = {app_model: None}
    runs: list[tuple[str, Choice]] = []
    prompts: list[tuple[str, Choice]] = [
        (f"held-out sample ({HELD_OUT_SAMPLE})", ("sample", HELD_OUT_SAMPLE)),
        (f"general prompts ({GENERAL_SAMPLE})", ("sample", GENERAL_SAMPLE))]
    run_dirs = sorted((p.parent for p in workspace.glob(f"*/{CONFIG_FILE}")),
                      key=lambda p: p.stat().st_mtime, reverse=True) if workspace.is_dir() else []
    newest_final: Choice | None = None
    newest_base = app_model
    for run_dir in run_dirs:
        try:
            config = RunConfig.load(run_dir / CONFIG_FILE)
        except Exception:  # a broken config is the runs screen's business, not a choice here
            continue
        bases.setdefault(config.model.name_or_path, None)
        if (run_dir / FINAL_DIR).is_dir():
            runs.append((f"run {run_dir.name} (final)", ("path", str(run_dir))))
            if newest_final is None:
                newest_final, newest_base = ("path", str(run_dir)), config.model.name_or_path
        for checkpoint in reversed(complete_checkpoints(run_dir)):
            runs.append((f"run {run_dir.name} {checkpoint.name}", ("path", str(checkpoint))))
        if config.data.validation_fraction > 0:
            prompts.append((f"validation split of {run_dir.name}", ("val", str(run_dir))))
    prompts.append(("file (path below)", FILE_PROMPTS))
    models = [(f"base {b}", ("base", b)) for b in bases] + runs
    default_a: Choice = ("base", newest_base)
    default_b = newest_final or (runs[0][1] if runs else default_a)
    return ReviewChoices(workspace, models, prompts, find_review_sets(workspace),
                         default_a, default_b)
