"""GPU and process memory sampling for the VRAM gauge, through NVML (``pynvml``).

:class:`GpuMonitor` picks the NVML device that the trainer's ``cuda:0`` is, samples it and
returns a frozen :class:`GpuSample`. It never raises: without an NVIDIA GPU, or on any NVML
error, the sample says ``GPU unavailable: <reason>`` and still carries the training process's
resident memory and the machine's total memory.

Which device that is, and how NVML finds it (MIG slices included), is :mod:`core.machine`'s
to say (``CUDA_VISIBLE_DEVICES`` in PCI bus order); this module only samples it.

The NVML layer is injectable: pass any object with pynvml's function names (``nvmlInit``,
``nvmlDeviceGetMemoryInfo``, ``NVMLError``…) as ``nvml``; tests pass fakes for a full GPU,
a MIG slice, a container without per-process figures and a machine without a GPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from core.machine import (
    GIB,
    GPUS_HIDDEN,
    ensure_pci_bus_order,
    format_bytes,
    load_nvml,
    nvml_device,
    nvml_name,
    nvml_optional,
    nvml_reason,
    process_rss_bytes,
    system_total_bytes,
    visible_device,
)

WARN_FRACTION = 0.85
"""Used share of GPU memory from which the gauge turns to its warning colour."""
CRITICAL_FRACTION = 0.95
"""Used share of GPU memory from which the gauge shows it is about to run out."""

_NOT_AVAILABLE = (1 << 64) - 1  # NVML_VALUE_NOT_AVAILABLE for unsigned long long fields
_RETRY_INIT_SECONDS = 30.0


@dataclass(frozen=True)
class GpuSample:
    """One reading of the GPU behind the run and of the training process's memory.

    GPU fields are ``None`` when the figure is not available (no GPU, MIG slices without
    utilisation, containers where NVML cannot see the process).
    """

    available: bool
    """Whether an NVIDIA GPU was sampled; ``False`` means only the system figures are valid."""
    reason: str = ""
    """Why the GPU is unavailable (empty when available)."""
    name: str = ""
    """Device name, with the MIG profile for a MIG slice."""
    index: int | None = None
    """NVML index of the (parent) device."""
    mig: bool = False
    """Whether the sample is of a MIG slice."""
    used_bytes: int = 0
    """Memory in use on the device (all processes)."""
    total_bytes: int = 0
    """Memory of the device or slice."""
    process_bytes: int | None = None
    """Memory the training process holds on the device; ``None`` when NVML does not say."""
    utilization_percent: int | None = None
    """Share of time a kernel ran in the last sample period."""
    temperature_c: int | None = None
    """GPU core temperature in degrees Celsius."""
    power_watts: float | None = None
    """Power draw."""
    power_limit_watts: float | None = None
    """Enforced power limit."""
    process_rss_bytes: int | None = None
    """Resident system memory of the training process."""
    system_total_bytes: int | None = None
    """Total system memory of the machine."""
    pid: int = 0
    """Process whose memory ``process_bytes`` and ``process_rss_bytes`` describe."""
    time: float = field(default_factory=time.time)
    """Wall clock of the sample."""

    @property
    def used_fraction(self) -> float:
        """Used share of device memory, 0 when unknown."""
        return self.used_bytes / self.total_bytes if self.available and self.total_bytes else 0.0

    @property
    def level(self) -> str:
        """``ok``, ``warning`` (>= 85% used) or ``critical`` (>= 95% used)."""
        fraction = self.used_fraction
        if fraction >= CRITICAL_FRACTION:
            return "critical"
        if fraction >= WARN_FRACTION:
            return "warning"
        return "ok"

    def summary(self) -> str:
        """One line for logs and the command line."""
        if not self.available:
            return (
                f"GPU unavailable: {self.reason} — process memory {format_bytes(self.process_rss_bytes)}"
                f" / system {format_bytes(self.system_total_bytes)}"
            )
        parts = [
            f"{self.name}: {format_gib(self.used_bytes)} / {format_gib(self.total_bytes)} GiB",
            f"this run {format_bytes(self.process_bytes)}",
        ]
        if self.utilization_percent is not None:
            parts.append(f"util {self.utilization_percent}%")
        if self.temperature_c is not None:
            parts.append(f"{self.temperature_c}°C")
        if self.power_watts is not None:
            parts.append(f"{self.power_watts:.0f} W")
        return ", ".join(parts)


def format_gib(value: int | None) -> str:
    """Bytes as GiB with one decimal, ``n/a`` when unknown."""
    return "n/a" if value is None else f"{value / GIB:.1f}"


class GpuMonitor:
    """Samples the GPU the run uses; :meth:`sample` never raises.

    ``pid`` is the training process (this one for in-app runs, the worker for detached ones);
    ``device`` (an NVML index or UUID) overrides :func:`core.machine.visible_device`, which is
    ``None`` when ``CUDA_VISIBLE_DEVICES`` hides every GPU; ``nvml`` replaces pynvml.
    """

    def __init__(
        self,
        pid: int | None = None,
        device: int | str | None = None,
        nvml: Any = None,
        environ: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = pid or os.getpid()
        self._environ = os.environ if environ is None else environ
        self.pci_order = ensure_pci_bus_order(self._environ)
        self.device = visible_device(self._environ) if device is None else device
        self._nvml = nvml
        self._clock = clock
        self._ready = False
        self._failed_reason = ""
        self._failed_at: float | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def _init(self) -> str:
        """Initialise NVML once; returns a failure reason or ''. Failures retry after 30 s."""
        if self._ready:
            return ""
        if self._failed_at is not None and self._clock() - self._failed_at < _RETRY_INIT_SECONDS:
            return self._failed_reason
        try:
            if self._nvml is None:
                self._nvml = load_nvml()
            self._nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded…
            self._failed_reason = nvml_reason(exc)
            self._failed_at = self._clock()
            return self._failed_reason
        self._ready = True
        return ""

    def close(self) -> None:
        """Shut NVML down; the next sample initialises it again."""
        if self._ready:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._ready = False

    # --- sampling ------------------------------------------------------------------------

    def sample(self) -> GpuSample:
        """One reading; a ``GPU unavailable`` sample on any problem."""
        rss = process_rss_bytes(self.pid)
        total = system_total_bytes()
        if self.device is None:
            return self._unavailable(GPUS_HIDDEN, rss, total)
        try:
            reason = self._init()
            if reason:
                return self._unavailable(reason, rss, total)
            return self._sample_device(rss, total)
        except Exception as exc:  # NVML can fail at any call (GPU lost, driver reset…)
            return self._unavailable(nvml_reason(exc), rss, total)

    def _unavailable(self, reason: str, rss: int | None, total: int | None) -> GpuSample:
        return GpuSample(
            available=False,
            reason=reason,
            process_rss_bytes=rss,
            system_total_bytes=total,
            pid=self.pid,
        )

    def _sample_device(self, rss: int | None, total: int | None) -> GpuSample:
        nv = self._nvml
        found = nvml_device(nv, self.device)
        handle, parent = found.handle, found.parent
        memory = nv.nvmlDeviceGetMemoryInfo(handle)
        return GpuSample(
            available=True,
            name=nvml_name(nv, found),
            index=found.index,
            mig=found.mig,
            used_bytes=int(memory.used),
            total_bytes=int(memory.total),
            process_bytes=self._process_bytes(handle),
            utilization_percent=nvml_optional(lambda: int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)),
            temperature_c=nvml_optional(
                lambda: int(nv.nvmlDeviceGetTemperature(parent, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
            ),
            power_watts=nvml_optional(lambda: nv.nvmlDeviceGetPowerUsage(parent) / 1000.0),
            power_limit_watts=nvml_optional(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(parent) / 1000.0),
            process_rss_bytes=rss,
            system_total_bytes=total,
            pid=self.pid,
        )

    def _process_bytes(self, handle: Any) -> int | None:
        """Memory of the training process on the device, or None where NVML cannot tell.

        In containers NVML reports host PIDs, and on MIG slices ``usedGpuMemory`` is often
        not available: both give ``None`` (shown as "n/a"), never a wrong number.
        """
        nv = self._nvml
        try:
            processes = nv.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:
            return None
        for proc in processes:
            if int(getattr(proc, "pid", -1)) == self.pid:
                used = getattr(proc, "usedGpuMemory", None)
                if used is None or int(used) == _NOT_AVAILABLE:
                    return None
                return int(used)
        return None
