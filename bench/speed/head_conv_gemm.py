"""Is the CNN head slow because of `conv1d`? Times it against the same convolutions as one GEMM.

The warm-cache epoch is bounded by the head's training step (bench/speed/head_flops.py). This times
the default head's pooled features (`CNNHead.features`: three convolutions, ReLU, masked max
pool), forward and backward, on one SST-2-sized batch (B = 32, T = 25, H = 384), against the
same weights applied as an unfold + einsum matrix product, with and without bf16 autocast;
median of 60 steps.

    python -m bench.speed.head_conv_gemm
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from convtune.modeling.heads import CNNHead

B, T, H = 32, 25, 384


def gemm_way(head: CNNHead, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`head.features` with each convolution as one matrix product over unfolded windows."""
    m = mask.unsqueeze(-1).to(x.dtype)                                   # (B, T, 1)
    x = x * m
    pooled = []
    for c in head.convs:
        k = c.kernel_size[0]
        win = F.pad(x, (0, 0, (k - 1) // 2, k // 2)).unfold(1, k, 1)   # (B, T, H, k)
        a = F.relu(torch.einsum("bthk,fhk->btf", win, c.weight) + c.bias)  # (B, T, F)
        pooled.append((a * m).amax(1))
    return torch.cat(pooled, 1)                                          # (B, 3 * F)


def median_ms(fn, head, x, mask, bf16: bool, steps: int = 60) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(head, x, mask).float().sum()
        out.backward()
        times.append(time.perf_counter() - start)
    return sorted(times)[steps // 2] * 1e3


def main() -> None:
    torch.manual_seed(0)
    x, mask = torch.randn(B, T, H), torch.ones(B, T)
    head = CNNHead(H, 2)  # default config: widths 2/3/4 x 128, max pool
    assert torch.allclose(head.features(x, mask), gemm_way(head, x, mask), atol=1e-4)
    print("| formulation | bf16 ms | fp32 ms |\n|---|---|---|")
    for name, fn in (("CNNHead.features (nn.Conv1d)", CNNHead.features), ("unfold + einsum", gemm_way)):
        print(f"| {name} | {median_ms(fn, head, x, mask, True):.2f} | {median_ms(fn, head, x, mask, False):.2f} |")


if __name__ == "__main__":
    main()
