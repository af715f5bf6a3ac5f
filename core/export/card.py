"""The model card written with every export: a ``huggingface_hub.ModelCard``.

Its metadata is what the Hub reads (``base_model`` links the fine-tune to its base,
``datasets`` to its data where they came from the Hub); its text is what a person reads:
the method, the validation losses, the blind review and the whole training config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import BUNDLED_MODEL, RunConfig
from core.events import EvalLogged, RunFinished, read_events
from core.rundir import EVENTS_FILE

BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub model the bundled model is a copy of (dequantized from its Q4_1 GGUF)."""



@dataclass(frozen=True)
class RunSummary:
    """What the model card records about a run."""

    config: RunConfig
    final_eval_loss: float | None
    best_eval_loss: float | None
    steps: int
    win_rate: str | None
    checkpoint: int | None = None
    """The checkpoint exported, or ``None`` for the final model."""


def summarize_run(run_dir: str | Path, checkpoint: int | None = None) -> RunSummary:
    """Read the config, the validation losses and the review of a run directory.

    For a checkpoint, losses are those measured up to its step.
    """
    run_dir = Path(run_dir)
    config = RunConfig.load(run_dir / "config.yaml")
    events_path = run_dir / EVENTS_FILE
    events, _ = read_events(str(events_path)) if events_path.is_file() else ([], 0)
    evals = [e for e in events if isinstance(e, EvalLogged) and math.isfinite(e.eval_loss)
             and (checkpoint is None or e.step <= checkpoint)]
    finished = [e for e in events if isinstance(e, RunFinished)]
    losses = [e.eval_loss for e in evals]
    return RunSummary(
        config=config,
        final_eval_loss=losses[-1] if losses else None,
        best_eval_loss=min(losses) if losses else None,
        steps=checkpoint if checkpoint is not None else (finished[-1].step if finished else 0),
        win_rate=_review_win_rate(run_dir),
        checkpoint=checkpoint,
    )


def _review_win_rate(run_dir: Path) -> str | None:
    """The newest judged review of this run as one line, or None when there is none."""
    from core.review import ReviewSet, find_review_sets

    for info in find_review_sets(run_dir):
        stats = ReviewSet.open(info.path).stats()
        if stats.decisions:
            return f"{info.label_b} vs {info.label_a}: {stats.win_rate_text()}"
    return None


def base_model_hub_id(ref: str) -> str | None:
    """The Hub id of a model reference: itself for ``org/name``, the original for the bundled
    model, ``None`` for a local folder (whose origin is not known)."""
    ref = ref.strip()
    if ref == BUNDLED_MODEL:
        return BUNDLED_HUB_ID
    if ref.startswith((".", "/", "~")) or Path(ref).expanduser().exists() or ref.count("/") != 1:
        return None
    return ref


def hub_datasets(data: Any) -> list[str]:
    """The Hub dataset ids a run's data came from (``data.path`` or each of ``data.sources``)."""
    from core.data.sources import parse_hub_id, source_specs

    return list(dict.fromkeys(hub[0] for spec in source_specs(data)
                              if (hub := parse_hub_id(spec.path)) is not None))


def _dataset(data: Any) -> str:
    """The data a run read, for the model card: its path (and registry entry), or its mix."""
    from core.data.sources import source_specs

    return ", ".join(f"`{s.path}`" + (f" [{s.dataset}]" if s.dataset else "")
                     + (f" (weight {s.weight:g})" if s.weight else "")
                     for s in source_specs(data))


KINDS = {
    "adapter": ("peft", "a PEFT LoRA adapter", "adapter"),
    "merged": ("transformers", "a standalone merged model", "finetune"),
    "gguf": ("gguf", "a GGUF file of the merged model for llama.cpp, LM Studio and Ollama", "finetune"),
}
"""Per export kind: the card's ``library_name``, how the text names it, ``base_model_relation``."""


def model_card(summary: RunSummary, kind: str, note: str = "", usage: str = "",
               extra_tags: tuple[str, ...] = ()) -> Any:
    """The ``huggingface_hub.ModelCard`` for an export of ``kind`` (see :data:`KINDS`).

    ``usage`` is the Markdown of the "Use" section (a default for ``kind`` when empty).
    """
    from huggingface_hub import ModelCard, ModelCardData

    cfg = summary.config
    library, what, relation = KINDS[kind]
    base_id = base_model_hub_id(cfg.model.name_or_path)
    datasets = hub_datasets(cfg.data)
    data = ModelCardData(
        base_model=base_id,
        base_model_relation=relation if base_id else None,
        datasets=datasets or None,
        library_name=library,
        pipeline_tag="text-generation",
        tags=["tunetop", "sft", cfg.method, *extra_tags],
    )

    def loss(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "not measured"

    base = f"`{cfg.model.name_or_path}`"
    if cfg.model.name_or_path == BUNDLED_MODEL:
        base += f" (tunetop's copy of [{BUNDLED_HUB_ID}](https://huggingface.co/{BUNDLED_HUB_ID}), dequantized from its Q4_1 GGUF)"
    elif base_id:
        base = f"[{base_id}](https://huggingface.co/{base_id})"
    which = f"checkpoint at step {summary.checkpoint}" if summary.checkpoint is not None else "final model"
    lines = [
        f"# Fine-tune of {base_id or cfg.model.name_or_path}",
        "",
        f"Exported by tunetop as {what}, from the run's {which}.",
        "",
        "| | |",
        "|---|---|",
        f"| Base model | {base} |",
        f"| Method | {cfg.method} |",
        f"| Dataset | {_dataset(cfg.data)} (validation fraction {cfg.data.validation_fraction}) |",
        f"| Steps | {summary.steps} |",
        f"| Final validation loss | {loss(summary.final_eval_loss)} |",
        f"| Best validation loss | {loss(summary.best_eval_loss)} |",
        f"| Blind review | {summary.win_rate or 'no review judged yet'} |",
    ]
    if note:
        lines += ["", note]
    lines += ["", "## Use", "", usage or _default_usage(kind), "",
              "## Training config", "", "```yaml", cfg.to_yaml().rstrip(), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines))


def _default_usage(kind: str) -> str:
    if kind == "adapter":
        return ("```python\nfrom peft import AutoPeftModelForCausalLM\n"
                "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")\n```")
    return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n"
            "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n```")
