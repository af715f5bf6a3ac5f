"""GPU and process memory sampling for the VRAM gauge, through NVML (``pynvml``).

:class:`GpuMonitor` picks the NVML device that the trainer's ``cuda:0`` is, samples it and
returns a frozen :class:`GpuSample`. It never raises: without an NVIDIA GPU, or on any NVML
error, the sample says ``GPU unavailable: <reason>`` and still carries the training process's
resident memory and the machine's total memory.

Device numbering: NVML counts devices in PCI bus order, CUDA by default "fastest first".
:func:`ensure_pci_bus_order` sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (before torch initialises
CUDA) so that both agree, and :func:`visible_device` reads ``CUDA_VISIBLE_DEVICES`` (an index,
a ``GPU-…`` UUID or a ``MIG-…`` UUID) to find the physical device behind ``cuda:0``.

The NVML layer is injectable: pass any object with pynvml's function names (``nvmlInit``,
``nvmlDeviceGetMemoryInfo``, ``NVMLError``…) as ``nvml``; tests pass fakes for a full GPU,
a MIG slice, a container without per-process figures and a machine without a GPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

GIB = 1024**3

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


def format_bytes(value: int | None) -> str:
    """Bytes in the largest fitting binary unit, ``n/a`` when unknown."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def ensure_pci_bus_order(environ: dict[str, str] | None = None) -> bool:
    """Make CUDA number devices like NVML (PCI bus order); False if the user chose otherwise.

    Must run before torch initialises CUDA; the detached worker and the training screen call
    it before building the engine.
    """
    env = os.environ if environ is None else environ
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def visible_device(environ: dict[str, str] | None = None) -> int | str:
    """The NVML index or UUID of the trainer's ``cuda:0``, from ``CUDA_VISIBLE_DEVICES``."""
    env = os.environ if environ is None else environ
    raw = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not raw:
        return 0
    first = raw.split(",")[0].strip()
    if first.isdigit():
        return int(first)
    return first  # GPU-… or MIG-… UUID (a bare UUID prefix is also accepted by CUDA)


def visible_gpu_count(environ: dict[str, str] | None = None, nvml: Any = None) -> int:
    """How many GPUs a launch here can use: ``CUDA_VISIBLE_DEVICES`` if set, else NVML's count.

    Zero when there is no NVIDIA driver, so callers (the multi-process launcher) never need
    torch to decide between GPUs and CPU.
    """
    env = os.environ if environ is None else environ
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is not None:
        return len([d for d in raw.split(",") if d.strip() and d.strip() != "-1"])
    try:
        nv = nvml if nvml is not None else _load_pynvml()
        nv.nvmlInit()
    except Exception:  # no driver, no library: no GPU
        return 0
    try:
        return int(nv.nvmlDeviceGetCount())
    except Exception:
        return 0
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass


def process_rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of ``pid`` (default: this process) from /proc, or ``resource``."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if pid == os.getpid():
        try:
            import resource
            import sys

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak if sys.platform == "darwin" else peak * 1024  # peak, the best we have
        except (ImportError, OSError):
            return None
    return None


