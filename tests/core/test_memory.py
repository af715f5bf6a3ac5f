"""Parameter counts and the memory estimate, checked against real small models."""

from __future__ import annotations


import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig


from fakes import FakeDevice, FakeNvml, FakeNVMLError, full_gpu, no_gpu  # noqa: E402

from core import memory  # noqa: E402
from core.config import RunConfig  # noqa: E402
from core.machine import GIB, GPUS_HIDDEN, system_total_bytes  # noqa: E402


def tiny_config(tied: bool = True, layers: int = 2) -> LlamaConfig:
    """A Llama small enough to build with real weights in milliseconds."""
    return LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                       tie_word_embeddings=tied, max_position_embeddings=512)


def smollm2_config() -> LlamaConfig:
    """The bundled SmolLM2-135M's shape (no weights needed for the estimate)."""
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                       num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                       tie_word_embeddings=True, max_position_embeddings=8192)


def run_config(method: str = "lora", batch: int = 4, max_length: int = 512, **lora) -> RunConfig:
    config = RunConfig(method=method)
    config.optim.per_device_train_batch_size = batch
    config.data.max_length = max_length
    for key, value in lora.items():
        setattr(config.lora, key, value)
    return config


def system(gib: float) -> memory.AvailableMemory:
    return memory.AvailableMemory(int(gib * GIB), "system", "system memory")


def gpu(gib: float) -> memory.AvailableMemory:
    return memory.AvailableMemory(int(gib * GIB), "gpu", "Fake GPU")


# --- counting ------------------------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj",
                                                           "gate_proj", "up_proj", "down_proj"]])
