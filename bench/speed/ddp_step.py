"""Where a fine-tuning step's time goes: one process x 32 texts against two DDP ranks x 16.

    python -m bench.speed.ddp_step --procs 1 --batch 32
    python -m torch.distributed.run --standalone --nproc-per-node 2 bench/speed/ddp_step.py --procs 2 --batch 16

prints, from rank 0, the median step (forward + backward + optimizer) and its parts in ms for
the packaged MiniLM with the CNN head on random 32-token batches (a typical SST-2 length bucket).
`--no-sync` skips the gradient all-reduce (what the step would cost with free communication);
`--optimizer loop|foreach|fused` picks AdamW's implementation. Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist

from convtune.modeling.encoders import resolve_encoder
from convtune.modeling.model import ModelConfig, build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--optimizer", choices=["loop", "foreach", "fused"], default="fused")
    ap.add_argument("--no-sync", action="store_true")
    args = ap.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    assert world == args.procs, "start 2 processes with torchrun"
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // world))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model, _, _ = build_model(ModelConfig(encoder="minilm-l6", labels=["a", "b"]), resolve_encoder("minilm-l6"))
    model.train()
    net = torch.nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True) if world > 1 else model
    kind = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[args.optimizer]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **kind)
    ids = torch.randint(1000, 20000, (args.batch, args.tokens))
    mask, y = torch.ones_like(ids), torch.randint(0, 2, (args.batch,))
    steps, passes = [], []
    for s in range(args.steps + 3):  # 3 warm-up steps
        t0 = time.perf_counter()
        with net.no_sync() if args.no_sync and world > 1 else torch.enable_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                logits = net(ids, mask)
            torch.nn.functional.cross_entropy(logits.float(), y).backward()
        t1 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=False)
        if s >= 3:
            steps.append(time.perf_counter() - t0)
            passes.append(t1 - t0)
    if int(os.environ.get("RANK", "0")) == 0:
        step, fb = statistics.median(steps), statistics.median(passes)
        print(f"procs {world} x batch {args.batch}, {args.precision}, AdamW {args.optimizer}"
              f"{', no all-reduce' if args.no_sync else ''}: step {step * 1000:.0f} ms (forward + backward"
              f"{' + all-reduce' if world > 1 and not args.no_sync else ''} {fb * 1000:.0f}, optimizer "
              f"{(step - fb) * 1000:.0f}) -> {args.batch * world / step:.1f} samples/s")
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
