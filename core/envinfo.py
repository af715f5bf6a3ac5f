"""What a bug report needs: tunetop's version, Python, the ML libraries, CUDA and the GPUs."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets",
             "gguf", "huggingface_hub", "textual")
"""Packages whose versions a bug report lists, in that order."""


def tunetop_version() -> str:
    """The installed tunetop version (``unknown`` when run from a source tree not installed)."""
    try:
        return importlib.metadata.version("tunetop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cuda() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    built = torch.version.cuda
    if not built:
        return "none (a CPU build of torch)"
    if not torch.cuda.is_available():
        return f"{built} (built for), no GPU visible"
    return f"{built}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.device_count()} GPU(s) visible"


def _gpus(nvml: Any = None) -> tuple[list[str], str]:
    """GPU names with memory, and the driver version; ``([], reason)`` without NVML."""
    from core.machine import format_bytes, load_nvml, nvml_reason, nvml_session

    try:
        with nvml_session(nvml if nvml is not None else load_nvml()) as nv:
            driver = nv.nvmlSystemGetDriverVersion()
            driver = driver.decode() if isinstance(driver, bytes) else str(driver)
            names = []
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
                total = nv.nvmlDeviceGetMemoryInfo(handle).total
                names.append(f"{i}: {name} ({format_bytes(total)})")
            return names, driver
    except Exception as exc:  # no driver, no library, no GPU: all say "none" with the reason
        return [], nvml_reason(exc)


def environment_report(nvml: Any = None) -> list[tuple[str, str]]:
    """``(name, value)`` lines for ``tunetop env``."""
    lines = [
        ("tunetop", f"{tunetop_version()} ({Path(__file__).resolve().parents[1]})"),
        ("python", f"{sys.version.split()[0]} ({sys.executable})"),
        ("platform", platform.platform()),
    ]
    lines += [(name, package_version(name)) for name in LIBRARIES]
    lines.append(("cuda", _cuda()))
    gpus, driver = _gpus(nvml)
    if gpus:
        lines += [("gpu", gpu) for gpu in gpus] + [("driver", driver)]
    else:
        lines.append(("gpu", f"none ({driver})"))
    return lines
