"""Exact parameter counts and a training-memory estimate, computed without loading weights.

The model is built on the ``meta`` device (shapes only, no storage) and its layers' shapes are
read once; LoRA's parameters are then counted arithmetically as PEFT adds them (``r x (in +
out)`` per adapted layer), so the trainable figure is the one the engine will report and an
absurd rank costs nothing to count.

The memory estimate follows what the engine does (``core.models.load_model`` and TRL's
``SFTTrainer``), part by part:

* **base weights**: fp32 for full fine-tuning and for LoRA on CPU, the training precision for
  LoRA on a GPU, nf4 with double quantization for QLoRA (whose remaining parameters
  ``prepare_model_for_kbit_training`` upcasts to fp32);
* **embeddings and head** at the same precision (never quantized);
* **trainable state**: fp32 adapter weights, gradients and two AdamW moments (full fine-tuning:
  gradients and moments of every weight);
* **autocast copies**: with fp32 weights and bf16/fp16 mixed precision, each matmul casts its
  weight, and autograd keeps that copy until the backward pass;
* **activations** saved for the backward pass, per token and layer, or only the layer inputs
  plus one recomputed layer with gradient checkpointing;
* **logits**: TRL's fused LM head never holds the whole ``batch x seq x vocab`` logits, only
  tiles of at most 4,096 tokens x 32,768 vocabulary entries and their fp32 working copies;
* **runtime**: the CUDA context and allocator slack on a GPU; the Python, torch and allocator
  baseline of the process on CPU.

The per-token coefficients follow what autograd saves (``tests/core/test_memory.py`` checks
them against real small models); the CPU baseline, allocator slack and fused-head figures are
calibrated against measured peaks by ``bench/memory_accuracy.py``, whose last table is in its
docstring. The GPU figures follow the same model but have not been measured on a GPU yet.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from core import machine
from core.config import ConfigProblem, RunConfig
from core.machine import MIB, format_bytes

TIGHT_SHARE = 0.85
"""Above this share of the available memory the verdict is ``tight``: fragmentation, other
processes and longer-than-expected rows can tip it over."""

CUDA_CONTEXT_BYTES = 500 * MIB
"""CUDA context, cuBLAS workspaces and kernels loaded by torch on the first GPU op."""
CUDA_ALLOCATOR_SLACK = 0.08
"""Share of the dynamic memory the caching allocator reserves beyond what is live."""
CPU_BASELINE_BYTES = 560 * MIB
"""Resident memory of a process that imported torch, transformers, peft, trl and datasets and
built a trainer, before the first step (measured: 480-565 MiB)."""
CPU_ALLOCATOR_SLACK = 0.12
"""Share of each step's activations and logits that glibc's allocator keeps resident beyond
what is live: many of those buffers are under its 32 MiB mmap threshold and are freed into
arenas that stay mapped (measured 0-11% on the bundled model)."""

NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
"""nf4 packs two weights a byte; double quantization stores one 8-bit absmax per 64 weights and
one fp32 scale per 256 blocks."""

FUSED_HEAD_TOKENS = 4096
"""Tokens per tile in TRL's fused LM head (``trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE``)."""
FUSED_HEAD_VOCAB = 32768
"""Vocabulary entries per tile (``trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE``)."""

_CPU_TILE_BYTES = 30
"""Bytes per logits-tile entry in the backward of TRL's fused head on CPU (measured)."""
_CPU_HEAD_CHUNK_BYTES = 16
"""Bytes per head-weight entry of a vocabulary chunk during that backward (measured)."""

_VERDICTS = ("fits", "tight", "will not fit")


