"""Is the CNN head slow because of `conv1d`? Times it against the same convolutions as one GEMM.

The warm-cache epoch is bounded by the head's training step (bench/head_flops.py). This times
the default head's three convolutions + ReLU + max pool, forward and backward, on one SST-2-sized
batch (B = 32, T = 25, H = 384), as `nn.Conv1d` and as an unfold + einsum matrix product, with
and without bf16 autocast; median of 60 steps.

    python bench/head_conv_gemm.py
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

B, T, H, FILTERS, WIDTHS = 32, 25, 384, 128, (2, 3, 4)


def conv_way(x: torch.Tensor, convs: nn.ModuleList) -> torch.Tensor:
    xt = x.transpose(1, 2)                                        # (B, H, T)
    pooled = [F.relu(c(F.pad(xt, ((k - 1) // 2, k // 2)))).amax(2) for c, k in zip(convs, WIDTHS)]
    return torch.cat(pooled, 1)                                   # (B, 3 * FILTERS)


def gemm_way(x: torch.Tensor, convs: nn.ModuleList) -> torch.Tensor:
    pooled = []
    for c, k in zip(convs, WIDTHS):
        win = F.pad(x, (0, 0, (k - 1) // 2, k // 2)).unfold(1, k, 1)   # (B, T, H, k)
        pooled.append(F.relu(torch.einsum("bthk,fhk->btf", win, c.weight) + c.bias).amax(1))
    return torch.cat(pooled, 1)


def median_ms(fn, x, convs, bf16: bool, steps: int = 60) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(x, convs).float().sum()
        out.backward()
        times.append(time.perf_counter() - start)
    return sorted(times)[steps // 2] * 1e3


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(B, T, H)
    convs = nn.ModuleList(nn.Conv1d(H, FILTERS, k) for k in WIDTHS)
    assert torch.allclose(conv_way(x, convs), gemm_way(x, convs), atol=1e-4)
    print("| formulation | bf16 ms | fp32 ms |\n|---|---|---|")
    for name, fn in (("nn.Conv1d", conv_way), ("unfold + einsum", gemm_way)):
        print(f"| {name} | {median_ms(fn, x, convs, True):.2f} | {median_ms(fn, x, convs, False):.2f} |")


if __name__ == "__main__":
    main()
