"""Many processes (torchrun): who this process is, and the few collectives convtune needs.

    torchrun --nproc-per-node N -m convtune train ...   (or: convtune train --nproc N ...)

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE; `init()` joins the process
group (gloo on CPUs, NCCL on CUDA GPUs) and gives each rank its device. Everything else reads
`current()`, so a single process needs no setup and pays nothing. The rules that keep ranks in
step (nanoGPT's `master_process`, and pytorch #54059 for what goes wrong otherwise):

- every rank runs every collective: training steps, dev and test evaluation (each rank a
  disjoint share of the batches, summed, so every text is scored exactly once and every rank
  sees the same metrics and makes the same early-stopping decision);
- only rank 0 writes (run directory, plots, token-state cache); the others wait at a barrier;
- a failure that rank 0 meets alone (an existing --out) is broadcast, so all ranks raise it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from convtune.errors import ConvtuneError

T = TypeVar("T")
_local_depth = 0  # > 0 inside `local()`: evaluation is this process's own, not collective


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """True when torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def init(device: str = "auto") -> str:
    """Join the process group torchrun describes (no-op without it); returns the device this
    rank should use: cuda:LOCAL_RANK for a CUDA run, else `device` unchanged."""
    if not launched() or dist.is_initialized():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() <= local:
            raise ConvtuneError(f"rank with LOCAL_RANK {local} has no GPU of its own "
                                f"({torch.cuda.device_count()} visible): use fewer processes per node")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    # A peer that dies usually breaks the connection at once; the timeout bounds the rest.
    timeout = datetime.timedelta(seconds=float(os.environ.get("CONVTUNE_DIST_TIMEOUT", "600")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Ranks:
    """This process's rank and world size (0 of 1 when no process group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def collective() -> bool:
    """Whether evaluation should be shared out over the ranks (and so run on all of them)."""
    return current().active and _local_depth == 0


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside the block, prediction on this rank is its own (distributed predict's chunks)."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def barrier() -> None:
    if current().active:
        # gloo's barrier is a collective like any other; NCCL needs the device it runs on.
        dist.barrier(device_ids=[torch.cuda.current_device()] if dist.get_backend() == "nccl" else None)


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of `tensor` over the ranks (itself when alone)."""
    return _reduce(tensor, dist.ReduceOp.SUM)


def all_max(tensor: torch.Tensor) -> torch.Tensor:
    """Maximum of `tensor` over the ranks (itself when alone)."""
    return _reduce(tensor, dist.ReduceOp.MAX)


def _reduce(tensor: torch.Tensor, op) -> torch.Tensor:
    if not current().active:
        return tensor
    # NCCL reduces GPU tensors only; gloo takes them where they are.
    on = tensor.cuda() if dist.get_backend() == "nccl" and not tensor.is_cuda else tensor
    dist.all_reduce(on, op=op)
    return on.to(tensor.device) if on is not tensor else on


def main_first(fn: Callable[[], T]) -> T | None:
    """Run `fn` on rank 0 only; every rank raises its ConvtuneError if it fails there.

    Returns fn's result on rank 0 and None elsewhere."""
    ranks = current()
    result, error = None, None
    if ranks.is_main:
        try:
            result = fn()
        except ConvtuneError as e:
            error = str(e)
    if ranks.active:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise ConvtuneError(error)
    return result
