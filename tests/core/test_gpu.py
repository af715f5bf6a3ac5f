"""GpuMonitor against fake NVML devices: full GPU, MIG, containers, no GPU, failures."""

from __future__ import annotations

import os


from fakes import FakeDevice, FakeNvml, FakeNVMLError, container_gpu, full_gpu, mig_gpu, no_gpu  # noqa: E402

from core.gpu import GpuMonitor, GpuSample  # noqa: E402
from core.machine import GIB, GPUS_HIDDEN, MIB, system_total_bytes  # noqa: E402

PID = 4242


def monitor(nvml: FakeNvml, **env: str) -> GpuMonitor:
    return GpuMonitor(pid=PID, nvml=nvml, environ=dict(env))


def test_full_gpu_reports_memory_share_and_sensors():
    sample = monitor(full_gpu(PID, used_gib=72.0, process_gib=70.0)).sample()
    assert sample.available
    assert sample.name == "NVIDIA H100 80GB HBM3"
    assert sample.used_bytes == 72 * GIB and sample.total_bytes == 80 * GIB
    assert sample.process_bytes == 70 * GIB
    assert sample.utilization_percent == 93
    assert sample.temperature_c == 61
    assert sample.power_watts == 450.0 and sample.power_limit_watts == 700.0
    assert sample.level == "warning"  # 90% used
    assert sample.system_total_bytes and sample.system_total_bytes > 0


def test_levels_follow_the_used_share():
    assert monitor(full_gpu(PID, used_gib=40.0)).sample().level == "ok"
    assert monitor(full_gpu(PID, used_gib=77.0)).sample().level == "critical"


def test_mig_slice_is_sampled_with_parent_sensors_and_no_process_figure():
    sample = monitor(mig_gpu(PID)).sample()
    assert sample.available and sample.mig
    assert "MIG 3g.40gb" in sample.name and "A100" in sample.name
    assert sample.total_bytes == 40 * GIB and sample.used_bytes == 12 * GIB
    assert sample.process_bytes is None  # MIG: usedGpuMemory not available
    assert sample.utilization_percent is None  # not supported on a slice
    assert sample.temperature_c == 61  # from the parent GPU


def test_mig_slice_chosen_by_uuid_in_cuda_visible_devices():
    sample = monitor(mig_gpu(PID), CUDA_VISIBLE_DEVICES="MIG-22222222-2222-2222-2222-222222222222").sample()
    assert sample.mig and sample.used_bytes == 1 * GIB
    assert sample.index == 0


def test_container_without_per_process_figures_says_none():
    sample = monitor(container_gpu()).sample()
    assert sample.available
    assert sample.process_bytes is None
    assert "this run n/a" in sample.summary()


def test_not_available_sentinel_is_none():
    nvml = FakeNvml([FakeDevice(processes=[(PID, (1 << 64) - 1)])])
    assert monitor(nvml).sample().process_bytes is None


def test_no_gpu_gives_unavailable_sample_with_this_process_and_system_memory():
    sample = GpuMonitor(nvml=no_gpu(), environ={}).sample()
    assert not sample.available
    assert "libnvidia-ml not found" in sample.reason
    assert sample.pid == os.getpid()
    total = system_total_bytes()
    assert total and sample.system_total_bytes == total
    # A Python running pytest holds more than 10 MiB, and never the whole machine.
    assert sample.process_rss_bytes and 10 * MIB < sample.process_rss_bytes < total
    assert sample.summary().startswith("GPU unavailable:")


def test_nvml_error_mid_sample_never_raises():
    nvml = full_gpu(PID)

    def broken(handle):
        raise FakeNVMLError("GPU is lost")

    nvml.nvmlDeviceGetMemoryInfo = broken
    sample = monitor(nvml).sample()
    assert not sample.available and sample.reason == "GPU is lost"


def test_device_index_out_of_range_is_unavailable():
    sample = monitor(full_gpu(PID), CUDA_VISIBLE_DEVICES="3").sample()
    assert not sample.available and "device 3 does not exist" in sample.reason


def test_failed_init_is_retried_only_after_a_while():
    now = [0.0]
    nvml = no_gpu()
    mon = GpuMonitor(pid=PID, nvml=nvml, environ={}, clock=lambda: now[0])
    assert not mon.sample().available
    nvml.init_error = None  # the driver came back
    assert not mon.sample().available  # cached failure
    now[0] = 31.0
    assert mon.sample().available is False  # no devices in no_gpu(), but init now succeeded
    assert nvml.inits == 1


def test_second_visible_gpu_is_sampled_when_listed_first():
    nvml = FakeNvml([FakeDevice(name="GPU zero"), FakeDevice(name="GPU one", used=10 * GIB)])
    sample = monitor(nvml, CUDA_VISIBLE_DEVICES="1,0").sample()
    assert (sample.name, sample.index, sample.used_bytes) == ("GPU one", 1, 10 * GIB)


def test_hidden_gpus_are_unavailable_without_asking_nvml():
    nvml = full_gpu(PID)
    sample = monitor(nvml, CUDA_VISIBLE_DEVICES="").sample()
    assert not sample.available and sample.reason == GPUS_HIDDEN
    assert nvml.inits == 0


def test_monitor_sets_pci_order_in_its_environment():
    env: dict[str, str] = {}
    GpuMonitor(nvml=no_gpu(), environ=env)
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_unknown_figures_read_as_zero_share_and_n_a():
    sample = GpuSample(available=False, reason="no NVIDIA driver")
    assert sample.used_fraction == 0.0 and sample.level == "ok"
    assert sample.summary() == "GPU unavailable: no NVIDIA driver — process memory n/a / system n/a"
