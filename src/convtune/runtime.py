"""How this machine runs torch: bf16 autocast where the CPU has it, and the number of threads."""

from __future__ import annotations

import contextlib
import functools
import os

import torch


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX-512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(setting: str | bool) -> bool:
    """Resolve a bf16 setting (auto | on | off, or a bool) for this machine."""
    if isinstance(setting, bool):
        return setting
    s = setting.lower()
    if s not in ("auto", "on", "off"):
        raise ValueError(f"bf16 must be auto, on or off, not {setting!r}")
    return s == "on" or (s == "auto" and cpu_has_bf16())


def autocast(enabled: bool, device_type: str = "cpu"):
    """bf16 autocast on `device_type` (fp32 master weights stay fp32), or nothing."""
    if enabled:
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def set_threads() -> None:
    """Use every core this process may run on (torch defaults can be lower in containers)."""
    torch.set_num_threads(usable_cores())
