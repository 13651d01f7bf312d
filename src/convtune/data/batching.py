"""Tokenisation and batching with as little padding as possible.

Training batches come from length buckets (shuffle, cut into pools of 50 batches, sort each
pool by length, cut into batches, shuffle the batches); evaluation batches are sorted by
length and the caller restores input order. Every batch is padded to its own longest text.
`batched_logits` runs any forward function over such batches and puts rows back in order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from convtune.progress import progress
from convtune.runtime import autocast


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


# A token is rarely longer than this many characters; clipping huge texts first keeps the
# tokenizer from spending seconds on a megabyte it would truncate anyway.
CHARS_PER_TOKEN_CAP = 32


@dataclass
class Encoded:
    """Token ids per text (unpadded, truncated to max_length)."""

    ids: list[list[int]]

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def tokenize(tokenizer, texts: list[str], max_length: int) -> Encoded:
    """Truncated token ids for each text, specials included."""
    clipped = [t[: max_length * CHARS_PER_TOKEN_CAP] for t in texts]
    enc = tokenizer(clipped, truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=False)
    return Encoded(enc["input_ids"])


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: -> input_ids (B, T) int64, attention_mask (B, T) int64."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask


def train_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                  rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Index batches for one epoch, bucketed by length; this rank's share when distributed.

    The same (seed, epoch) gives every rank the same global order, so ranks take disjoint
    batches without communicating.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    if world_size > 1:
        usable = len(batches) - len(batches) % world_size  # equal step counts on every rank
        batches = batches[rank:usable:world_size]
    return batches


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches sorted by length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[j:j + batch_size] for j in range(0, len(order), batch_size)]
