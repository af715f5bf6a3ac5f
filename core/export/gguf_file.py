"""GGUF: the merged model in one file for llama.cpp, LM Studio and Ollama.

Written with the ``gguf`` package (llama.cpp's own writer, tensor-name maps and quantizers)
for Llama-family models with a byte-level BPE tokenizer (GPT-2 style, as SmolLM and Llama 3
use). The file carries the chat template and the end-of-turn token, and an Ollama
``Modelfile`` is written beside it. Other architectures and tokenizers are refused by name:
llama.cpp's ``convert_hf_to_gguf.py`` knows many more, and reads the merged export.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.export.card import base_model_hub_id, model_card, summarize_run
from core.export.chat import ChatFormat, ChatTemplateError, chat_format, special_tokens_in
from core.export.common import ExportError, Progress, atomic_dir, no_progress
from core.export.merge import base_path, base_dtype, load_merged
from core.export.ollama import MODELFILE, modelfile, ollama_commands, ollama_name
from core.export.source import ExportSource, resolve_source

OUTTYPES = ("auto", "f32", "f16", "bf16", "q8_0")
"""``--outtype`` values: ``auto`` keeps the merged model's dtype; ``q8_0`` is 8-bit blocks."""

MODEL_TYPES = ("llama",)
"""``config.model_type`` values written as GGUF architecture ``llama``."""

_OUTTYPE_OF_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
_DTYPE_OF_OUTTYPE = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "q8_0": "float32"}

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""The pre-tokenizer split of Llama 3's tokenizer.json (llama.cpp calls it ``llama-bpe``)."""

CONVERTER_FIX = ("export the merged model (--merge) and convert it with llama.cpp's "
                 "convert_hf_to_gguf.py, which knows more models")


@dataclass(frozen=True)
class GGUFExport:
    """What :func:`export_gguf` wrote."""

    out: Path
    """The folder: the GGUF, the Modelfile and a model card."""
    gguf: Path
    modelfile: Path
    outtype: str
    ollama_name: str
    commands: list[str] = field(default_factory=list)
    """The two commands that load the GGUF into Ollama and chat with it."""
    note: str = ""


# --- what can be converted ---------------------------------------------------------------


def check_supported(source: ExportSource) -> None:
    """Refuse, before any loading, a model this writer cannot convert."""
    from transformers import AutoConfig

    cfg = source.config.model
    where = base_path(source) if source.is_adapter else source.weights
    config = AutoConfig.from_pretrained(where, trust_remote_code=cfg.trust_remote_code)
    model_type = getattr(config, "model_type", "?")
    if model_type not in MODEL_TYPES:
        arch = ", ".join(getattr(config, "architectures", None) or [model_type])
        raise ExportError(f"GGUF export supports Llama-family models (model_type llama); "
                          f"{cfg.name_or_path} is {model_type} ({arch}). Fix: {CONVERTER_FIX}.")
    rope = _rope(config)
    if rope.get("rope_type", "default") not in ("default", "linear"):
        raise ExportError(f"GGUF export does not write {rope['rope_type']!r} RoPE scaling "
                          f"({cfg.name_or_path}). Fix: {CONVERTER_FIX}.")


def _rope(config: Any) -> dict[str, Any]:
    """RoPE settings in one shape across transformers versions."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def _pre_tokenizer(spec: dict[str, Any]) -> str | None:
    """llama.cpp's name for how this tokenizer splits text before BPE, or None if unknown."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and (steps[0].get("pattern") or {}).get("Regex") == LLAMA3_SPLIT:
        return "llama-bpe"
    return None


# --- the file ----------------------------------------------------------------------------


def _vocab(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int], list[str], str]:
    """Tokens, token types, merges and pre-tokenizer name of a byte-level BPE tokenizer."""
    import gguf

    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback") or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ExportError(f"GGUF export writes byte-level BPE tokenizers (GPT-2 style, as SmolLM "
                          f"and Llama 3 use); this one is {model.get('type', 'not a fast tokenizer')}"
                          f"{' with byte fallback (sentencepiece style)' if model.get('byte_fallback') else ''}. "
                          f"Fix: {CONVERTER_FIX}.")
    pre = _pre_tokenizer(spec)
    if pre is None:
        raise ExportError(f"GGUF export does not know this tokenizer's pre-tokenizer "
                          f"({json.dumps(spec.get('pre_tokenizer'))[:120]}), so llama.cpp would split "
                          f"text differently from training. Fix: {CONVERTER_FIX}.")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:  # embedding rows past the tokenizer (padded vocabularies)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    # Merges are "a b" strings or [a, b] pairs; GGUF stores strings (a space inside a part,
    # which byte-level vocabularies never have, is written as llama.cpp does).
    merges = [m if isinstance(m, str) else " ".join(p.replace(" ", "\u0120") for p in m)
              for m in model.get("merges", [])]
    return tokens, [int(t) for t in types], merges, pre


def _interleave_rope_rows(weight: Any, heads: int) -> Any:
    """Reorder q/k projection rows from transformers' rotate-half RoPE layout (the two halves
    of each head) to llama.cpp's (adjacent pairs); transformers' GGUF loader undoes it."""
    rows = weight.shape[0]
    return (weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _tensor_type(array: Any, outtype: str) -> Any:
    import gguf

    q = gguf.GGMLQuantizationType
    if array.ndim <= 1 or outtype == "f32":  # norms and biases stay f32, as llama.cpp keeps them
        return q.F32
    if outtype == "q8_0":
        return q.Q8_0 if array.shape[-1] % gguf.GGML_QUANT_SIZES[q.Q8_0][0] == 0 else q.F16
    return {"f16": q.F16, "bf16": q.BF16}[outtype]


def _encode(array: Any, qtype: Any) -> Any:
    import gguf
    import numpy as np

    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(array, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), qtype)


