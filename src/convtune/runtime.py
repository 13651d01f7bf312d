"""How this machine runs torch: the device, the precision (autocast, gradient scaler) and threads.

    resolve_device("auto")            -> cuda if torch sees a GPU, else cpu
    resolve_precision("auto", device) -> bf16 on CPUs with native bf16 and GPUs that support it,
                                         fp16 (with a gradient scaler) on other GPUs, else fp32
Weights always stay float32; autocast only changes the dtype of the matrix products, so a model
trained in any precision on any device saves and loads the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from convtune.config import DEVICE_PATTERN
from convtune.errors import ConvtuneError


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX-512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


from convtune.config import PRECISIONS  # noqa: E402,F401  (declared once there)


def resolve_device(setting: str | torch.device = "auto") -> torch.device:
    """auto | cpu | cuda | cuda:N | mps as a torch.device; one clear line where it is absent."""
    if isinstance(setting, torch.device):
        return setting
    if not DEVICE_PATTERN.fullmatch(setting):
        raise ConvtuneError(f"device must be auto, cpu, cuda, cuda:N or mps, not {setting!r}")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConvtuneError(f"--device {setting}: torch sees no CUDA GPU (torch {torch.__version__}, "
                                f"{build}); use --device cpu or auto")
        if (device.index or 0) >= count:
            raise ConvtuneError(f"--device {setting}: there {'is' if count == 1 else 'are'} only {count} "
                                f"CUDA GPU{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConvtuneError(f"--device {setting}: torch sees no Apple MPS device; use --device cpu or auto")
    return device


def resolve_precision(setting: str, device: torch.device) -> str:
    """auto | fp32 | bf16 | fp16 -> fp32 | bf16 | fp16 for `device` (auto: the fastest safe one)."""
    if setting not in PRECISIONS:
        raise ConvtuneError(f"precision must be one of {', '.join(PRECISIONS)}, not {setting!r}")
    if setting != "auto":
        return setting
    if device.type == "cpu":  # fp16 on a CPU is emulated: slower than fp32
        return "bf16" if cpu_has_bf16() else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "fp16"  # mps


def autocast(precision: str, device_type: str = "cpu"):
    """Autocast to bf16 / fp16 on `device_type` (float32 weights stay float32), or nothing for fp32."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a disabled scaler
    is a pass-through, so the loop has one code path)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def host_to_device(tensors, device: torch.device) -> list[torch.Tensor]:
    """Copy CPU batches to `device`: pinned and non-blocking for a GPU, as they are for the CPU."""
    if device.type == "cpu":
        return list(tensors)
    pin = device.type == "cuda"
    return [(t.pin_memory() if pin else t).to(device, non_blocking=True) for t in tensors]


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def _env_threads(name: str) -> int | None:
    given = os.environ.get(name, "").strip()
    return int(given) if given.isdigit() and int(given) > 0 else None


def threads_per_process() -> int:
    """This process's share of the cores, as a command sees it: CONVTUNE_THREADS (a parent that
    shared the cores out), else under torchrun cores / local ranks (every rank keeping every core
    oversubscribes them: pytorch #22260; torchrun itself sets OMP_NUM_THREADS=1), else
    OMP_NUM_THREADS as the user set it, else every core this process may run on."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    share = max(1, usable_cores() // max(1, local)) if local > 1 else None
    return _env_threads("CONVTUNE_THREADS") or share or _env_threads("OMP_NUM_THREADS") or usable_cores()


_claimed: int | None = None  # the thread count a command chose for its whole process


def claim_threads(threads: int | None = None) -> int:
    """A command owns its process: `--threads N`, else `threads_per_process()`, for everything it
    runs (training, prediction, ONNX Runtime sessions). Returns the count."""
    global _claimed
    _claimed = threads or threads_per_process()
    torch.set_num_threads(_claimed)
    return _claimed


def set_threads() -> None:
    """Library paths (fit, load, serve): the command's claimed count, or CONVTUNE_THREADS; from
    Python otherwise nothing: a user's torch.set_num_threads or OMP_NUM_THREADS stays as it is."""
    n = _claimed or _env_threads("CONVTUNE_THREADS")
    if n:
        torch.set_num_threads(n)


@contextlib.contextmanager
def flush_denormal():
    """Treat denormal floats as zero on the CPU while training, then restore the setting.

    Adam's first moment of a parameter that gets no gradient (a word that no batch holds)
    shrinks by 0.9 a step and is denormal after about 840 steps; on x86, arithmetic on denormals
    is 10-100x slower. Seen here: GoEmotions epoch 3 went from 0.18 to 2.3 s a step (fused AdamW
    and the backward pass both slowed). Flushing them changes nothing a model can tell apart
    (they are below 1.2e-38)."""
    supported = torch.set_flush_denormal(True)  # False where the CPU cannot (then nothing changed)
    try:
        yield
    finally:
        if supported:  # torch has no getter: this turns it off even if the caller had it on
            torch.set_flush_denormal(False)
