"""Export a finished run: the adapter alone, or a standalone merged model, with a model card.

Both exports are written to a temporary directory beside the target and renamed into place,
so an interrupted export never leaves something that looks complete.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.config import RunConfig
from core.events import EvalLogged, RunFinished, read_events
from core.rundir import CONFIG_FILE, EVENTS_FILE, FINAL_DIR


class ExportError(RuntimeError):
    """The run cannot be exported; the message says why and what to do."""


@dataclass(frozen=True)
class RunSummary:
    """What the model card records about a run."""

    config: RunConfig
    final_eval_loss: float | None
    best_eval_loss: float | None
    steps: int
    win_rate: str | None


def summarize_run(run_dir: Path) -> RunSummary:
    """Read the config and the validation losses from a run directory."""
    config = RunConfig.load(run_dir / CONFIG_FILE)
    events, _ = read_events(str(run_dir / EVENTS_FILE)) if (run_dir / EVENTS_FILE).is_file() else ([], 0)
    evals = [e.eval_loss for e in events if isinstance(e, EvalLogged) and math.isfinite(e.eval_loss)]
    finished = [e for e in events if isinstance(e, RunFinished)]
    return RunSummary(
        config=config,
        final_eval_loss=evals[-1] if evals else None,
        best_eval_loss=min(evals) if evals else None,
        steps=finished[-1].step if finished else 0,
        win_rate=_review_win_rate(run_dir),
    )


def _review_win_rate(run_dir: Path) -> str | None:
    """The newest judged review of this run as one line, or None when there is none."""
    from core.review import ReviewSet, find_review_sets

    for info in find_review_sets(run_dir):
        stats = ReviewSet.open(info.path).stats()
        if stats.decisions:
            return f"{info.label_b} vs {info.label_a}: {stats.win_rate_text()}"
    return None


def model_card(summary: RunSummary, kind: str, note: str = "") -> str:
    """Markdown model card for an export of ``kind`` (``adapter`` or ``merged``)."""
    cfg = summary.config

    def loss(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "not measured"

    usage = (
        "```python\nfrom peft import AutoPeftModelForCausalLM\n"
        "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")\n```"
        if kind == "adapter"
        else "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n```"
    )
    lines = [
        "---",
        "library_name: " + ("peft" if kind == "adapter" else "transformers"),
        "tags: [tunetop, sft, " + cfg.method + "]",
        "---",
        f"# Fine-tune of {cfg.model.name_or_path}",
        "",
        f"Exported by tunetop as {'a PEFT LoRA adapter' if kind == 'adapter' else 'a standalone merged model'}.",
        "",
        "| | |",
        "|---|---|",
        f"| Base model | `{cfg.model.name_or_path}` |",
        f"| Method | {cfg.method} |",
        f"| Dataset | {_dataset(cfg)} (validation fraction {cfg.data.validation_fraction}) |",
        f"| Steps | {summary.steps} |",
        f"| Final validation loss | {loss(summary.final_eval_loss)} |",
        f"| Best validation loss | {loss(summary.best_eval_loss)} |",
        f"| Blind review | {summary.win_rate or 'no review judged yet'} |",
    ]
    if note:
        lines += ["", note]
    lines += ["", "## Use", "", usage, "", "## Training config", "", "```yaml", cfg.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)


def _final_dir(run_dir: Path) -> Path:
    final = run_dir / FINAL_DIR
    if not final.is_dir():
        raise ExportError(
            f"{run_dir} has no final model (the run has not finished). Fix: finish or resume the "
            f"run, or export a checkpoint from {run_dir / 'checkpoints'}."
        )
    return final


def _atomic_dir(target: Path) -> Path:
    if target.exists():
        raise ExportError(f"{target} already exists. Fix: choose another --out or remove it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def export_adapter(run_dir: str | Path, out: str | Path) -> Path:
    """Copy the run's adapter (PEFT format) and tokenizer to ``out`` with a model card."""
    run_dir, out = Path(run_dir), Path(out)
    final = _final_dir(run_dir)
    summary = summarize_run(run_dir)
    if summary.config.method == "full":
        raise ExportError(f"{run_dir} is a full fine-tune and has no adapter. Fix: export with --merge.")
    tmp = _atomic_dir(out)
    try:
        for item in final.iterdir():
            if item.name != "training_args.bin":  # pickle, and of no use to a loader
                shutil.copy2(item, tmp / item.name)
        (tmp / "README.md").write_text(model_card(summary, "adapter"), encoding="utf-8")
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def export_merged(run_dir: str | Path, out: str | Path) -> tuple[Path, str]:
    """Merge the adapter into the full-precision base and save a standalone model.

    Returns the output path and a note for the user (QLoRA merges into the fp32 base, not the
    4-bit one, since merging into quantized weights would lose the adapter's precision).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models import resolve_model_path

    run_dir, out = Path(run_dir), Path(out)
    final = _final_dir(run_dir)
    summary = summarize_run(run_dir)
    cfg = summary.config
    note = ""
    if cfg.method == "full":
        model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32)
    else:
        base = AutoModelForCausalLM.from_pretrained(
            resolve_model_path(cfg.model.name_or_path),
            dtype=torch.float32,
            trust_remote_code=cfg.model.trust_remote_code,
            revision=cfg.model.revision,
            use_safetensors=None if cfg.model.allow_pickle_weights else True,
        )
        model = PeftModel.from_pretrained(base, final).merge_and_unload()
        if cfg.method == "qlora":
            note = (
                "This QLoRA adapter was merged into the full-precision (fp32) base model, not the "
                "4-bit one it was trained against, so outputs can differ slightly from the 4-bit "
                "model with the adapter."
            )
    tokenizer = AutoTokenizer.from_pretrained(final)
    tmp = _atomic_dir(out)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(summary, "merged", note), encoding="utf-8")
        (tmp / "tunetop_export.json").write_text(
            json.dumps({"run": run_dir.name, "method": cfg.method, "merged": True}, indent=2)
        )
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, note


def _dataset(cfg: RunConfig) -> str:
    """The data a run read, for the model card: its path (and registry entry), or its mix."""
    sources = cfg.data.sources or [cfg.data]
    return ", ".join(f"`{s.path}`" + (f" [{s.dataset}]" if s.dataset else "")
                     + (f" (weight {s.weight:g})" if getattr(s, "weight", None) else "")
                     for s in sources)
