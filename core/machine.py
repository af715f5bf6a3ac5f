"""Facts about this machine, each with one home: devices, memory and precision.

* **Which GPUs.** ``CUDA_VISIBLE_DEVICES`` is read here only (:func:`cuda_visible_entries`): a
  list of indices (in PCI bus order, NVML's order, which :func:`ensure_pci_bus_order` makes
  CUDA's too) or ``GPU-``/``MIG-`` UUIDs, read like CUDA up to the first entry it would reject,
  so ``""`` and ``-1`` hide every GPU; unset, every device NVML lists is visible.
  :func:`visible_device` is the GPU behind ``cuda:0``, :func:`visible_gpu_count` how many a
  launch can use and :func:`training_device` where training and generation run.
* **GPU memory**, through NVML (``pynvml``, imported on first use): :func:`gpu_memory` reads
  the free and total memory of ``cuda:0``; :func:`nvml_device` finds its handle, MIG slices
  included, for the VRAM gauge too. Any NVML failure becomes :class:`NoGpu` with a readable
  reason, never a crash. ``nvml`` arguments take any object with pynvml's names (tests pass
  fakes).
* **System memory**: :func:`system_total_bytes` (installed) and
  :func:`system_available_bytes` (what a new allocation can get), and
  :func:`process_rss_bytes`.
* **Precision**: :func:`resolve_precision` turns ``auto`` into bf16, fp16 or fp32.
* **Sizes** for people: :func:`format_bytes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
MIB = 1024**2

GPUS_HIDDEN = "CUDA_VISIBLE_DEVICES hides every GPU"
"""The reason given when ``CUDA_VISIBLE_DEVICES`` is set but names no usable GPU."""

BF16_MIN_COMPUTE_MAJOR = 8
"""GPUs compute in bf16 natively from compute capability 8.0 (Ampere); older ones emulate it."""


class NoGpu(LookupError):
    """No usable NVIDIA GPU; the message says why, short enough for a label."""


# --- which GPUs ----------------------------------------------------------------------------


def ensure_pci_bus_order(environ: dict[str, str] | None = None) -> bool:
    """Make CUDA number devices like NVML (PCI bus order); False if the user chose otherwise.

    Must run before torch initialises CUDA; the detached worker and the training screen call
    it before building the engine, and :func:`training_device` before asking torch.
    """
    env = os.environ if environ is None else environ
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def cuda_visible_entries(environ: dict[str, str] | None = None) -> list[int | str] | None:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` names, in CUDA's order; ``None`` when it is unset.

    Entries are NVML indices or ``GPU-``/``MIG-`` UUIDs. Like CUDA, reading stops at the
    first other entry, so ``""``, ``-1`` and ``none`` give an empty list: no GPU.
    """
    env = os.environ if environ is None else environ
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    entries: list[int | str] = []
    for item in (part.strip() for part in raw.split(",")):
        if item.isdigit():
            entries.append(int(item))
        elif item.startswith(("GPU-", "MIG-")):
            entries.append(item)
        else:
            break
    return entries


def visible_device(environ: dict[str, str] | None = None) -> int | str | None:
    """The NVML index or UUID of the GPU that is ``cuda:0``; ``None`` when every GPU is hidden.

    Unset ``CUDA_VISIBLE_DEVICES`` gives index 0 (whether it exists is NVML's to say).
    """
    entries = cuda_visible_entries(environ)
    if entries is None:
        return 0
    return entries[0] if entries else None


def visible_gpus(environ: dict[str, str] | None = None, nvml: Any = None) -> list[int | str]:
    """The GPUs a launch here can use: ``CUDA_VISIBLE_DEVICES``'s entries, else every NVML index.

    Empty without an NVIDIA driver, so callers (the multi-process launcher) never need torch
    to decide between GPUs and CPU.
    """
    entries = cuda_visible_entries(environ)
    if entries is not None:
        return entries
    try:
        with nvml_session(nvml) as nv:
            return list(range(int(nv.nvmlDeviceGetCount())))
    except Exception:  # no driver, no library, any NVML error: no GPU
        return []


def visible_gpu_count(environ: dict[str, str] | None = None, nvml: Any = None) -> int:
    """How many GPUs a launch here can use (see :func:`visible_gpus`)."""
    return len(visible_gpus(environ, nvml))


