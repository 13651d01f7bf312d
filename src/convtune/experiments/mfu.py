"""How close to the machine's limit: model FLOPs per second reached, as a fraction of the peak.

    peak        dense matrix-multiply FLOP/s of this machine in fp32 and bf16 (or on a GPU)
    flops       model FLOPs per text, counted by `torch.utils.flop_counter` on real batches:
                fine-tuning (forward + backward) and prediction (forward)
    MFU         flops per text x texts per second / peak (of the precision that side runs in)

FLOPs are counted on length-bucketed batches (almost no padding): what the model needs, not
what a padded batch computes, so work spent on padding lowers a side's MFU instead of raising
it (the usual definition: Chowdhery et al. 2022, PaLM, appendix B).
"""

from __future__ import annotations

import time


def matmul_peak(dtype_name: str, device: str = "cpu", n: int = 1024, seconds: float = 1.5) -> float:
    """Best FLOP/s of an n x n by n x n product (torch.nn.functional.linear, what the models
    run) in `dtype_name`, over repeats for about `seconds` (a CPU without native bf16 emulates
    it: 17 against 110 GFLOP/s fp32 on the 2-core AMD EPYC of 2026-12-02)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.nn.functional.linear(a, b)  # warm-up: kernel selection, page faults
    sync()
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        start = time.perf_counter()
        torch.nn.functional.linear(a, b)
        sync()
        took = time.perf_counter() - start
        best, spent = max(best, 2 * n**3 / took), spent + took
    return best


def count_flops(fn) -> int:
    """FLOPs that `fn()` runs (matrix products, convolutions, attention), as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def flops_per_text(forward, batches: list, train: bool) -> float:
    """Mean FLOPs per text over `batches` of (input_ids, attention_mask): forward only, or
    forward + backward of the summed logits (what one training step costs, without AdamW)."""
    import torch

    total, texts = 0, 0
    for ids, mask in batches:
        if train:
            total += count_flops(lambda: forward(ids, mask).float().sum().backward())
        else:
            with torch.inference_mode():
                total += count_flops(lambda: forward(ids, mask))
        texts += len(ids)
    return total / texts


def job_peak(a: dict) -> dict:
    """This machine's matrix-multiply peak in fp32 and bf16 (all the cores this process has)."""
    from convtune.runtime import resolve_device, set_threads

    set_threads()
    device = str(resolve_device(a.get("device") or "auto"))
    return {"device": device, "fp32": matmul_peak("fp32", device), "bf16": matmul_peak("bf16", device)}


def flop_batches(tokenizer, s, a: dict) -> tuple[list, list]:
    """Length-bucketed (input_ids, attention_mask) batches: 40 training batches, the whole test split."""
    from convtune.data.batching import collate, eval_batches, tokenize, train_batches

    def batches(texts: list[str], size: int, train: bool, limit: int) -> list:
        ids = tokenize(tokenizer, texts, a["max_length"]).ids
        lengths = [len(x) for x in ids]
        order = train_batches(lengths, size, a["seed"], 1) if train else eval_batches(lengths, size)
        return [collate([ids[i] for i in b], tokenizer.pad_token_id) for b in order[:limit]]

    return batches(s.train.texts, a["batch_size"], True, 40), batches(s.test.texts, 64, False, 10**6)


def mfu_table(r: dict, rows: list[tuple[str, str, str, str]]) -> dict:
    """MFU of each row (name, FLOPs key, result key, rate key) from one bench run's rates, FLOPs
    per text and peaks. convtune's rows run in the fine-tune's precision, a peer's in fp32."""
    f, peak = r["flops"], r["peak"]
    ours = r["convtune_finetune"].get("precision", "bf16")
    ours = ours if ours in peak else "fp32"
    out = {}
    for name, flops_key, result, rate_key in rows:
        fl, rate = f[flops_key], r[result][rate_key]
        prec = ours if flops_key.startswith("convtune") else "fp32"
        out[name] = {"gflops_per_text": fl / 1e9, "texts_per_s": rate, "precision": prec,
                     "achieved_gflops": fl * rate / 1e9, "mfu": fl * rate / peak[prec]}
    return out
