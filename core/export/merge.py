"""The merged model: the adapter folded into its base, saved as a standalone model.

The merged model keeps the base model's dtype (a bf16 base gives a bf16 model, half the size
of fp32) unless asked for another, and is sharded at ``max_shard_size``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.export.card import model_card, summarize_run
from core.export.common import ExportError, Progress, atomic_dir, no_progress
from core.export.source import ExportSource, resolve_source
from core.rundir import CONFIG_FILE

DTYPES = {"float32": "float32", "fp32": "float32", "f32": "float32",
          "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "f16": "float16"}
"""Names ``--dtype`` accepts (besides ``auto``, the base model's) and the torch dtype of each."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)?\s*$", re.IGNORECASE)
_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``500MB``, ``2GB``, ``1.5GiB`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ExportError(f"--max-shard-size {text!r} is not a size. Fix: write it like 500MB or 2GB.")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    size = int(number * _UNITS.get(unit, 1))
    if size < 1:
        raise ExportError(f"--max-shard-size {text!r} is not a size. Fix: write it like 500MB or 2GB.")
    return size


def dtype_name(dtype: str | None) -> str | None:
    """The torch dtype name for a ``--dtype`` value; ``None`` for ``auto`` (keep the base's)."""
    if dtype in (None, "", "auto"):
        return None
    name = DTYPES.get(str(dtype).lower())
    if name is None:
        raise ExportError(f"--dtype {dtype!r} is unknown. Fix: use auto (the base model's), "
                          "bfloat16, float16 or float32.")
    return name


@dataclass
class MergedModel:
    """A merged model in memory, ready to save or convert."""

    model: Any
    tokenizer: Any
    dtype: str
    """The torch dtype name of its weights."""
    note: str
    """What the user should know about the merge (empty when nothing)."""


def base_path(source: ExportSource) -> str:
    """Where the run's base model is, or a clear error when it is gone."""
    from core.models import ModelError, resolve_model_path

    ref = source.config.model.name_or_path
    try:
        return resolve_model_path(ref)
    except ModelError as exc:
        if not Path(ref).expanduser().exists() and ref.startswith((".", "/", "~")):
            alone = ("export the adapter alone, which needs no base: "
                     f"tunetop export {source.run_dir}" if source.is_adapter else
                     "put it back, since a full fine-tune is merged with nothing")
            raise ExportError(
                f"The run's base model {ref} is gone (model.name_or_path in "
                f"{source.run_dir / CONFIG_FILE}). Fix: put it back at that path, or set "
                f"model.name_or_path there to where it is now, or {alone}."
            ) from None
        raise ExportError(str(exc)) from None


def _config_dtype(config: Any) -> str:
    import torch

    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else "float32"


def base_dtype(source: ExportSource) -> str:
    """The dtype the base model is stored in (float32 when its config does not say)."""
    from transformers import AutoConfig

    cfg = source.config.model
    where = source.weights if not source.is_adapter else base_path(source)
    config = AutoConfig.from_pretrained(where, trust_remote_code=cfg.trust_remote_code,
                                        revision=None if where == source.weights else cfg.revision)
    return _config_dtype(config)


def load_tokenizer_of(source: ExportSource) -> Any:
    """The tokenizer the run saved with its weights (the base's when it saved none)."""
    from transformers import AutoTokenizer

    from core.models import load_tokenizer

    if (source.weights / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(source.weights)
    cfg = source.config.model
    return load_tokenizer(base_path(source), cfg.trust_remote_code, cfg.revision)


def load_merged(source: ExportSource, dtype: str | None = None,
                progress: Progress | None = None) -> MergedModel:
    """Load ``source`` as one standalone model in ``dtype`` (default: the base model's).

    A LoRA or QLoRA adapter is merged into the base loaded in full precision: a QLoRA adapter
    is not merged into the 4-bit weights it was trained against, which would round it away.
    """
    import torch
    from transformers import AutoModelForCausalLM

    progress = progress or no_progress
    cfg = source.config
    target = dtype_name(dtype) or base_dtype(source)
    torch_dtype = getattr(torch, target)
    progress("loading the base model", None)
    if not source.is_adapter:
        model = AutoModelForCausalLM.from_pretrained(source.weights, dtype=torch_dtype,
                                                     trust_remote_code=cfg.model.trust_remote_code)
    else:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(
            base_path(source),
            dtype=torch_dtype,
            trust_remote_code=cfg.model.trust_remote_code,
            revision=cfg.model.revision,
            use_safetensors=None if cfg.model.allow_pickle_weights else True,
        )
        progress("merging the adapter", None)
        model = PeftModel.from_pretrained(base, source.weights).merge_and_unload()
    note = ""
    if cfg.method == "qlora":
        note = (f"This QLoRA adapter was merged into the full-precision ({target}) base model, not "
                "the 4-bit one it was trained against, so outputs can differ slightly from the "
                "4-bit model with the adapter.")
    return MergedModel(model=model, tokenizer=load_tokenizer_of(source), dtype=target, note=note)


def write_merged(merged: MergedModel, source: ExportSource, into: Path,
                 max_shard_size: str | int | None = None, repo_id: str = "") -> None:
    """Save ``merged`` with its tokenizer, card and export record into ``into``."""
    kwargs = {"max_shard_size": parse_size(max_shard_size)} if max_shard_size else {}
    merged.model.save_pretrained(into, **kwargs)
    merged.tokenizer.save_pretrained(into)
    where = repo_id or "PATH"
    usage = ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
             f"model = AutoModelForCausalLM.from_pretrained(\"{where}\")\n"
             f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")\n```\n\n"
             f"Or serve it: `vllm serve {where}`.")
    card = model_card(summarize_run(source.run_dir, source.step), "merged", merged.note, usage=usage)
    card.save(into / "README.md")
    (into / "tunetop_export.json").write_text(json.dumps(
        {"run": source.run_dir.name, "weights": source.label, "method": source.config.method,
         "merged": True, "dtype": merged.dtype}, indent=2) + "\n")


def export_merged(run_dir: str | Path, out: str | Path, *, checkpoint: int | str | None = None,
                  dtype: str | None = None, max_shard_size: str | int | None = None,
                  progress: Progress | None = None) -> tuple[Path, str]:
    """Merge the adapter into its base and save a standalone model in ``out``.

    ``dtype`` defaults to the base model's; ``max_shard_size`` (``"2GB"``) splits the weights
    into several files. Returns the output path and a note for the user (empty when none).
    """
    progress = progress or no_progress
    source = resolve_source(run_dir, checkpoint)
    dtype_name(dtype)  # a bad dtype or size fails before minutes of loading
    if max_shard_size:
        parse_size(max_shard_size)
    out = Path(out)
    with atomic_dir(out) as tmp:
        merged = load_merged(source, dtype, progress)
        progress("saving the merged model", None)
        write_merged(merged, source, tmp, max_shard_size)
    progress("done", 1.0)
    return out, merged.note
