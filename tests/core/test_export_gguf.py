"""GGUF export of a real run of the bundled model, read back by transformers (``gguf_file=``).

f32 keeps the merged model's dtype, so greedy output is equal token for token. q8_0 stores
8-bit blocks; its stated tolerance, on the logits of the merged model's greedy continuations
of the same prompts: relative L2 error under 6%, top-1 agreement on at least 90% of positions,
no next-token probability off by more than 0.15 (measured: 2.4-3.5%, 96-98%, 0.06-0.08).
"""

from __future__ import annotations

import pytest

from core.export import ExportError, export_gguf, export_merged

PROMPTS = ("My router is broken", "Order 4417 arrived damaged, I want a refund", "Hi")


@pytest.fixture(scope="module")
def merged(bundled_run, tmp_path_factory):
    """The merged export (transformers), the reference a GGUF must compute like."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = export_merged(bundled_run, tmp_path_factory.mktemp("merged") / "merged")
    return AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)


def _prompt_ids(tokenizer, prompt):
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, return_tensors="pt")["input_ids"]


def _greedy(model, ids):
    import torch

    with torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                              do_sample=False)[0]


@pytest.mark.slow
def test_f32_gguf_loads_in_transformers_and_greedy_output_equals_the_merged_model(bundled_run, merged, tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = merged
    phases = []
    result = export_gguf(bundled_run, tmp_path / "gguf", outtype="f32",
                         progress=lambda p, f: phases.append((p, f)))
    assert result.gguf.name == "bundled-lora-f32.gguf" and result.outtype == "f32"
    assert ("writing the GGUF", 1.0) in phases
    reader = gguf.GGUFReader(result.gguf)
    fields = {k: reader.fields[k].contents() for k in (
        "general.architecture", "tokenizer.ggml.model", "tokenizer.chat_template",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "general.base_model.0.repo_url")}
    assert fields["general.architecture"] == "llama" and fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["general.base_model.0.repo_url"].endswith("HuggingFaceTB/SmolLM2-135M-Instruct")

    loaded = AutoModelForCausalLM.from_pretrained(result.out, gguf_file=result.gguf.name)
    loaded_tokenizer = AutoTokenizer.from_pretrained(result.out, gguf_file=result.gguf.name)
    for prompt in PROMPTS:
        ids = _prompt_ids(tokenizer, prompt)
        assert _prompt_ids(loaded_tokenizer, prompt).tolist() == ids.tolist()
        assert _greedy(loaded, ids).tolist() == _greedy(model, ids).tolist(), prompt

    modelfile = result.modelfile.read_text()
    assert modelfile.startswith("FROM ./bundled-lora-f32.gguf\n")
    assert 'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n' in modelfile
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert result.commands == [f"ollama create bundled-lora -f {result.out}/Modelfile", "ollama run bundled-lora"]


@pytest.mark.slow
def test_q8_0_gguf_from_the_command_line_is_a_quarter_of_f32_and_its_logits_stay_within_tolerance(
        bundled_run, merged, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from tui.cli import main as cli_main

    model, tokenizer = merged
    assert cli_main(["export", str(bundled_run), "--gguf", "--outtype", "q8_0", "--out", str(tmp_path / "q8")]) == 0
    printed = capsys.readouterr().out
    assert "exported GGUF (q8_0" in printed and "ollama create bundled-lora -f" in printed
    gguf_file = tmp_path / "q8" / "bundled-lora-q8_0.gguf"
    params = sum(p.numel() for p in model.parameters())
    assert gguf_file.stat().st_size < params * 4 * 0.3  # 34 bytes per 32 weights, plus f32 norms
    loaded = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    for prompt in PROMPTS:
        sequence = _greedy(model, _prompt_ids(tokenizer, prompt))[None]
        with torch.no_grad():
            want, got = model(sequence).logits[0], loaded(sequence).logits[0]
        relative = ((got - want).norm() / want.norm()).item()
        top1 = (got.argmax(-1) == want.argmax(-1)).float().mean().item()
        prob = (got.softmax(-1) - want.softmax(-1)).abs().max().item()
        assert relative < 0.06 and top1 >= 0.9 and prob < 0.15, (prompt, relative, top1, prob)


def test_the_modelfile_template_renders_what_the_chat_template_renders(bundled_run):
    from core.export.chat import chat_format
    from core.export.merge import load_tokenizer_of
    from core.export.ollama import go_template
    from core.export.source import resolve_source
    from core.models import CHATML_TEMPLATE

    tokenizer = load_tokenizer_of(resolve_source(bundled_run))
    conversations = [
        [{"role": "user", "content": "Where is my order?"}],
        [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "Refund 12"},
         {"role": "assistant", "content": '{"action": "refund"}'}, {"role": "user", "content": "Thanks"}],
    ]
    for template in (tokenizer.chat_template, CHATML_TEMPLATE):
        tokenizer.chat_template = template
        fmt = chat_format(tokenizer)
        for messages in conversations:
            assert fmt.render(messages) == tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True)
    assert fmt.default_system is None  # plain ChatML adds none
    assert go_template(fmt).count("{{ .Content }}") == 2


def test_other_architectures_are_refused_by_name_with_the_fix(bundled_dir, tmp_path):
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from core.config import RunConfig

    base = tmp_path / "qwen"
    Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(base)
    AutoTokenizer.from_pretrained(bundled_dir).save_pretrained(base)
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    config = RunConfig()
    config.model.name_or_path = str(base)
    config.save(run / "config.yaml")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (run / "final" / name).write_text("{}")
    with pytest.raises(ExportError, match=r"Llama-family.*is qwen2 \(Qwen2ForCausalLM\).*convert_hf_to_gguf\.py"):
        export_gguf(run, tmp_path / "out")
    from core.export import OUTTYPES
    from tui.cli.export import OUTTYPES as CLI_OUTTYPES

    assert CLI_OUTTYPES == OUTTYPES  # the parser's copy, kept light
    with pytest.raises(ExportError, match="--outtype 'q4' is unknown"):
        export_gguf(run, tmp_path / "out", outtype="q4")
    assert not (tmp_path / "out").exists()
