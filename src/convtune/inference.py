"""Batched inference and the CPU precision switch shared by training and prediction."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable

import numpy as np
import torch

from .batching import Encoded, collate, eval_batches
from .progress import progress


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


@torch.inference_mode()
def batched_logits(forward: Callable[[list[int]], torch.Tensor], lengths: list[int], batch_size: int,
                   bf16: bool = False, desc: str | None = None) -> np.ndarray:
    """Logits (N, C) float32 in input order; `forward(indices)` gives one batch's logits.

    Batches are sorted by length (least padding); results are written back by index.
    """
    out: np.ndarray | None = None
    batches = eval_batches(lengths, batch_size)
    for idx in progress(batches, desc=desc, quiet=not desc, leave=False, unit="batch"):
        with autocast(bf16):
            logits = forward(idx).float().cpu().numpy()
        if out is None:
            out = np.empty((len(lengths), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    if out is None:
        raise ValueError("no texts to predict")
    return out


def predict_logits(model: torch.nn.Module, encoded: Encoded, pad_id: int, batch_size: int = 64,
                   bf16: bool = False, desc: str | None = None) -> np.ndarray:
    """Logits (N, C) of the whole model (encoder + head) for tokenised texts."""
    model.eval()
    return batched_logits(lambda idx: model(*collate([encoded.ids[i] for i in idx], pad_id)),
                          encoded.lengths(), batch_size, bf16, desc)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
