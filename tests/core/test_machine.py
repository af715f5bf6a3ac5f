"""core.machine: one answer about GPUs, memory and precision, against fake NVML devices."""

from __future__ import annotations


import pytest
import torch
from transformers import LlamaConfig


from fakes import FakeDevice, FakeNvml, full_gpu, mig_gpu, no_gpu  # noqa: E402

from core import machine, memory  # noqa: E402
from core.config import RunConfig  # noqa: E402
from core.detach import check_processes  # noqa: E402
from core.gpu import GpuMonitor  # noqa: E402
from core.machine import GIB, GPUS_HIDDEN, MIB, NoGpu  # noqa: E402

TINY = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


def two_gpus() -> FakeNvml:
    """GPU 0 (80 GiB, 40 used) and GPU 1 (24 GiB, 4 used), each with its UUID."""
    return FakeNvml([FakeDevice(name="GPU zero", uuid="GPU-aaaa"),
                     FakeDevice(name="GPU one", total=24 * GIB, used=4 * GIB, uuid="GPU-bbbb")])


@pytest.fixture
def cuda_in_torch(monkeypatch):
    """Torch says it has CUDA, as on a GPU machine (only for machine's own questions: peft and
    bitsandbytes would then load CUDA kernels)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("hidden", ["", "-1", "none", " "])
def test_hidden_gpus_mean_no_gpu_in_every_answer(hidden, monkeypatch):
    """With CUDA_VISIBLE_DEVICES="" the device, the count, cuda:0, the gauge, the estimate and
    the launcher all say: no GPU, although NVML and torch see one."""
    env = {"CUDA_VISIBLE_DEVICES": hidden}
    nvml = two_gpus()
    assert machine.cuda_visible_entries(env) == []
    assert machine.visible_device(env) is None
    assert machine.visible_gpus(env, nvml) == [] and machine.visible_gpu_count(env, nvml) == 0
    with monkeypatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: True)
        assert machine.training_device(env) == "cpu"
    with pytest.raises(NoGpu, match=GPUS_HIDDEN):
        machine.gpu_memory(env, nvml)
    sample = GpuMonitor(nvml=nvml, environ=dict(env)).sample()
    assert not sample.available and sample.reason == GPUS_HIDDEN
    available = memory.available_memory(nvml, env)
    assert available.source == "system" and GPUS_HIDDEN in available.note
    assert memory.estimate_memory(TINY, RunConfig(), 64, "auto", available).device == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert check_processes(RunConfig(num_processes=2)) == 0  # gloo on CPU, no refusal


def test_unset_means_every_nvml_device(cuda_in_torch):
    nvml = FakeNvml([FakeDevice() for _ in range(3)])
    assert machine.cuda_visible_entries({}) is None
    assert machine.visible_gpus({}, nvml) == [0, 1, 2]
    assert machine.visible_gpu_count({}, nvml) == 3
    assert machine.visible_device({}) == 0
    assert machine.training_device({}) == "cuda"
    assert machine.gpu_memory({}, nvml).label == "GPU 0"


def test_no_driver_means_no_gpu():
    assert machine.visible_gpu_count({}, no_gpu()) == 0
    with pytest.raises(NoGpu, match=r"no NVIDIA driver \(libnvidia-ml not found\)"):
        machine.gpu_memory({}, no_gpu())


def test_first_visible_gpu_is_cuda_0():
    env = {"CUDA_VISIBLE_DEVICES": "1,0"}
    assert machine.visible_gpus(env) == [1, 0]
    assert machine.visible_device(env) == 1
    got = machine.gpu_memory(env, two_gpus())
    assert (got.name, got.label, got.free_bytes, got.total_bytes) == ("GPU one", "GPU 1", 20 * GIB, 24 * GIB)


def test_uuids_name_gpus_and_mig_slices():
    env = {"CUDA_VISIBLE_DEVICES": "GPU-bbbb,GPU-aaaa"}
    assert machine.visible_gpus(env) == ["GPU-bbbb", "GPU-aaaa"]
    assert machine.gpu_memory(env, two_gpus()).name == "GPU one"
    mig = machine.gpu_memory({"CUDA_VISIBLE_DEVICES": "MIG-22222222-2222-2222-2222-222222222222"},
                             mig_gpu(pid=1))
    assert mig.name == "NVIDIA A100-SXM4-80GB MIG 3g.40gb" and mig.label == "GPU 0"
    assert (mig.free_bytes, mig.total_bytes) == (39 * GIB, 40 * GIB)


def test_entries_are_read_like_cuda_up_to_the_first_bad_one():
    assert machine.visible_gpus({"CUDA_VISIBLE_DEVICES": " 2, 3 "}) == [2, 3]
    assert machine.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,1"}) == [0]
    assert machine.visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aaaa,junk,1"}) == ["GPU-aaaa"]


def test_gpu_memory_is_what_every_process_left_free():
    got = machine.gpu_memory({}, full_gpu(pid=1, used_gib=72.0))
    assert (got.free_bytes, got.total_bytes, got.bf16) == (8 * GIB, 80 * GIB, None)


def test_missing_device_and_nvml_errors_are_no_gpu():
    with pytest.raises(NoGpu, match=r"device 3 does not exist \(NVML sees 2\)"):
        machine.gpu_memory({"CUDA_VISIBLE_DEVICES": "3"}, two_gpus())
    with pytest.raises(NoGpu, match="Not Found"):
        machine.gpu_memory({"CUDA_VISIBLE_DEVICES": "GPU-ffff"}, two_gpus())
    with pytest.raises(NoGpu, match="NVML reports no devices"):
        machine.gpu_memory({}, FakeNvml([]))


def test_pci_bus_order_is_set_unless_chosen():
    env: dict[str, str] = {}
    assert machine.ensure_pci_bus_order(env) and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert not machine.ensure_pci_bus_order({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})


def test_system_memory_total_available_and_this_process():
    total, free = machine.system_total_bytes(), machine.system_available_bytes()
    assert total and free and 0 < free < total
    rss = machine.process_rss_bytes()
    assert rss and 10 * MIB < rss < total  # torch is loaded: more than a bare interpreter


def test_auto_precision_is_one_rule(monkeypatch):
    assert machine.resolve_precision("fp32", "cuda", bf16=True) == "fp32"  # an explicit choice stays
    # a CPU computes in bf16 only with oneDNN's kernels (AVX-512): emulated, it crawls
    assert machine.resolve_precision("auto", "cpu") == ("bf16" if machine.cpu_bf16() else "fp32")
    monkeypatch.setattr(machine, "cpu_bf16", lambda: True)
    assert machine.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(machine, "cpu_bf16", lambda: False)
    assert machine.resolve_precision("auto", "cpu") == "fp32"
    assert machine.resolve_precision("auto", "cuda", bf16=True) == "bf16"
    assert machine.resolve_precision("auto", "cuda", bf16=False) == "fp16"
    assert machine.resolve_precision("auto", "mps") == "fp32"


@pytest.mark.parametrize("native,precision", [(True, "bf16"), (False, "fp16")])
def test_gpu_bf16_counts_only_when_native(native, precision, monkeypatch, cuda_in_torch):
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert machine.resolve_precision("auto", "cuda") == precision
    assert asked == [False]  # torch's emulated bf16 on a pre-Ampere GPU is slow: not support


def test_format_bytes():
    assert machine.format_bytes(None) == "n/a"
    assert machine.format_bytes(512) == "512 B"
    assert machine.format_bytes(456 * MIB + 300_000) == "456 MiB"
    assert machine.format_bytes(3 * GIB // 2) == "1.5 GiB"
    assert machine.format_bytes(3 * GIB // 2, 2) == "1.50 GiB"
    assert machine.format_bytes(-405 * MIB) == "-405 MiB"
    assert machine.format_bytes(-3 * GIB // 2, 2) == "-1.50 GiB"