def write_gguf(model: Any, tokenizer: Any, path: Path, outtype: str, name: str,
               fmt: ChatFormat | None, base_hub_id: str | None = None,
               progress: Progress | None = None) -> None:
    """Write ``model`` (a merged transformers Llama) and ``tokenizer`` to the GGUF ``path``."""
    import gguf
    import numpy as np
    import torch

    progress = progress or no_progress
    config = model.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    rope = _rope(config)
    vocab_size = model.get_input_embeddings().weight.shape[0]
    tokens, token_types, merges, pre = _vocab(tokenizer, vocab_size)

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    if base_hub_id:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base_hub_id.split("/")[-1])
        writer.add_base_model_organization(0, base_hub_id.split("/")[0])
        writer.add_base_model_repo_url(0, f"https://huggingface.co/{base_hub_id}")
    writer.add_tags(["tunetop"])
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    writer.add_vocab_size(vocab_size)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    writer.add_file_type(file_type)
    if outtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    # Whether the tokenizer itself adds BOS/EOS (its chat template may write them as text).
    sample = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    writer.add_add_bos_token(bos is not None and bool(sample) and sample[0] == bos)
    writer.add_add_eos_token(eos is not None and bool(sample) and sample[-1] == eos)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    end_of_turn = special_tokens_in(fmt.assistant_suffix, tokenizer) if fmt else []
    if end_of_turn:
        writer.add_eot_token_id(tokenizer.convert_tokens_to_ids(end_of_turn[0]))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    planned: list[tuple[str, Any, Any]] = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when output.weight is absent
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"The model has a tensor GGUF has no name for: {hf_name}. Fix: {CONVERTER_FIX}.")
        planned.append((gguf_name, hf_name, tensor))
    total = sum(t.numel() for _, _, t in planned) or 1
    for gguf_name, _, tensor in planned:
        qtype = _tensor_type(tensor, outtype)
        shape = tuple(tensor.shape)
        nbytes = (int(np.prod(gguf.quant_shape_to_byte_shape(shape, qtype)))
                  if qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
                  else tensor.numel() * (4 if qtype == gguf.GGMLQuantizationType.F32 else 2))
        writer.add_tensor_info(gguf_name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    done = 0
    with torch.no_grad():
        for gguf_name, hf_name, tensor in planned:
            array = tensor.detach().to(torch.float32).cpu().numpy()
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                array = _interleave_rope_rows(array, heads)
            elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                array = _interleave_rope_rows(array, kv_heads)
            writer.write_tensor_data(_encode(array, _tensor_type(tensor, outtype)))
            done += tensor.numel()
            progress("writing the GGUF", done / total)
    writer.close()


# --- the export --------------------------------------------------------------------------


def export_gguf(run_dir: str | Path, out: str | Path, *, checkpoint: int | str | None = None,
                outtype: str = "auto", progress: Progress | None = None) -> GGUFExport:
    """Merge the run and write ``out``: a GGUF of the merged model, an Ollama Modelfile and a
    model card.

    ``outtype`` ``auto`` keeps the merged model's dtype (f32, bf16 or f16), so the GGUF computes
    what the merged model computes; ``q8_0`` stores 8-bit blocks (about a quarter of f32).
    """
    progress = progress or no_progress
    if outtype not in OUTTYPES:
        raise ExportError(f"--outtype {outtype!r} is unknown. Fix: use one of {', '.join(OUTTYPES)}.")
    source = resolve_source(run_dir, checkpoint)
    check_supported(source)
    if outtype == "auto":
        outtype = _OUTTYPE_OF_DTYPE.get(base_dtype(source), "f32")
    out = Path(out)
    name = ollama_name(source.run_dir.name if source.step is None else f"{source.run_dir.name}-{source.label}")
    with atomic_dir(out) as tmp:
        merged = load_merged(source, _DTYPE_OF_OUTTYPE[outtype], progress)
        try:
            fmt: ChatFormat | None = chat_format(merged.tokenizer)
            template_note = ""
        except ChatTemplateError as exc:
            fmt, template_note = None, (
                f"The chat template could not be written as an Ollama TEMPLATE ({exc}); Ollama "
                "uses the chat template inside the GGUF instead.")
        gguf_name = f"{name}-{outtype}.gguf"
        write_gguf(merged.model, merged.tokenizer, tmp / gguf_name, outtype, name, fmt,
                   base_model_hub_id(source.config.model.name_or_path), progress)
        stops = special_tokens_in((fmt.assistant_suffix + fmt.user_prefix) if fmt else "", merged.tokenizer)
        if merged.tokenizer.eos_token and merged.tokenizer.eos_token not in stops:
            stops.append(merged.tokenizer.eos_token)
        (tmp / MODELFILE).write_text(modelfile(gguf_name, fmt, stops), encoding="utf-8")
        commands = ollama_commands(str(out), name)
        note = " ".join(n for n in (merged.note, template_note) if n)
        usage = "\n".join([
            "```sh", f"cd {shlex.quote(str(out))}", *[c.replace(f" -f {out}/", " -f ") for c in commands],
            f"llama-cli -m {gguf_name} -cnv    # llama.cpp", "```"])
        model_card(summarize_run(source.run_dir, source.step), "gguf", note, usage=usage,
                   extra_tags=("gguf", "llama.cpp", "ollama")).save(tmp / "README.md")
    progress("done", 1.0)
    return GGUFExport(out=out, gguf=out / gguf_name, modelfile=out / MODELFILE, outtype=outtype,
                      ollama_name=name, commands=commands, note=note)
