"""Tokenisation and batching with as little padding as possible.

Training batches come from length buckets (shuffle, cut into pools of 50 batches, sort each
pool by length, cut into batches, shuffle the batches), grouped into optimizer steps of
micro-batches for ranks and gradient accumulation; evaluation batches are sorted by length
and the caller restores input order. Every batch is padded to its own longest text.
`batched_logits` runs any forward function over such batches and puts rows back in order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from convtune.distributed import Ranks, all_max, all_sum, collective, current
from convtune.progress import progress
from convtune.runtime import autocast


@torch.inference_mode()
def batched_logits(forward: Callable[[list[int]], torch.Tensor], lengths: list[int], batch_size: int,
                   precision: str = "fp32", desc: str | None = None, device_type: str = "cpu") -> np.ndarray:
    """Logits (N, C) float32 in input order; `forward(indices)` gives one batch's logits.

    Batches are sorted by length (least padding); results are written back by index. Under
    torchrun (`distributed.collective()`) each rank scores every world_size-th batch and the
    rows are summed over the ranks: every text scored once, every rank the same logits.
    """
    ranks = current() if collective() else Ranks()
    batches = eval_batches(lengths, batch_size)
    out: np.ndarray | None = None
    for idx in progress(batches[ranks.rank::ranks.world_size], desc=desc, quiet=not desc or not ranks.is_main,
                        leave=False, unit="batch"):
        with autocast(precision, device_type):
            logits = forward(idx).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(lengths), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    if ranks.active:  # a rank with no batch of its own still learns the width from the others
        width = torch.tensor([0 if out is None else out.shape[1]])
        width = int(all_max(width))
        mine = torch.zeros((len(lengths), width)) if out is None else torch.from_numpy(out)
        out = all_sum(mine).numpy()
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


LONG_TEXT_RULES = ("truncate", "head-tail")
HEAD_SHARE = 0.25  # head-tail: Sun et al. 2019 kept the first 128 and the last 382 of 510 tokens


def tokenize(tokenizer, texts: list[str], max_length: int, long_text: str = "truncate") -> Encoded:
    """Token ids for each text, specials included, at most `max_length`: the first tokens
    ("truncate"), or the first quarter and the last three quarters of the room ("head-tail")."""
    if long_text == "head-tail":
        return Encoded(_head_tail(tokenizer, texts, max_length))
    clipped = [t[: max_length * CHARS_PER_TOKEN_CAP] for t in texts]
    enc = tokenizer(clipped, truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=False)
    return Encoded(enc["input_ids"])


def _pieces(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False, truncation=False, padding=False,
                     return_attention_mask=False, return_token_type_ids=False)["input_ids"]


def _head_tail(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Texts that fit are tokenized as they are; longer ones keep their first and last tokens.
    Only max_length * CHARS_PER_TOKEN_CAP characters from each end are tokenized, so a 1 MB
    text costs what a short one does."""
    prefix, suffix = _specials(tokenizer)
    room = max(1, max_length - len(prefix) - len(suffix))
    head = max(1, round(room * HEAD_SHARE)) if room > 1 else room
    span = max_length * CHARS_PER_TOKEN_CAP
    heads = _pieces(tokenizer, [t[:span] for t in texts])
    tails = _pieces(tokenizer, [t[-span:] if len(t) > span else "" for t in texts])
    out = []
    for text, h, tail in zip(texts, heads, tails):
        if len(text) <= span and len(h) <= room:
            ids = h
        else:  # the tail of a text within the span is its own head's end
            tail = tail if len(text) > span else h
            ids = h[:head] + (tail[-(room - head):] if room > head else [])
        out.append(prefix + ids + suffix)
    return out


def _specials(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text ([CLS] / [SEP] for BERT;
    what a decoder adds, often nothing), found by tokenizing one word with and without them:
    transformers 5's fast tokenizers no longer expose build_inputs_with_special_tokens."""
    word = _pieces(tokenizer, ["a"])[0]
    full = tokenizer(["a"], add_special_tokens=True, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"][0]
    at = next((i for i in range(len(full) - len(word) + 1) if full[i:i + len(word)] == word), None)
    if at is None:  # a template that rewrites the text: put nothing around it
        return [], []
    return full[:at], full[at + len(word):]


def long_share(tokenizer, texts: list[str], max_length: int, sample: int = 2000) -> float:
    """The share of (a sample of) texts longer than `max_length` tokens with their specials."""
    if not texts:
        return 0.0
    step = max(1, len(texts) // sample)
    picked = [t[: (max_length + 1) * CHARS_PER_TOKEN_CAP] for t in texts[::step]]
    extra = sum(map(len, _specials(tokenizer)))
    return float(np.mean([len(ids) + extra > max_length for ids in _pieces(tokenizer, picked)]))


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: -> input_ids (B, T) int64, attention_mask (B, T) int64."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask


def train_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Index batches for one epoch, bucketed by length (shuffle, pools of 50 batches sorted by
    length, batches shuffled). The same (seed, epoch) gives the same batches on every rank."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


@dataclass
class Step:
    """One optimizer step: this rank's micro-batches (accumulated), and the step's global size."""

    micro: list[list[int]]
    total: int  # texts in the step over all ranks and micro-batches (the loss is their mean)


def train_steps(lengths: list[int], batch_size: int, seed: int, epoch: int, world_size: int = 1,
                rank: int = 0, accum: int = 1) -> list[Step]:
    """This rank's optimizer steps for one epoch.

    A step is one global batch of batch_size * world_size * accum texts, bucketed as in
    `train_batches`, cut into world_size * accum length-sorted micro-batches: micro-batch m goes
    to rank m % world_size. So N ranks with batch B (or accumulation N with batch B) see
    exactly the batches one process sees with batch N * B, and every rank takes the same number
    of steps. A last global batch too small to give each micro-batch a text is dropped.
    """
    parts = world_size * accum
    steps = []
    for batch in train_batches(lengths, batch_size * parts, seed, epoch):
        if len(batch) < parts:
            continue
        micro = [m.tolist() for m in np.array_split(np.asarray(batch), parts)]
        steps.append(Step([m for i, m in enumerate(micro) if i % world_size == rank], len(batch)))
    return steps


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches sorted by length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[j:j + batch_size] for j in range(0, len(order), batch_size)]