@dataclass(frozen=True)
class ParamCount:
    """Parameters of the model as it will train: ``trainable`` of ``total``."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        """Trainable share of the total, 0-1."""
        return self.trainable / self.total if self.total else 0.0


@dataclass(frozen=True)
class AvailableMemory:
    """Memory the estimate is compared with, and where the figure came from."""

    bytes: int
    """Free memory on the GPU (what other processes hold is not free), or available system
    memory when there is no NVIDIA GPU."""
    source: str
    """``gpu`` or ``system``."""
    name: str
    """The GPU's name, or ``system memory``."""
    note: str = ""
    """Why system memory was used, e.g. ``no GPU: CUDA_VISIBLE_DEVICES hides every GPU; ...``."""
    total_bytes: int = 0
    """Memory of the GPU, or of the machine; 0 when unknown."""
    label: str = ""
    """Which GPU, e.g. ``GPU 0``."""
    bf16: bool | None = None
    """Whether the GPU computes in bf16 natively (``None``: NVML did not say)."""

    def describe(self) -> str:
        """``free on GPU 0: 70.10 GiB of 80.00 GiB (NVIDIA H100)`` or the system's figures."""
        of = f" of {format_bytes(self.total_bytes, 2)}" if self.total_bytes else ""
        where = f"free on {self.label or 'the GPU'}: " if self.source == "gpu" else ""
        return f"{where}{format_bytes(self.bytes, 2)}{of} ({self.name})"


@dataclass(frozen=True)
class MemoryPart:
    """One line of the breakdown."""

    name: str
    bytes: int
    detail: str