def system_memory_bytes() -> int | None:
    """Total system memory, from /proc/meminfo or sysconf."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _load_pynvml() -> Any:
    import pynvml  # nvidia-ml-py; loads libnvidia-ml lazily in nvmlInit

    return pynvml


class GpuMonitor:
    """Samples the GPU the run uses; :meth:`sample` never raises.

    ``pid`` is the training process (this one for in-app runs, the worker for detached ones);
    ``device`` overrides the device from ``CUDA_VISIBLE_DEVICES``; ``nvml`` replaces pynvml.
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
                self._nvml = _load_pynvml()
            self._nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded…
            self._failed_reason = _reason(exc)
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
        total = system_memory_bytes()
        try:
            reason = self._init()
            if reason:
                return self._unavailable(reason, rss, total)
            return self._sample_device(rss, total)
        except Exception as exc:  # NVML can fail at any call (GPU lost, driver reset…)
            return self._unavailable(_reason(exc), rss, total)

    def _unavailable(self, reason: str, rss: int | None, total: int | None) -> GpuSample:
        return GpuSample(
            available=False,
            reason=reason,
            process_rss_bytes=rss,
            system_total_bytes=total,
            pid=self.pid,
        )

    def _handle(self) -> tuple[Any, Any, int | None, bool]:
        """(handle to sample, parent handle, parent index, is MIG) for the chosen device."""
        nv = self._nvml
        if isinstance(self.device, str):
            handle = nv.nvmlDeviceGetHandleByUUID(self.device)
            if _is_mig_handle(nv, handle):
                parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
                return handle, parent, _index(nv, parent), True
            return handle, handle, _index(nv, handle), False
        count = nv.nvmlDeviceGetCount()
        if count == 0:
            raise LookupError("NVML reports no devices")
        if self.device >= count:
            raise LookupError(f"device {self.device} does not exist (NVML sees {count})")
        parent = nv.nvmlDeviceGetHandleByIndex(self.device)
        if _mig_enabled(nv, parent):
            # CUDA's device for a MIG-enabled GPU is its first MIG slice.
            for i in range(nv.nvmlDeviceGetMaxMigDeviceCount(parent)):
                try:
                    return nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, i), parent, self.device, True
                except nv.NVMLError:
                    continue
            raise LookupError("MIG is enabled but no MIG device exists")
        return parent, parent, self.device, False

    def _sample_device(self, rss: int | None, total: int | None) -> GpuSample:
        nv = self._nvml
        handle, parent, index, mig = self._handle()
        memory = nv.nvmlDeviceGetMemoryInfo(handle)
        name = _text(nv.nvmlDeviceGetName(handle))
        if mig:  # drivers name slices "MIG 3g.40gb" or "<GPU> MIG 3g.40gb"
            parent_name = _optional(nv, lambda: _text(nv.nvmlDeviceGetName(parent))) or ""
            if "MIG" not in name:
                name = f"MIG {name}"
            if parent_name and not name.startswith(parent_name):
                name = f"{parent_name} {name}"
        return GpuSample(
            available=True,
            name=name,
            index=index,
            mig=mig,
            used_bytes=int(memory.used),
            total_bytes=int(memory.total),
            process_bytes=self._process_bytes(handle),
            utilization_percent=_optional(nv, lambda: int(nv.nvmlDeviceGetUtilizationRates(handle).gpu)),
            temperature_c=_optional(
                nv, lambda: int(nv.nvmlDeviceGetTemperature(parent, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
            ),
            power_watts=_optional(nv, lambda: nv.nvmlDeviceGetPowerUsage(parent) / 1000.0),
            power_limit_watts=_optional(nv, lambda: nv.nvmlDeviceGetEnforcedPowerLimit(parent) / 1000.0),
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


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _index(nv: Any, handle: Any) -> int | None:
    try:
        return int(nv.nvmlDeviceGetIndex(handle))
    except Exception:
        return None


def _is_mig_handle(nv: Any, handle: Any) -> bool:
    try:
        return bool(nv.nvmlDeviceIsMigDeviceHandle(handle))
    except Exception:
        return False


def _mig_enabled(nv: Any, handle: Any) -> bool:
    try:
        current, _pending = nv.nvmlDeviceGetMigMode(handle)
    except Exception:  # NOT_SUPPORTED on GPUs without MIG
        return False
    return int(current) == int(getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1))


def _optional(nv: Any, read: Callable[[], Any]) -> Any:
    """A figure NVML may not support on this device (MIG slices, some boards): None then."""
    try:
        return read()
    except Exception:
        return None


def _reason(exc: BaseException) -> str:
    """A short readable reason for an NVML failure."""
    if isinstance(exc, ImportError):
        return "nvidia-ml-py is not installed"
    text = str(exc).strip() or type(exc).__name__
    lowered = text.lower()
    if "library not found" in lowered or "libnvidia-ml" in lowered:
        return "no NVIDIA driver (libnvidia-ml not found)"
    if "driver not loaded" in lowered:
        return "the NVIDIA driver is not loaded"
    return text