def test_lora_count_matches_a_real_peft_model(tied, targets):
    cfg = tiny_config(tied)
    real = get_peft_model(AutoModelForCausalLM.from_config(cfg),
                          LoraConfig(r=8, lora_alpha=16, target_modules=targets,
                                     task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in real.parameters() if p.requires_grad)
    total = sum(p.numel() for p in real.parameters())

    counted = memory.count_parameters(cfg, run_config(r=8, target_modules=targets))

    assert counted == memory.ParamCount(trainable, total)
    assert 0 < counted.share < 1


@pytest.mark.parametrize("model, targets", [
    ("llama", ["embed_tokens", "lm_head", "q_proj"]),  # embeddings and the head, untied
    ("gpt2", ["c_attn", "c_proj"]),                   # GPT-2's Conv1D layers
])
def test_lora_count_of_embeddings_head_and_conv1d_matches_peft(model, targets):
    from transformers import GPT2Config

    cfg = tiny_config(tied=False) if model == "llama" else GPT2Config(
        vocab_size=320, n_embd=64, n_layer=2, n_head=4, n_positions=128)
    real = get_peft_model(AutoModelForCausalLM.from_config(cfg),
                          LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in real.parameters() if p.requires_grad)
    total = sum(p.numel() for p in real.parameters())
    assert memory.count_parameters(cfg, run_config(r=4, target_modules=targets)) == \
        memory.ParamCount(trainable, total)


def test_an_absurd_rank_is_counted_without_building_layers(monkeypatch):
    """``lora.r: 100000000`` (or 10**29) used to build real LoRA layers of that rank."""
    import peft

    def refuse(*args, **kwargs):
        raise AssertionError("count_parameters built a PEFT model")

    monkeypatch.setattr(peft, "get_peft_model", refuse)
    cfg = smollm2_config()
    small = memory.count_parameters(cfg, run_config(r=8))
    for rank in (100_000_000, 10**29):
        count = memory.count_parameters(cfg, run_config(r=rank))
        assert count.trainable == small.trainable // 8 * rank
        assert count.total == small.total - small.trainable + count.trainable
    est = memory.estimate_memory(cfg, run_config(r=100_000_000), 512, "cuda", gpu(80))
    assert est.verdict == "will not fit"
    assert est.suggestions[0].text == "lora.r 100000000 -> 64" and est.suggestions[0].verdict == "fits"
    text = memory.format_estimate(est)
    assert f"Trainable parameters {memory.format_count(est.params.trainable)} of" in text
    assert "Verdict: WILL NOT FIT" in text and "lora.r 100000000 -> 64" in text


def test_full_and_qlora_counts():
    cfg = tiny_config(tied=False)
    real_total = sum(p.numel() for p in AutoModelForCausalLM.from_config(cfg).parameters())
    full = memory.count_parameters(cfg, run_config("full"))
    assert full == memory.ParamCount(real_total, real_total)
    lora = memory.count_parameters(cfg, run_config("lora"))
    assert memory.count_parameters(cfg, run_config("qlora")) == lora


def test_bundled_shape_counts_tied_embeddings_once():
    count = memory.count_parameters(smollm2_config(), run_config("full"))
    assert count.total == 134_515_008  # SmolLM2-135M's published size


def test_unknown_target_modules_names_what_exists():
    cfg = tiny_config()
    assert memory.unknown_target_modules(cfg, ["q_proj", "self_attn.v_proj"]) == []
    assert memory.unknown_target_modules(cfg, ["qkv", "q_proj", "mlp"]) == ["qkv", "mlp"]
    problem = memory.target_modules_problem(cfg, ["qkv"])
    assert problem is not None and problem.field == "lora.target_modules"
    assert "'qkv' is not in this model" in problem.message
    assert problem.fix.startswith("Use some of: q_proj, k_proj, v_proj, o_proj, gate_proj")
    assert memory.target_modules_problem(cfg, ["down_proj"]) is None


# --- activations against autograd ----------------------------------------------------------


def saved_bytes(cfg: LlamaConfig, rc: RunConfig, tokens: int) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one bf16-autocast forward."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    if rc.method != "full":
        model = get_peft_model(model, LoraConfig(
            r=rc.lora.r, lora_alpha=rc.lora.lora_alpha, lora_dropout=rc.lora.lora_dropout,
            target_modules=rc.lora.target_modules, task_type="CAUSAL_LM"))
    model.train()
    backbone = model.get_base_model().model if rc.method != "full" else model.model
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, cfg.vocab_size, (2, tokens // 2))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            backbone(input_ids=ids)
    return sum(seen.values())


@pytest.mark.parametrize("method,targets,dropout", [
    ("lora", ["q_proj", "k_proj", "v_proj", "o_proj"], 0.05),
    ("lora", ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"], 0.05),
    ("lora", ["q_proj", "v_proj"], 0.0),
    ("full", [], 0.0),
])
def test_layer_activations_match_autograd(method, targets, dropout):
    """Per token and layer, the formula is within 12% of what autograd saves, never under 5%."""
    rc = run_config(method, target_modules=targets or ["q_proj"], lora_dropout=dropout)
    per_layer_token = []
    for layers in (2, 4):
        cfg = tiny_config(layers=layers)
        cfg.hidden_size, cfg.intermediate_size = 128, 384
        grow = saved_bytes(cfg, rc, 256) - saved_bytes(cfg, rc, 128)
        per_layer_token.append(grow / 128)
    measured = (per_layer_token[1] - per_layer_token[0]) / 2
    cfg = tiny_config(layers=4)
    cfg.hidden_size, cfg.intermediate_size = 128, 384
    predicted = memory._layer_activation_bytes(memory.model_shape(cfg), rc, 2, "cpu")
    assert 0.95 * measured <= predicted <= 1.12 * measured


# --- the estimate --------------------------------------------------------------------------


def test_parts_grow_with_batch_and_length():
    cfg = smollm2_config()
    previous = None
    for batch, tokens in [(1, 128), (2, 128), (2, 512), (8, 512), (8, 2048)]:
        est = memory.estimate_memory(cfg, run_config(batch=batch, max_length=2048), tokens,
                                     "cpu", system(64), suggest=False)
        parts = {p.name: p.bytes for p in est.parts}
        if previous is not None:
            assert parts["activations"] > previous["activations"]
            assert parts["logits"] >= previous["logits"]
            assert parts["base weights"] == previous["base weights"]
            assert sum(parts.values()) > sum(previous.values())
        previous = parts


def test_precision_and_method_shape_the_parts(monkeypatch):
    from core import machine

    monkeypatch.setattr(machine, "cpu_bf16", lambda: True)  # an AVX-512 CPU: bf16 autocast
    cfg = smollm2_config()

    def parts(method: str, device: str) -> dict[str, int]:
        avail = gpu(80) if device == "cuda" else system(64)
        est = memory.estimate_memory(cfg, run_config(method), 256, device, avail, suggest=False)
        return {p.name: p.bytes for p in est.parts}

    lora_gpu, lora_cpu = parts("lora", "cuda"), parts("lora", "cpu")
    assert lora_gpu["base weights"] * 2 == lora_cpu["base weights"]  # bf16 on GPU, fp32 on CPU
    assert "autocast weight copies" not in lora_gpu and "autocast weight copies" in lora_cpu
    qlora = parts("qlora", "cuda")
    assert qlora["base weights"] < lora_gpu["base weights"] / 3
    full = parts("full", "cuda")
    assert full["trainable state"] > 50 * lora_gpu["trainable state"]
    assert lora_gpu["runtime"] >= memory.CUDA_CONTEXT_BYTES


def test_gradient_checkpointing_cuts_activations():
    cfg = smollm2_config()
    plain = run_config(batch=8, max_length=1024)
    checkpointed = run_config(batch=8, max_length=1024)
    checkpointed.optim.gradient_checkpointing = True
    a = memory.estimate_memory(cfg, plain, 1024, "cuda", gpu(80), suggest=False)
    b = memory.estimate_memory(cfg, checkpointed, 1024, "cuda", gpu(80), suggest=False)
    act = {e: next(p.bytes for p in e.parts if p.name == "activations") for e in (a, b)}
    assert act[b] < act[a] / 5


def test_longest_tokens_is_capped_and_effective_batch_counts_processes():
    rc = run_config(batch=4, max_length=256)
    rc.optim.gradient_accumulation_steps = 3
    rc.num_processes = 2
    est = memory.estimate_memory(smollm2_config(), rc, 10_000, "cuda", gpu(80))
    assert est.tokens_per_row == 256
    assert est.effective_batch == 4 * 3 * 2


def test_verdict_thresholds():
    assert memory.verdict_for(80, 100) == "fits"
    assert memory.verdict_for(90, 100) == "tight"
    assert memory.verdict_for(101, 100) == "will not fit"
    assert memory.verdict_for(1, 0) == "will not fit"


def test_fits_without_suggestions():
    est = memory.estimate_memory(smollm2_config(), run_config(), 512, "cuda", gpu(80))
    assert est.verdict == "fits" and est.suggestions == ()


def test_will_not_fit_suggests_changes_that_fit():
    cfg = smollm2_config()
    rc = run_config("full", batch=16, max_length=2048)
    est = memory.estimate_memory(cfg, rc, 2048, "cuda", gpu(8))
    assert est.verdict == "will not fit"
    assert est.suggestions
    assert all(s.verdict == "fits" for s in est.suggestions)
    for s in est.suggestions:  # each one re-estimated: applying it gives the same figure
        changed = memory.apply_changes(rc, s.changes)
        again = memory.estimate_memory(cfg, changed, min(2048, changed.data.max_length), "cuda",
                                       gpu(8), suggest=False)
        assert again.total_bytes == s.total_bytes
        if "optim.per_device_train_batch_size" in s.changes:
            o = changed.optim
            assert o.per_device_train_batch_size * o.gradient_accumulation_steps == 16


def test_hopeless_run_still_gets_the_best_suggestions():
    est = memory.estimate_memory(smollm2_config(), run_config("full", batch=8), 512, "cuda",
                                 gpu(0.5))
    assert est.verdict == "will not fit"
    assert 1 <= len(est.suggestions) <= 2
    assert all(s.verdict == "will not fit" for s in est.suggestions)


def test_apply_changes_copies():
    rc = run_config()
    changed = memory.apply_changes(rc, {"optim.gradient_checkpointing": True, "method": "qlora"})
    assert changed.optim.gradient_checkpointing and changed.method == "qlora"
    assert not rc.optim.gradient_checkpointing and rc.method == "lora"


def test_format_estimate_lists_parts_and_verdict():
    est = memory.estimate_memory(smollm2_config(), run_config("full", batch=16, max_length=2048),
                                 2048, "cpu", system(4))
    text = memory.format_estimate(est)
    for needle in ("base weights", "activations", "logits", "runtime", "total",
                   "Verdict: WILL NOT FIT", "To make it fit:", "effective batch 16"):
        assert needle in text


# --- available memory ----------------------------------------------------------------------


def broken(nvml, error: str):
    """``nvml`` whose memory reading fails with ``error``."""

    def fail(handle):
        raise FakeNVMLError(error)

    nvml.nvmlDeviceGetMemoryInfo = fail
    return nvml


class Turing(FakeNvml):
    """A GPU of compute capability 7.5 (a T4): no native bf16."""

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return (7, 5)


def test_verdict_compares_with_free_gpu_memory():
    """Other processes hold 72 of the GPU's 80 GiB: a run that would fit the total does not."""
    got = memory.available_memory(full_gpu(pid=1, used_gib=72.0), {})
    assert (got.source, got.bytes, got.total_bytes, got.label, got.note) == (
        "gpu", 8 * GIB, 80 * GIB, "GPU 0", "")
    est = memory.estimate_memory(smollm2_config(), run_config("full", batch=8, max_length=1024),
                                 1024, "auto", got, suggest=False)
    assert est.device == "cuda" and 8 * GIB < est.total_bytes < 0.85 * 80 * GIB
    assert est.verdict == "will not fit"
    assert ("Available: free on GPU 0: 8.00 GiB of 80.00 GiB (NVIDIA H100 80GB HBM3)"
            in memory.format_estimate(est))


@pytest.mark.parametrize("nvml,environ,reason", [
    (no_gpu(), {}, "no NVIDIA driver (libnvidia-ml not found)"),
    (full_gpu(pid=1), {"CUDA_VISIBLE_DEVICES": ""}, GPUS_HIDDEN),
    (broken(full_gpu(pid=1), "GPU is lost"), {}, "GPU is lost"),
])
def test_no_gpu_compares_with_available_system_memory(nvml, environ, reason):
    got = memory.available_memory(nvml, environ)
    assert got.source == "system"
    assert got.note == f"no GPU: {reason}; compared with available system memory"
    assert got.total_bytes == system_total_bytes()
    assert 0 < got.bytes < got.total_bytes  # MemAvailable: less than what is installed
    est = memory.estimate_memory(tiny_config(), run_config(), 64, "auto", got)
    assert est.device == "cpu"
    assert got.note in memory.format_estimate(est)


def test_estimate_precision_follows_the_gpus_bf16_support():
    t4 = memory.available_memory(Turing([FakeDevice(name="Tesla T4", total=16 * GIB, used=0)]), {})
    assert t4.bf16 is False

    def precision(device: str, available: memory.AvailableMemory) -> str:
        return memory.estimate_memory(tiny_config(), run_config(), 64, device, available,
                                      suggest=False).precision

    assert precision("auto", t4) == "fp16"
    from core.machine import cpu_bf16

    assert precision("cpu", t4) == ("bf16" if cpu_bf16() else "fp32")  # the CPU's own rule
    assert precision("auto", gpu(80)) == "bf16"  # NVML did not say: an Ampere or later GPU


def test_preference_runs_count_both_answers_and_a_full_dpo_reference():
    cfg = smollm2_config()

    def parts(method: str, objective: str) -> dict[str, int]:
        run = run_config(method)
        run.objective = objective
        est = memory.estimate_memory(cfg, run, 256, "cuda", gpu(80), suggest=False)
        return {p.name: p.bytes for p in est.parts}

    sft, dpo = parts("lora", "sft"), parts("lora", "dpo")
    assert dpo["activations"] > 1.9 * sft["activations"]  # chosen and rejected together
    assert "DPO reference model" not in dpo  # LoRA: the starting adapter is the reference
    full = parts("full", "dpo")
    assert full["DPO reference model"] == full["base weights"] + full["embeddings and head"]
    assert "DPO reference model" not in parts("full", "orpo")  # ORPO needs no reference
