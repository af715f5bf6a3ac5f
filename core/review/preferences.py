"""Preference pairs from a review set's judgements: the data of a DPO or ORPO run.

Every decided judgement (left or right better) becomes one TRL conversational preference row,
``{"prompt": [...turns], "chosen": [assistant turn], "rejected": [assistant turn]}``, with the
side as judged: the answer the reviewer preferred is ``chosen`` whichever model wrote it and
wherever it was shown. Ties, "both bad" and skipped items say nothing about which answer is
better, so they are left out and counted; so are items not judged yet, pairs whose two
answers are the same text, and pairs whose preferred answer is empty. Judgements made after
the sides were revealed are not blind: they are left out unless asked for, and counted.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import DataConfig, RunConfig
from core.review.store import ReviewSet, slug
from core.rundir import CONFIG_FILE

PREFERENCES_FILE = "preferences.jsonl"
"""File of a review set that :func:`write_preferences` writes by default."""


@dataclass
class PreferencePairs:
    """The pairs of one review set and the count of every judgement left out, by reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """TRL conversational rows: ``prompt``, ``chosen``, ``rejected`` (lists of turns)."""
    ties: int = 0
    both_bad: int = 0
    skipped: int = 0
    unjudged: int = 0
    """Generated items without a verdict."""
    after_reveal: int = 0
    """Decided judgements made after the reveal, left out (see ``include_after_reveal``)."""
    identical: int = 0
    """Decided judgements whose two answers are the same text."""
    empty_chosen: int = 0
    """Decided judgements that preferred an empty answer."""

    @property
    def left_out(self) -> int:
        """Generated items that gave no pair, whatever the reason."""
        return (self.ties + self.both_bad + self.skipped + self.unjudged + self.after_reveal
                + self.identical + self.empty_chosen)

    def summary(self) -> str:
        """One line: pairs made and each reason for leaving items out (only those that occur)."""
        reasons = [(self.ties, "tie"), (self.both_bad, "both bad"), (self.skipped, "skipped"),
                   (self.unjudged, "not judged"), (self.after_reveal, "judged after the reveal"),
                   (self.identical, "same answer twice"), (self.empty_chosen, "empty preferred answer")]
        out = ", ".join(f"{n} {label}" for n, label in reasons if n)
        pairs = f"{len(self.rows)} preference pair{'s' if len(self.rows) != 1 else ''}"
        return f"{pairs}; left out: {out}" if out else pairs


def preference_pairs(review: ReviewSet, include_after_reveal: bool = False) -> PreferencePairs:
    """Turn the current verdicts of ``review`` into preference pairs, in item order."""
    pairs = PreferencePairs()
    for index in sorted(review.items):
        item = review.items[index]
        judgement = review.verdicts.get(index)
        if judgement is None:
            pairs.unjudged += 1
            continue
        verdict = judgement.verdict
        if verdict == "tie":
            pairs.ties += 1
        elif verdict == "both_bad":
            pairs.both_bad += 1
        elif verdict == "skip":
            pairs.skipped += 1
        elif judgement.after_reveal and not include_after_reveal:
            pairs.after_reveal += 1
        else:
            # The verdict names a side as shown; the item knows which model was shown there.
            chosen, rejected = ((item.left, item.right) if verdict == "left"
                                else (item.right, item.left))
            if chosen.strip() == rejected.strip():
                pairs.identical += 1
            elif not chosen.strip():
                pairs.empty_chosen += 1
            else:
                pairs.rows.append({
                    "prompt": [dict(m) for m in item.messages],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                })
    return pairs


def write_preferences(review: ReviewSet, path: str | Path | None = None,
                      include_after_reveal: bool = False) -> tuple[Path, PreferencePairs]:
    """Write the pairs of :func:`preference_pairs` as JSONL (default: the set's
    ``preferences.jsonl``); the path written and the pairs. Raises ``ValueError`` when no
    judgement gives a pair, saying why."""
    pairs = preference_pairs(review, include_after_reveal)
    if not pairs.rows:
        raise ValueError(f"{review.name} has no decided judgement to learn from ({pairs.summary()}). "
                         "Fix: judge more items Left or Right better"
                         + (", or include the judgements made after the reveal."
                            if pairs.after_reveal else "."))
    target = Path(path) if path else review.path / PREFERENCES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in pairs.rows),
                   encoding="utf-8")
    tmp.replace(target)
    return target, pairs


PREFERENCE_LEARNING_RATE = {"lora": 5e-5, "qlora": 5e-5, "full": 5e-7}
"""Starting learning rates for DPO: about a tenth of SFT's for LoRA, and the DPO paper's 5e-7
for a full fine-tune (preference tuning moves the model far with little)."""


def preference_run_config(review: ReviewSet, pairs_path: str | Path,
                          objective: str = "dpo") -> RunConfig:
    """A run that trains model B of ``review`` on the pairs in ``pairs_path``.

    B is usually the run under review: the new run starts from its weights (its adapter
    through ``model.adapter``, or its full fine-tuned output) with its settings (method, LoRA
    shape, precision, max_length, template), a preference learning rate and a fresh schedule.
    With a plain model as B, it starts from that model with the default settings.
    """
    b = review.meta.get("b") or {}
    run_dir = _run_of(Path(str(b["spec"]))) if b.get("kind") in ("run", "checkpoint") else None
    source = RunConfig.load(run_dir / CONFIG_FILE) if run_dir is not None else RunConfig()
    config = copy.deepcopy(source)
    config.model.name_or_path = str(b.get("model") or source.model.name_or_path)
    config.model.adapter = b.get("adapter") or None
    if not config.model.adapter and b.get("kind") in ("run", "checkpoint"):
        config.model.revision = None  # a full fine-tune's own output directory
    config.objective = objective
    config.data = DataConfig(path=str(pairs_path), max_length=source.data.max_length,
                             chat_template=source.data.chat_template,
                             default_system_prompt=source.data.default_system_prompt)
    pairs = sum(1 for line in Path(pairs_path).read_text(encoding="utf-8").splitlines() if line.strip())
    # A few held-out pairs measure preference accuracy; a handful of votes keeps them all.
    config.data.validation_fraction = 0.1 if pairs >= 20 else 0.0
    config.optim.learning_rate = PREFERENCE_LEARNING_RATE.get(config.method, 5e-5)
    config.optim.max_steps, config.optim.num_train_epochs = -1, 3.0
    name = run_dir.name if run_dir is not None else slug(str(b.get("label") or "model"), 32)
    config.run_name = f"{name}-{objective}"
    return config


def _run_of(path: Path) -> Path | None:
    """The run directory holding ``path`` (a run, its ``final/`` or one of its checkpoints)."""
    for candidate in (path, *list(path.parents)[:3]):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return None
