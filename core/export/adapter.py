"""The adapter alone: the run's PEFT LoRA adapter and tokenizer, with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.export.card import base_model_hub_id, model_card, summarize_run
from core.export.common import ExportError, Progress, atomic_dir, no_progress
from core.export.source import ADAPTER_CONFIG, PICKLE_SUFFIXES, ExportSource, resolve_source
from core.rundir import COMPLETE_MARKER

TRAINING_STATE = {"optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json",
                  "training_args.bin", COMPLETE_MARKER, "README.md"}
"""Files of a checkpoint that only resuming needs (the card is rewritten)."""


def _is_training_state(path: Path) -> bool:
    return (path.name in TRAINING_STATE or path.name.startswith("rng_state")
            or (path.is_file() and path.suffix in PICKLE_SUFFIXES))


def copy_weights(source: ExportSource, into: Path) -> None:
    """Copy what a loader needs from the source folder (subfolders too), leaving out the
    training state and any pickle file."""
    for item in sorted(source.weights.iterdir()):
        if _is_training_state(item):
            continue
        if item.is_dir():
            shutil.copytree(item, into / item.name,
                            ignore=lambda _, names: [n for n in names if n.endswith(PICKLE_SUFFIXES)])
        else:
            shutil.copy2(item, into / item.name)


def write_adapter(source: ExportSource, into: Path, repo_id: str = "") -> None:
    """Fill ``into`` with the adapter of ``source`` and its model card.

    For the Hub (``repo_id``), the adapter names its base by Hub id rather than by this
    machine's path, so ``AutoPeftModelForCausalLM`` finds it from anywhere.
    """
    copy_weights(source, into)
    base_id = base_model_hub_id(source.config.model.name_or_path)
    config_path = into / ADAPTER_CONFIG
    if repo_id and base_id and config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_id
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    usage = ("```python\nfrom peft import AutoPeftModelForCausalLM\n"
             f"model = AutoPeftModelForCausalLM.from_pretrained(\"{repo_id or 'PATH'}\")\n```")
    model_card(summarize_run(source.run_dir, source.step), "adapter", usage=usage).save(into / "README.md")


def export_adapter(run_dir: str | Path, out: str | Path, *, checkpoint: int | str | None = None,
                   progress: Progress | None = None) -> Path:
    """Write the run's adapter (PEFT format), tokenizer and model card to ``out``.

    ``run_dir`` may also be a checkpoint folder; ``checkpoint`` picks ``checkpoint-N``.
    """
    progress = progress or no_progress
    source = resolve_source(run_dir, checkpoint)
    if not source.is_adapter:
        raise ExportError(f"{source.run_dir} is a full fine-tune and has no adapter. Fix: export "
                          "the whole model with --merge (or --gguf).")
    progress("copying the adapter", None)
    out = Path(out)
    with atomic_dir(out) as tmp:
        write_adapter(source, tmp)
    progress("done", 1.0)
    return out
