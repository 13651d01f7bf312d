"""Would a winners-only backward for the CNN head's max pooling make frozen trials cheaper? No.

In frozen mode a search trial after the first is the head's training alone, mostly its backward
(docs/search.md). Each filter's max-pooled value comes from one window of k tokens, so only that
window has a gradient: the weight gradient is a sum of B winning windows per filter and the
input gradient a scatter of B * F windows, instead of two dense convolutions over all T
positions. `ConvMaxPool` below does exactly that (checked equal to autograd's gradients in
float64 before timing). It moves B * F * k * H numbers per width, against B * T * H for the
dense kernels, so it can only win when T is much larger than F * k; on SST-2-sized batches
(B = 32, T = 25, F = 128 filters of widths 2/3/4, H = 384) the gathers and scatters cost more
than the dense convolutions' compute-bound matrix products. It stays here, not in the package.

Times one frozen-mode training step (stored states of the last 4 layers -> ScalarMix -> the
default CNN head -> cross-entropy -> AdamW) under the precision `convtune train` picks here,
dense and sparse alternating in blocks of 10, median of 80 steps each. Run it alone.

    python -m bench.speed.head_sparse_backward --out bench/speed/head_sparse_backward
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from convtune.modeling.heads import CNNHead, ScalarMix
from convtune.runtime import autocast, resolve_precision

B, T, H, C = 32, 25, 384, 2


class ConvMaxPool(torch.autograd.Function):
    """relu(conv1d(x)) masked and max-pooled over time; backward through the winning windows only.

    x (B, H, T + k - 1) padded, weight (F, H, k), bias (F,), mask (B, 1, T) -> (B, F).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mask):
        a = F.relu(F.conv1d(x, weight, bias)) * mask      # (B, F, T)
        pooled, where = a.max(dim=2)                     # (B, F), (B, F)
        ctx.save_for_backward(x, weight, where, pooled > 0)
        return pooled

    @staticmethod
    def backward(ctx, grad):
        x, weight, where, active = ctx.saved_tensors
        batch, filters = where.shape
        dtype = torch.promote_types(weight.dtype, torch.float32)
        g = (grad * active).to(dtype)                    # zero where ReLU was off at the winner
        rows = x.transpose(1, 2).reshape(-1, x.shape[1]).to(dtype)   # (B * (T + k - 1), H)
        start = where + torch.arange(batch).unsqueeze(1) * x.shape[2]  # (B, F) row of each window
        w = weight.to(dtype)
        grad_w = torch.empty_like(w)
        grad_x = torch.zeros_like(rows) if ctx.needs_input_grad[0] else None
        for j in range(weight.shape[2]):                 # one (B, F, H) slice per window offset
            idx = (start + j).reshape(-1)
            grad_w[:, :, j] = torch.einsum("bf,bfh->fh", g, rows[idx].view(batch, filters, -1))
            if grad_x is not None:
                grad_x.index_add_(0, idx, (g.unsqueeze(2) * w[:, :, j]).reshape(-1, w.shape[1]))
        if grad_x is not None:
            grad_x = grad_x.view(batch, x.shape[2], -1).transpose(1, 2).to(x.dtype)
        return grad_x, grad_w.to(weight.dtype), g.sum(0).to(weight.dtype), None


class SparseCNNHead(CNNHead):
    """The default CNN head (max pooling) with ConvMaxPool's backward."""

    def features(self, h, mask):
        m = mask.unsqueeze(1).to(h.dtype)
        x = h.transpose(1, 2) * m
        return torch.cat([ConvMaxPool.apply(F.pad(x, ((c.kernel_size[0] - 1) // 2, c.kernel_size[0] // 2)),
                                            c.weight, c.bias, m) for c in self.convs], dim=1)


def check_gradients() -> None:
    """The sparse backward must equal autograd's (float64, pads and short texts included)."""
    torch.manual_seed(0)
    dense = CNNHead(8, 3).double()
    sparse = SparseCNNHead(8, 3).double()
    sparse.load_state_dict(dense.state_dict())
    h = torch.randn(4, 7, 8, dtype=torch.float64)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] + [0] * 6, [1] * 5 + [0] * 2])
    grads = []
    for head in (dense, sparse):
        hh = h.clone().requires_grad_(True)
        head.eval()(hh, mask).square().sum().backward()
        grads.append([hh.grad] + [p.grad for p in head.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def make_step(head_cls, k: int = 4):
    torch.manual_seed(0)
    states = torch.randn(B, T, k, H)
    mask = (torch.arange(T) < torch.randint(5, T + 1, (B, 1))).long()   # (B, T), right padding
    labels = torch.randint(0, C, (B,))
    mix, head = ScalarMix(k), head_cls(H, C)
    opt = torch.optim.AdamW(list(head.parameters()) + list(mix.parameters()), lr=1e-3)
    precision = resolve_precision("auto", torch.device("cpu"))

    def step() -> None:
        with autocast(precision, "cpu"):
            loss = F.cross_entropy(head(mix(states), mask).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/speed/head_sparse_backward", help="writes OUT.json and OUT.md")
    ap.add_argument("--steps", type=int, default=80)
    args = ap.parse_args()
    check_gradients()
    steps = {"dense": make_step(CNNHead), "sparse": make_step(SparseCNNHead)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for name, (step, _) in steps.items():
        for _ in range(10):
            step()                                       # warm-up
    for _ in range(args.steps // 10):
        for name, (step, _) in steps.items():
            for _ in range(10):
                start = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - start) * 1e3)
    med = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    row = {"precision": steps["dense"][1], "threads": torch.get_num_threads(), "dense_ms": round(med["dense"], 2),
           "sparse_ms": round(med["sparse"], 2), "sparse_over_dense": round(med["sparse"] / med["dense"], 3)}
    lines = [f"# Frozen-mode head step (4 layers mixed, B={B}, T={T}, H={H}): dense vs winners-only backward", "",
             f"`python -m bench.speed.head_sparse_backward --out {args.out}`", "",
             "| precision | threads | dense ms/step | winners-only ms/step | winners-only / dense |", "|---|---|---|---|---|",
             f"| {row['precision']} | {row['threads']} | {row['dense_ms']} | {row['sparse_ms']} | {row['sparse_over_dense']} |"]
    with open(f"{args.out}.json", "w") as f:
        json.dump(row, f, indent=1)
    with open(f"{args.out}.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