def training_device(environ: dict[str, str] | None = None) -> str:
    """``cuda`` when torch can use a GPU that ``CUDA_VISIBLE_DEVICES`` leaves visible, else ``cpu``.

    Hidden GPUs are decided from the variable first, so the answer agrees with
    :func:`visible_gpu_count` even where torch read an older value of it.
    """
    if visible_device(environ) is None:
        return "cpu"
    ensure_pci_bus_order(environ)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- NVML ----------------------------------------------------------------------------------


def load_nvml() -> Any:
    """The ``pynvml`` module (nvidia-ml-py), imported on first use; it loads the driver in ``nvmlInit``."""
    import pynvml

    return pynvml


@contextmanager
def nvml_session(nvml: Any = None) -> Iterator[Any]:
    """NVML (``nvml`` or pynvml) initialised for the block and shut down after it."""
    nv = nvml if nvml is not None else load_nvml()
    nv.nvmlInit()
    try:
        yield nv
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass  # the reading is taken; a failing shutdown changes nothing for the caller


@dataclass(frozen=True)
class NvmlDevice:
    """The NVML handle behind a CUDA device, and the physical GPU it is part of."""

    handle: Any
    """What memory and processes are read from: the GPU, or its MIG slice."""
    parent: Any
    """The physical GPU, for sensors and power (the same handle without MIG)."""
    index: int | None
    """NVML index of the physical GPU."""
    mig: bool
    """Whether ``handle`` is a MIG slice."""


def nvml_device(nv: Any, device: int | str) -> NvmlDevice:
    """Find ``device`` (an NVML index or a ``GPU-``/``MIG-`` UUID) in an initialised NVML.

    On a MIG-enabled GPU, CUDA's device is its first MIG slice. Raises :class:`NoGpu` for an
    index NVML does not have, or NVML's own error.
    """
    if isinstance(device, str):
        handle = nv.nvmlDeviceGetHandleByUUID(device)
        if _is_mig_handle(nv, handle):
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            return NvmlDevice(handle, parent, _index(nv, parent), True)
        return NvmlDevice(handle, handle, _index(nv, handle), False)
    count = nv.nvmlDeviceGetCount()
    if count == 0:
        raise NoGpu("NVML reports no devices")
    if device >= count:
        raise NoGpu(f"device {device} does not exist (NVML sees {count})")
    parent = nv.nvmlDeviceGetHandleByIndex(device)
    if _mig_enabled(nv, parent):
        for i in range(nv.nvmlDeviceGetMaxMigDeviceCount(parent)):
            try:
                return NvmlDevice(nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, i), parent, device, True)
            except nv.NVMLError:
                continue
        raise NoGpu("MIG is enabled but no MIG device exists")
    return NvmlDevice(parent, parent, device, False)


def nvml_name(nv: Any, device: NvmlDevice) -> str:
    """The device's name; a MIG slice's with its profile and its GPU's name."""
    name = _text(nv.nvmlDeviceGetName(device.handle))
    if device.mig:  # drivers name slices "MIG 3g.40gb" or "<GPU> MIG 3g.40gb"
        parent_name = nvml_optional(lambda: _text(nv.nvmlDeviceGetName(device.parent))) or ""
        if "MIG" not in name:
            name = f"MIG {name}"
        if parent_name and not name.startswith(parent_name):
            name = f"{parent_name} {name}"
    return name


def nvml_optional(read: Callable[[], Any]) -> Any:
    """A figure NVML may not support on this device (MIG slices, some boards): None then."""
    try:
        return read()
    except Exception:
        return None


def nvml_reason(exc: BaseException) -> str:
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


@dataclass(frozen=True)
class GpuMemory:
    """Memory of the GPU that is ``cuda:0``, as NVML reports it."""

    name: str
    """Device name, with the MIG profile for a slice."""
    label: str
    """``GPU 0`` (NVML index of the physical GPU), or the UUID when NVML gives no index."""
    free_bytes: int
    """Memory no process holds: what every process on the device, this one included, left."""
    total_bytes: int
    """Memory of the device or MIG slice."""
    bf16: bool | None
    """Whether it computes in bf16 natively; ``None`` when NVML does not say."""