@dataclass(frozen=True)
class Suggestion:
    """A change that would make the run fit, with its own re-estimate."""

    text: str
    """What to change, in words (``micro-batch 8 -> 2 with accumulation 1 -> 4``)."""
    changes: dict[str, Any]
    """Dotted config field -> new value, so the UI can apply it."""
    total_bytes: int
    verdict: str


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one training process (one GPU) and the verdict against what is there."""

    parts: tuple[MemoryPart, ...]
    available: AvailableMemory
    device: str
    method: str
    precision: str
    micro_batch: int
    tokens_per_row: int
    effective_batch: int
    """Micro-batch x gradient accumulation x processes: rows per optimizer step."""
    num_processes: int
    params: ParamCount
    suggestions: tuple[Suggestion, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        """Estimated peak for one process (per GPU)."""
        return sum(p.bytes for p in self.parts)

    @property
    def share(self) -> float:
        """Estimated peak as a share of the available memory."""
        return self.total_bytes / self.available.bytes if self.available.bytes else math.inf

    @property
    def verdict(self) -> str:
        """``fits``, ``tight`` or ``will not fit``."""
        return verdict_for(self.total_bytes, self.available.bytes)


def verdict_for(total: int, available: int) -> str:
    """``fits`` up to 85% of ``available``, ``tight`` up to 100%, else ``will not fit``."""
    if available <= 0 or total > available:
        return _VERDICTS[2]
    return _VERDICTS[0] if total <= TIGHT_SHARE * available else _VERDICTS[1]


# --- model structure -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model, read from its meta-device instance."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int
    q_dim: int
    kv_dim: int
    total_params: int
    embedding_params: int
    """Input embeddings plus an untied output head."""
    linear_params: int
    """Weights of the ``Linear`` layers except the head: what QLoRA quantizes."""
    linear_in_features: int
    """Sum of the input widths of those layers (each one's saved input, per token)."""
    linears: tuple[tuple[str, int, int], ...]
    """``(qualified name, in_features, out_features)`` of every ``Linear`` except the head."""
    adaptable: tuple[str, ...]
    """Leaf names LoRA can target, in model order (``q_proj``, ``k_proj``, ...)."""
    lora_layers: tuple[tuple[str, int], ...] = ()
    """``(qualified name, in + out)`` of every layer PEFT can adapt (linear layers, the head,
    embeddings, GPT-2 ``Conv1D``): LoRA adds ``r x (in + out)`` parameters to each."""


_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()
_CACHE_LIMIT = 64


def _cached(key: tuple, build: Callable[[], Any]) -> Any:
    """Memoise meta-model results: the estimate worker asks again on every keystroke."""
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = build()
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = value
    return value


def _config_key(model_config: Any) -> str:
    return f"{type(model_config).__name__}:{model_config.to_json_string(use_diff=False)}"


def _meta_model(model_config: Any, trust_remote_code: bool = False) -> Any:
    """The model built on the ``meta`` device: every shape, no storage, no weights read."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust_remote_code)
    # Building under a meta context can skip tying; tie so shared weights count once.
    model.tie_weights()
    return model


def _text_config(model_config: Any) -> Any:
    get = getattr(model_config, "get_text_config", None)
    return get() if callable(get) else model_config


def model_shape(model_config: Any, trust_remote_code: bool = False) -> ModelShape:
    """Read the shape of ``model_config``'s causal LM from a meta-device instance (cached)."""
    return _cached(("shape", _config_key(model_config)),
                   lambda: _read_shape(model_config, trust_remote_code))


def _read_shape(model_config: Any, trust_remote_code: bool) -> ModelShape:
    from torch import nn

    model = _meta_model(model_config, trust_remote_code)
    text = _text_config(model_config)
    hidden = int(getattr(text, "hidden_size", 0) or getattr(text, "n_embd", 0))
    heads = int(getattr(text, "num_attention_heads", 0) or getattr(text, "n_head", 1))
    kv_heads = int(getattr(text, "num_key_value_heads", 0) or heads)
    head_dim = int(getattr(text, "head_dim", 0) or hidden // max(heads, 1))
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    head_weight = getattr(head, "weight", None)
    tied = head_weight is not None and head_weight is getattr(embed, "weight", None)
    linears = []
    layer_leaves: list[str] = []
    other_leaves: list[str] = []
    lora_layers: list[tuple[str, int]] = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and module is not head:
            linears.append((name, module.in_features, module.out_features))
            layer_leaves.append(leaf)
        elif isinstance(module, (nn.Linear, nn.Embedding)) or type(module).__name__ == "Conv1D":
            other_leaves.append(leaf)
        else:
            continue
        # Linear and Embedding: A takes the input width (or vocabulary), B gives the output
        # width; GPT-2's Conv1D keeps its weight as (in, out): either way, the weight's sizes.
        lora_layers.append((name, sum(module.weight.shape)))
    # The usual targets (the layers' projections) first, then embeddings and the head.
    adaptable = list(dict.fromkeys(layer_leaves + other_leaves))
    total = sum(p.numel() for p in model.parameters())
    embedding = embed.weight.numel() + (0 if tied or head_weight is None else head_weight.numel())
    intermediate = int(getattr(text, "intermediate_size", 0) or getattr(text, "n_inner", 0)
                       or 4 * hidden)
    return ModelShape(
        hidden=hidden,
        intermediate=intermediate,
        layers=int(getattr(text, "num_hidden_layers", 0) or getattr(text, "n_layer", 0)),
        vocab=int(getattr(text, "vocab_size", 0) or embed.weight.shape[0]),
        q_dim=heads * head_dim,
        kv_dim=kv_heads * head_dim,
        total_params=total,
        embedding_params=embedding,
        linear_params=sum(i * o for _, i, o in linears),
        linear_in_features=sum(i for _, i, _ in linears),
        linears=tuple(linears),
        adaptable=tuple(adaptable),
        lora_layers=tuple(lora_layers),
    )


def _matches(qualified: str, target: str) -> bool:
    """PEFT's rule for a list of target names: the whole name or its dotted suffix."""
    return qualified == target or qualified.endswith("." + target)


def adaptable_module_names(model_config: Any, trust_remote_code: bool = False) -> list[str]:
    """Leaf names of the layers LoRA can adapt in this model, in model order."""
    return list(model_shape(model_config, trust_remote_code).adaptable)


def unknown_target_modules(
    model_config: Any, names: list[str], trust_remote_code: bool = False
) -> list[str]:
    """The names in ``names`` that match no layer LoRA can adapt in this model."""
    shape = model_shape(model_config, trust_remote_code)
    known = [n for n, _, _ in shape.linears] + list(shape.adaptable)
    return [t for t in names if not any(_matches(k, t) for k in known)]


def target_modules_problem(
    model_config: Any, names: list[str], trust_remote_code: bool = False
) -> ConfigProblem | None:
    """A ``lora.target_modules`` problem naming the unknown modules and the available ones."""
    unknown = unknown_target_modules(model_config, names, trust_remote_code)
    if not unknown:
        return None
    quoted = ", ".join(f"'{n}'" for n in unknown)
    verb = "is" if len(unknown) == 1 else "are"
    available = ", ".join(adaptable_module_names(model_config, trust_remote_code))
    return ConfigProblem("lora.target_modules", f"{quoted} {verb} not in this model.",
                         f"Use some of: {available}.")


def count_parameters(model_config: Any, run_config: RunConfig) -> ParamCount:
    """Exact trainable and total parameters of the model as the run trains it.

    Full fine-tuning trains every parameter; LoRA and QLoRA train the same adapters, counted
    as PEFT adds them without building any (QLoRA's total is the unquantized count, as a 4-bit
    weight is still one parameter).
    """
    shape = model_shape(model_config, run_config.model.trust_remote_code)
    if run_config.method == "full":
        return ParamCount(shape.total_params, shape.total_params)
    targets = run_config.lora.target_modules
    widths = sum(width for name, width in shape.lora_layers
                 if any(_matches(name, t) for t in targets))
    trainable = run_config.lora.r * widths
    return ParamCount(trainable, shape.total_params + trainable)


# --- available memory ----------------------------------------------------------------------


def available_memory(nvml: Any = None, environ: dict[str, str] | None = None) -> AvailableMemory:
    """Free memory on the GPU that is ``cuda:0``, else available system memory. Never raises.

    Free memory, not total: what other processes hold on the GPU is not there for this run.
    The GPU is :func:`core.machine.gpu_memory`'s; ``nvml`` defaults to ``pynvml`` (tests pass
    a fake) and ``environ`` to ``os.environ``.
    """
    try:
        gpu = machine.gpu_memory(environ, nvml)
    except machine.NoGpu as exc:
        free, total = machine.system_available_bytes(), machine.system_total_bytes() or 0
        what = "available" if free is not None else "total"
        return AvailableMemory(total if free is None else free, "system", "system memory",
                               f"no GPU: {exc}; compared with {what} system memory", total)
    return AvailableMemory(gpu.free_bytes, "gpu", gpu.name, total_bytes=gpu.total_bytes,
                           label=gpu.label, bf16=gpu.bf16)


# --- the estimate --------------------------------------------------------------------------


def resolve_device(device: str, available: AvailableMemory) -> str:
    """``auto`` becomes ``cuda`` when the available memory is a GPU's, else ``cpu``."""
    if device == "auto":
        return "cuda" if available.source == "gpu" else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def estimate_memory(
    model_config: Any,
    run_config: RunConfig,
    longest_tokens: int,
    device: str = "auto",
    available: AvailableMemory | None = None,
    suggest: bool = True,
) -> MemoryEstimate:
    """Estimated peak memory of one training process, per part, with a verdict.

    ``longest_tokens`` is the longest training row after the chat template (capped at
    ``data.max_length``): batches are padded to their longest row, so the worst batch is
    ``micro-batch`` rows of that length. ``device`` is ``cuda``, ``cpu`` or ``auto`` (a GPU when
    NVML finds one). When it will not fit (or is tight), ``suggestions`` lists changes that
    each were re-estimated.
    """
    if available is None:
        available = available_memory()
    device = resolve_device(device, available)
    shape = model_shape(model_config, run_config.model.trust_remote_code)
    params = count_parameters(model_config, run_config)
    tokens = max(1, min(int(longest_tokens), run_config.data.max_length))
    o = run_config.optim
    # The GPU's bf16 support comes from NVML (unknown: taken as the Ampere or later GPU this
    # is meant for), so the estimate never starts CUDA.
    bf16 = available.bf16 is not False if device == "cuda" else None
    precision = machine.resolve_precision(o.precision, device, bf16)
    parts = _parts(shape, params, run_config, tokens, device, precision)
    estimate = MemoryEstimate(
        parts=parts,
        available=available,
        device=device,
        method=run_config.method,
        precision=precision,
        micro_batch=o.per_device_train_batch_size,
        tokens_per_row=tokens,
        effective_batch=o.per_device_train_batch_size * o.gradient_accumulation_steps
        * run_config.num_processes,
        num_processes=run_config.num_processes,
        params=params,
    )
    if suggest and estimate.verdict != "fits":
        estimate = replace(estimate, suggestions=tuple(
            _suggestions(model_config, run_config, tokens, device, available)))
    return estimate


# Saved-for-backward bytes per token and layer, derived from what autograd keeps in a
# Llama-style layer under autocast; tests/core/test_memory.py checks them against the saved
# tensors of small real models.
_NORM_FROZEN_BYTES = 4
"""A frozen RMSNorm keeps its fp32 input: 4 bytes per hidden unit."""
_NORM_TRAINED_BYTES = 8
"""A trained RMSNorm also keeps its fp32 normalized output for the weight gradient."""
_ATTENTION_TENSORS = 4
"""Attention keeps query, key and value (repeated to the query heads) and its output."""
_MLP_TENSORS = 3
"""A gated MLP keeps the gate and up projections and the activation output."""
_DROPOUT_MASK_BYTES = {"cpu": 4, "cuda": 1}
"""LoRA dropout's mask per input unit: fp32 noise on CPU, a bool mask in CUDA's fused kernel."""


def _parts(
    shape: ModelShape, params: ParamCount, cfg: RunConfig, tokens: int, device: str, precision: str,
) -> tuple[MemoryPart, ...]:
    method = cfg.method
    o = cfg.optim
    half = precision in ("bf16", "fp16")
    compute = 2 if half else 4
    gpu = device == "cuda"
    # Weight bytes per parameter, as core.models.load_model loads them.
    weight = 2 if (method == "lora" and gpu and half) else 4
    # A preference pair runs its chosen and its rejected answer through the model together.
    rows = o.per_device_train_batch_size * (2 if cfg.is_preference else 1)
    batch_tokens = rows * tokens
    h, layers = shape.hidden, shape.layers
    other_params = shape.total_params - shape.linear_params - shape.embedding_params

    out: list[MemoryPart] = []
    if method == "qlora":
        base = int(shape.linear_params * NF4_BYTES_PER_PARAM) + other_params * 4
        base_detail = (f"{_count(shape.linear_params)} weights in nf4 "
                       f"(+ double-quant state), {_count(other_params)} in fp32")
    else:
        base = (shape.linear_params + other_params) * weight
        base_detail = f"{_count(shape.linear_params + other_params)} weights in {_dtype(weight)}"
    out.append(MemoryPart("base weights", base, base_detail))
    embed_bytes = 4 if method == "qlora" else weight
    out.append(MemoryPart("embeddings and head", shape.embedding_params * embed_bytes,
                          f"{_count(shape.embedding_params)} in {_dtype(embed_bytes)}"))
    if cfg.objective == "dpo" and method == "full":
        # With LoRA the reference is the starting adapter switched in: no second model.
        out.append(MemoryPart("DPO reference model", base + shape.embedding_params * embed_bytes,
                              "a frozen copy of the starting weights"))

    if method == "full":
        state = params.trainable * (4 + 8)
        detail = f"fp32 grads + AdamW moments of {_count(params.trainable)}"
    else:
        state = params.trainable * (4 + 4 + 8)
        detail = f"{_count(params.trainable)} fp32 adapter weights, grads, AdamW moments"
    out.append(MemoryPart("trainable state", state, detail))

    if half and weight == 4 and method != "qlora":
        # Autocast casts each fp32 weight per matmul; autograd keeps the copy for backward.
        out.append(MemoryPart("autocast weight copies", shape.linear_params * compute,
                              f"{_dtype(compute)} copies kept for the backward pass"))

    residual = 2 if weight == 2 else 4
    per_layer = _layer_activation_bytes(shape, cfg, compute, device)
    if o.gradient_checkpointing:
        activations = batch_tokens * (layers * h * residual + per_layer)
        act_detail = (f"layer inputs of {batch_tokens} tokens x {layers} layers "
                      "+ one recomputed layer (gradient checkpointing)")
    else:
        activations = batch_tokens * layers * per_layer
        act_detail = (f"{o.per_device_train_batch_size}"
                      + (" pairs x 2 answers" if cfg.is_preference else "")
                      + f" x {tokens} tokens x {layers} layers")
    # The embedding output and the final norm's input and output.
    activations += batch_tokens * h * (residual + _NORM_TRAINED_BYTES)
    out.append(MemoryPart("activations", activations, act_detail))

    tile_tokens = min(batch_tokens, FUSED_HEAD_TOKENS)
    tile_vocab = min(shape.vocab, FUSED_HEAD_VOCAB)
    if gpu:
        # Triton folds each bf16 tile in place; the hidden-state gradient is fp32.
        logits = (tile_tokens * tile_vocab * compute + tile_vocab * h * compute
                  + batch_tokens * h * 4)
    else:
        # Without Triton the tile is folded with torch ops: fp32 working copies of the whole
        # tile (measured 30 bytes per tile entry in the backward pass) and fp32 copies of
        # the head's weight chunk.
        logits = tile_tokens * tile_vocab * _CPU_TILE_BYTES + tile_vocab * h * _CPU_HEAD_CHUNK_BYTES
    out.append(MemoryPart("logits", logits,
                          f"fused LM head tiles of {tile_tokens} tokens x {tile_vocab} vocab"))

    if method == "full":
        # Gradients appear layer by layer as the backward pass frees that layer's activations,
        # so beyond the head's (allocated first) they never coexist with the whole forward.
        grads = (params.trainable - shape.embedding_params) * 4
        in_flight = sum(p.bytes for p in out if p.name in ("autocast weight copies",
                                                           "activations", "logits"))
        out.append(MemoryPart("gradients reuse freed", -min(grads, in_flight),
                              "activations are freed as layer gradients arrive"))
    if gpu:
        dynamic = sum(p.bytes for p in out)
        out.append(MemoryPart("runtime", CUDA_CONTEXT_BYTES + int(dynamic * CUDA_ALLOCATOR_SLACK),
                              "CUDA context + caching-allocator slack"))
    else:
        per_step = activations + logits
        out.append(MemoryPart("runtime", CPU_BASELINE_BYTES + int(per_step * CPU_ALLOCATOR_SLACK),
                              "Python, torch and libraries + allocator slack"))
    return tuple(out)


def _layer_activation_bytes(shape: ModelShape, cfg: RunConfig, compute: int, device: str) -> int:
    """Bytes autograd keeps per token for one decoder layer."""
    layers = max(shape.layers, 1)
    # QLoRA's 4-bit layers return their input's dtype, fp32 once the norms are upcast, so the
    # MLP's saved tensors are fp32.
    mlp_bytes = 4 if cfg.method == "qlora" else compute
    per = _ATTENTION_TENSORS * compute * shape.q_dim + _MLP_TENSORS * mlp_bytes * shape.intermediate
    if cfg.method == "full":
        per += 2 * _NORM_TRAINED_BYTES * shape.hidden
        # Every matmul's input (cast to the compute dtype) is kept for its weight gradient.
        per += compute * shape.linear_in_features // layers
    else:
        per += 2 * _NORM_FROZEN_BYTES * shape.hidden
        adapted = sum(n for name, n, _ in shape.linears
                      if any(_matches(name, t) for t in cfg.lora.target_modules))
        # lora_A keeps its compute-dtype input, and dropout its mask.
        per_unit = compute + (_DROPOUT_MASK_BYTES[device] if cfg.lora.lora_dropout > 0 else 0)
        per += per_unit * adapted // layers
    return per


# --- suggestions ---------------------------------------------------------------------------


def _suggestions(
    model_config: Any, cfg: RunConfig, tokens: int, device: str, available: AvailableMemory
) -> list[Suggestion]:
    """The least drastic change of each kind that fits, each re-estimated.

    Kinds, in order: a smaller micro-batch with more accumulation (same effective batch),
    gradient checkpointing, a lighter method, a lower LoRA rank (above 64), shorter rows; all
    of them together only when no
    single change fits. When nothing fits, the two changes that come closest.
    """
    o = cfg.optim
    kinds: list[list[tuple[str, dict[str, Any]]]] = []
    batch, accum = o.per_device_train_batch_size, o.gradient_accumulation_steps
    effective = batch * accum
    kinds.append([
        (f"micro-batch {batch} -> {smaller} with accumulation {accum} -> {effective // smaller} "
         f"(effective batch {effective * cfg.num_processes} kept)",
         {"optim.per_device_train_batch_size": smaller,
          "optim.gradient_accumulation_steps": effective // smaller})
        for smaller in sorted({batch // 2, batch // 4, 1}, reverse=True)
        if 1 <= smaller < batch and effective % smaller == 0
    ])
    if not o.gradient_checkpointing:
        kinds.append([("turn on gradient checkpointing (about 30% slower)",
                       {"optim.gradient_checkpointing": True})])
    methods = []
    if cfg.method == "full":
        methods.append(("use LoRA instead of full fine-tuning", {"method": "lora"}))
    if cfg.method != "qlora" and has_bitsandbytes():
        methods.append((f"use QLoRA (4-bit base) instead of {cfg.method}", {"method": "qlora"}))
    kinds.append(methods)
    if cfg.method != "full" and cfg.lora.r > 64:
        kinds.append([(f"lora.r {cfg.lora.r} -> {rank}", {"lora.r": rank}) for rank in (64, 16)])
    kinds.append([(f"data.max_length {cfg.data.max_length} -> {shorter} "
                   "(longer rows are truncated)", {"data.max_length": shorter})
                  for shorter in (tokens // 2, tokens // 4) if shorter >= 128])
    together: dict[str, Any] = {}
    for options in kinds:
        if options:
            together.update(options[-1][1])
    if sum(map(bool, kinds)) > 1:
        kinds.append([("all of these together", together)])

    fitting: list[Suggestion] = []
    tried: list[Suggestion] = []
    for options in kinds:
        if fitting and options and options[0][1] is together:
            break  # single changes suffice
        for text, changes in options:
            changed = apply_changes(cfg, changes)
            est = estimate_memory(model_config, changed, min(tokens, changed.data.max_length),
                                  device, available, suggest=False)
            suggestion = Suggestion(text, changes, est.total_bytes, est.verdict)
            tried.append(suggestion)
            if est.verdict == "fits":
                fitting.append(suggestion)
                break  # the least drastic of this kind is enough
    return fitting or sorted(tried, key=lambda s: s.total_bytes)[:2]


def apply_changes(cfg: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with dotted fields set (``{"optim.gradient_checkpointing": True}``)."""
    new = RunConfig.from_dict(cfg.to_dict())
    for dotted, value in changes.items():
        target: Any = new
        *sections, name = dotted.split(".")
        for section in sections:
            target = getattr(target, section)
        setattr(target, name, value)
    return new


def has_bitsandbytes() -> bool:
    """Whether bitsandbytes (needed for QLoRA) is installed; does not import it."""
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


# --- formatting ----------------------------------------------------------------------------


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def format_count(n: int) -> str:
    """``134.5M`` / ``1.24B`` / ``921.6K``."""
    return _count(n)


def _dtype(nbytes: int) -> str:
    return {2: "bf16/fp16", 4: "fp32"}.get(nbytes, f"{nbytes}-byte")


def format_estimate(estimate: MemoryEstimate) -> str:
    """The breakdown as plain text for the CLI: parts, total, verdict, suggestions."""
    e = estimate
    where = "per GPU" if e.device == "cuda" else "on CPU"
    lines = [
        f"Method {e.method}, {e.precision}, micro-batch {e.micro_batch} x {e.tokens_per_row} "
        f"tokens, effective batch {e.effective_batch} ({e.num_processes} process"
        f"{'es' if e.num_processes != 1 else ''})",
        f"Trainable parameters {format_count(e.params.trainable)} of "
        f"{format_count(e.params.total)} ({e.params.share:.2%})",
        "",
        f"Estimated peak memory {where}:",
    ]
    width = max(len(p.name) for p in e.parts)
    for p in e.parts:
        lines.append(f"  {p.name:<{width}}  {format_bytes(p.bytes, 2):>10}  {p.detail}")
    lines.append(f"  {'total':<{width}}  {format_bytes(e.total_bytes, 2):>10}")
    lines.append("")
    note = f"  [{e.available.note}]" if e.available.note else ""
    lines.append(f"Available: {e.available.describe()}{note}")
    lines.append(f"Verdict: {e.verdict.upper()} ({e.share:.0%} of available)")
    if e.suggestions:
        lines.append("To make it fit:")
        for s in e.suggestions:
            lines.append(f"  - {s.text}: {format_bytes(s.total_bytes, 2)} ({s.verdict})")
    return "\n".join(lines)