def gpu_memory(environ: dict[str, str] | None = None, nvml: Any = None) -> GpuMemory:
    """Free and total memory of the GPU that is ``cuda:0``; raises :class:`NoGpu` with the reason."""
    device = visible_device(environ)
    if device is None:
        raise NoGpu(GPUS_HIDDEN)
    try:
        with nvml_session(nvml) as nv:
            found = nvml_device(nv, device)
            info = nv.nvmlDeviceGetMemoryInfo(found.handle)
            name = nvml_name(nv, found)
            capability = nvml_optional(lambda: nv.nvmlDeviceGetCudaComputeCapability(found.parent))
    except NoGpu:
        raise
    except Exception as exc:  # NVML raises its own error per failure; any of them means no GPU
        raise NoGpu(nvml_reason(exc)) from None
    return GpuMemory(
        name=name,
        label=f"GPU {found.index}" if found.index is not None else str(device),
        free_bytes=int(info.free),
        total_bytes=int(info.total),
        bf16=None if capability is None else int(capability[0]) >= BF16_MIN_COMPUTE_MAJOR,
    )


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _index(nv: Any, handle: Any) -> int | None:
    return nvml_optional(lambda: int(nv.nvmlDeviceGetIndex(handle)))


def _is_mig_handle(nv: Any, handle: Any) -> bool:
    return bool(nvml_optional(lambda: nv.nvmlDeviceIsMigDeviceHandle(handle)))


def _mig_enabled(nv: Any, handle: Any) -> bool:
    mode = nvml_optional(lambda: nv.nvmlDeviceGetMigMode(handle))  # NOT_SUPPORTED without MIG
    return mode is not None and int(mode[0]) == int(getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1))


# --- system memory -------------------------------------------------------------------------


def system_total_bytes() -> int | None:
    """Memory installed in the machine (``MemTotal``), or ``None`` when unknown."""
    return _meminfo("MemTotal:") or _sysconf_bytes("SC_PHYS_PAGES")


def system_available_bytes() -> int | None:
    """Memory a new allocation can get without swapping, or ``None`` when unknown.

    ``MemAvailable`` (free memory plus reclaimable caches), else the free pages.
    """
    return _meminfo("MemAvailable:") or _sysconf_bytes("SC_AVPHYS_PAGES")


def process_rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of ``pid`` (default: this process) from /proc, or ``resource``."""
    pid = pid or os.getpid()
    rss = _meminfo("VmRSS:", f"/proc/{pid}/status")
    if rss is not None or pid != os.getpid():
        return rss
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # the peak, the best there is
    except (ImportError, OSError):
        return None


def _meminfo(key: str, path: str = "/proc/meminfo") -> int | None:
    """A ``kB`` figure of a /proc file, in bytes."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_bytes(pages: str) -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf(pages)
    except (ValueError, OSError, AttributeError):
        return None


# --- precision -----------------------------------------------------------------------------


def supports_bf16(device: str) -> bool:
    """Whether ``device`` computes in bf16 natively: CPUs with AVX-512 (oneDNN's bf16 kernels)
    and GPUs of compute capability 8.0 or later. Emulated bf16 does not count: on an AVX2-only
    CPU a bf16-autocast training step was 23x slower than fp32, and torch's emulation on older
    GPUs is slow too."""
    if device == "cpu":
        return cpu_bf16()
    if device.startswith("cuda"):
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return False


def cpu_bf16() -> bool:
    """Whether this CPU has oneDNN's bf16 kernels (AVX-512 or later), as torch reports it."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def resolve_precision(precision: str, device: str, bf16: bool | None = None) -> str:
    """The precision a run computes in on ``device`` (``cpu`` or ``cuda``).

    An explicit ``bf16``, ``fp16`` or ``fp32`` is kept; ``auto`` is bf16 where the device
    computes in it natively (:func:`supports_bf16`), else fp16 on a GPU, else fp32. ``bf16`` says whether it does
    when the caller knows (the estimate reads it from NVML without starting CUDA); ``None``
    asks :func:`supports_bf16`.
    """
    if precision != "auto":
        return precision
    if supports_bf16(device) if bf16 is None else bf16:
        return "bf16"
    return "fp16" if device.startswith("cuda") else "fp32"


# --- formatting ----------------------------------------------------------------------------


def format_bytes(value: float | None, decimals: int = 1) -> str:
    """Bytes in the largest fitting binary unit up to GiB, ``n/a`` when unknown.

    B, KiB and MiB are whole numbers; GiB have ``decimals`` (the gauge 1, the estimate 2).
    """
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.{decimals}f} GiB"
