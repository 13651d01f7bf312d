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
from functools import cached_property

import numpy as np
import torch

from convtune.config import LongText
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
    """Token ids per text (unpadded, at most max_length each), or per window of a text.

    With the windows rule a text becomes one or more windows: `ids` holds every window and
    `owner[w]` the text window w belongs to (non-decreasing); without it `owner` is None and
    there is one entry per text.
    """

    ids: list[list[int]]
    owner: list[int] | None = None

    def lengths(self) -> list[int]:
        """Tokens of each entry of `ids` (text or window)."""
        return [len(x) for x in self.ids]

    def texts(self) -> int:
        return len(self.ids) if self.owner is None else (self.owner[-1] + 1 if self.owner else 0)

    def text_lengths(self) -> list[int]:
        """Tokens of each text, all its windows together (what training buckets by)."""
        if self.owner is None:
            return self.lengths()
        return np.bincount(self.owner, weights=self.lengths(), minlength=self.texts()).astype(int).tolist()

    def windows_per_text(self) -> list[int] | None:
        """How many windows each text has (None without the windows rule)."""
        return None if self.owner is None else np.bincount(self.owner, minlength=self.texts()).tolist()

    def windows_of(self, texts: list[int]) -> tuple[list[int], torch.Tensor]:
        """(window indices of these texts, (W,) position in `texts` of each window's text)."""
        if self.owner is None:
            return list(texts), torch.arange(len(texts))
        starts = self._starts
        windows, seg = [], []
        for j, t in enumerate(texts):
            span = range(starts[t], starts[t + 1])
            windows.extend(span)
            seg.extend([j] * len(span))
        return windows, torch.tensor(seg, dtype=torch.long)

    @cached_property
    def _starts(self) -> np.ndarray:
        """(texts + 1,) index of each text's first window (and the end); once per Encoded, since
        training asks it for every piece of every step."""
        return np.concatenate([[0], np.cumsum(self.windows_per_text())])


HEAD_SHARE = 0.25  # head-tail: Sun et al. 2019 kept the first 128 and the last 382 of 510 tokens


def tokenize(tokenizer, texts: list[str], max_length: int, long_text: str | LongText = "truncate",
             located: bool = False) -> Encoded:
    """Token ids for each text (or each window), specials included, at most `max_length`: the
    first tokens ("truncate"), the first quarter and the last three quarters of the room
    ("head-tail"), or overlapping windows ("windows", see LongText). `located` (fast tokenizers):
    each token is an (id, (start, end) characters of its text, or None for a special token)."""
    rule = LongText.of(long_text)
    if rule.rule == "head-tail":
        return Encoded(_head_tail(tokenizer, texts, max_length, located))
    if rule.rule == "windows":
        return _windows(tokenizer, texts, max_length, rule, located)
    clipped = [t[: max_length * CHARS_PER_TOKEN_CAP] for t in texts]
    if located:  # the same ids as the tokenizer's own truncation (explain checks that)
        prefix, suffix = _specials(tokenizer, located)
        room = max(1, max_length - len(prefix) - len(suffix))
        return Encoded([prefix + p[:room] + suffix for p in _pieces(tokenizer, clipped, located)])
    enc = tokenizer(clipped, truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=False)
    return Encoded(enc["input_ids"])


def _windows(tokenizer, texts: list[str], max_length: int, rule: LongText, located: bool = False) -> Encoded:
    """Windows of each text: a text that fits is one window, the same ids truncation gives.
    With max_windows set only the characters those windows can reach are tokenized."""
    prefix, suffix = _specials(tokenizer, located)
    room = max(1, max_length - len(prefix) - len(suffix))
    step = rule.step(room)
    reach = (room + step * (rule.max_windows - 1)) * CHARS_PER_TOKEN_CAP if rule.max_windows else None
    ids, owner = [], []
    for t, pieces in enumerate(_pieces(tokenizer, [x[:reach] if reach else x for x in texts], located)):
        starts = range(0, max(1, len(pieces) - room + step), step)  # the last window reaches the end
        for start in starts[: rule.max_windows or None]:
            ids.append(prefix + pieces[start:start + room] + suffix)
            owner.append(t)
    return Encoded(ids, owner)


def window_reach(tokenizer, max_length: int, rule: LongText) -> int | None:
    """Tokens of text (specials included) that the first max_windows windows cover; None: all."""
    if rule.rule != "windows" or not rule.max_windows:
        return None
    extra = sum(map(len, _specials(tokenizer)))
    room = max(1, max_length - extra)
    return room + rule.step(room) * (rule.max_windows - 1) + extra


def pool_windows(logits: torch.Tensor, seg: torch.Tensor, n: int, how: str = "mean") -> torch.Tensor:
    """(W, C) window logits -> (n, C) text logits: the mean or max over each text's windows
    (`seg[w]` is window w's text). Differentiable, so training learns through the pooling."""
    seg = seg.to(logits.device)
    if how == "max":
        init = torch.full((n, logits.shape[1]), float("-inf"), dtype=logits.dtype, device=logits.device)
        return init.scatter_reduce(0, seg[:, None].expand_as(logits), logits, "amax", include_self=True)
    total = torch.zeros((n, logits.shape[1]), dtype=logits.dtype, device=logits.device).index_add(0, seg, logits)
    counts = torch.bincount(seg, minlength=n).clamp(min=1).to(logits.dtype)
    return total / counts[:, None]


def text_logits(forward: Callable[[list[int]], torch.Tensor], enc: Encoded, batch_size: int,
                precision: str = "fp32", desc: str | None = None, device_type: str = "cpu",
                pool: str = "mean") -> np.ndarray:
    """(texts, C) logits in input order: `forward` over batches of texts, or of windows that
    are then pooled per text, so a 1 MB text costs batches of windows, never one huge batch."""
    logits = batched_logits(forward, enc.lengths(), batch_size, precision, desc, device_type)
    if enc.owner is None:
        return logits
    seg = torch.as_tensor(enc.owner, dtype=torch.long)
    return pool_windows(torch.from_numpy(logits), seg, enc.texts(), pool).numpy()


def _pieces(tokenizer, texts: list[str], located: bool = False, shifts: list[int] | None = None) -> list[list]:
    """Token ids of each text without specials; `located`: (id, (start, end)) pairs, the
    character offsets moved by `shifts[i]` (a tail cut from a longer text)."""
    enc = tokenizer(texts, add_special_tokens=False, truncation=False, padding=False, return_attention_mask=False,
                    return_token_type_ids=False, return_offsets_mapping=located)
    if not located:
        return enc["input_ids"]
    shifts = shifts or [0] * len(texts)
    return [[(i, (a + d, b + d)) for i, (a, b) in zip(ids, spans)]
            for ids, spans, d in zip(enc["input_ids"], enc["offset_mapping"], shifts)]


def _head_tail(tokenizer, texts: list[str], max_length: int, located: bool = False) -> list[list]:
    """Texts that fit are tokenized as they are; longer ones keep their first and last tokens.
    Only max_length * CHARS_PER_TOKEN_CAP characters from each end are tokenized, so a 1 MB
    text costs what a short one does."""
    prefix, suffix = _specials(tokenizer, located)
    room = max(1, max_length - len(prefix) - len(suffix))
    head = max(1, round(room * HEAD_SHARE)) if room > 1 else room
    span = max_length * CHARS_PER_TOKEN_CAP
    heads = _pieces(tokenizer, [t[:span] for t in texts], located)
    tails = _pieces(tokenizer, [t[-span:] if len(t) > span else "" for t in texts], located,
                    [max(0, len(t) - span) for t in texts])
    out = []
    for text, h, tail in zip(texts, heads, tails):
        if len(text) <= span and len(h) <= room:
            ids = h
        else:  # the tail of a text within the span is its own head's end
            tail = tail if len(text) > span else h
            ids = h[:head] + (tail[-(room - head):] if room > head else [])
        out.append(prefix + ids + suffix)
    return out


def _specials(tokenizer, located: bool = False) -> tuple[list, list]:
    """The special tokens a tokenizer puts before and after one text ([CLS] / [SEP] for BERT;
    what a decoder adds, often nothing), found by tokenizing one word with and without them:
    transformers 5's fast tokenizers no longer expose build_inputs_with_special_tokens.
    `located`: as (id, None) pairs."""
    if located:
        prefix, suffix = _specials(tokenizer)
        return [(i, None) for i in prefix], [(i, None) for i in suffix]
    word = _pieces(tokenizer, ["a"])[0]
    full = tokenizer(["a"], add_special_tokens=True, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"][0]
    at = next((i for i in range(len(full) - len(word) + 1) if full[i:i + len(word)] == word), None)
    if at is None:  # a template that rewrites the text: put nothing around it
        return [], []
    return full[:at], full[at + len(word):]


def _spread(texts: list[str], sample: int) -> list[str]:
    """About `sample` texts taken evenly through the list (all of them if fewer)."""
    return texts[:: max(1, len(texts) // sample)]


def long_share(tokenizer, texts: list[str], max_length: int, sample: int = 2000) -> float:
    """The share of (a sample of) texts longer than `max_length` tokens with their specials."""
    if not texts:
        return 0.0
    picked = [t[: (max_length + 1) * CHARS_PER_TOKEN_CAP] for t in _spread(texts, sample)]
    extra = sum(map(len, _specials(tokenizer)))
    return float(np.mean([len(ids) + extra > max_length for ids in _pieces(tokenizer, picked)]))


def unknown_share(tokenizer, texts: list[str], sample: int = 2000, chars: int = 2000) -> float:
    """The share of (a sample of) the texts' tokens that the vocabulary lacks ([UNK]): high when
    the encoder was trained on another language or script (MiniLM-L6 on Chinese: 64%)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not texts:  # byte-level vocabularies have no unknown token
        return 0.0
    ids = [i for piece in _pieces(tokenizer, [t[:chars] for t in _spread(texts, sample)]) for i in piece]
    return sum(i == unk for i in ids) / len(ids) if ids else 0.0


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
                rank: int = 0, accum: int = 1, windows: list[int] | None = None) -> list[Step]:
    """This rank's optimizer steps for one epoch.

    A step is one global batch of batch_size * world_size * accum texts, bucketed as in
    `train_batches`, cut into world_size * accum length-sorted micro-batches: micro-batch m goes
    to rank m % world_size. So N ranks with batch B (or accumulation N with batch B) see
    exactly the batches one process sees with batch N * B, and every rank takes the same number
    of steps. A last global batch too small to give each micro-batch a text is dropped.

    `windows` (windows of each text, read in windows): a micro-batch is further cut between
    texts into pieces of at most batch_size windows, so one forward pass holds no more than an
    ordinary batch (32 reviews of 8 windows each took 15.7 GB of peak memory on the hotel
    reviews). The loss weights each piece by its share of the step: the gradient is the same.
    """
    parts = world_size * accum
    steps = []
    for batch in train_batches(lengths, batch_size * parts, seed, epoch):
        if len(batch) < parts:
            continue
        micro = [m.tolist() for m in np.array_split(np.asarray(batch), parts)]
        mine = [m for i, m in enumerate(micro) if i % world_size == rank]
        if windows is not None:
            mine = [piece for m in mine for piece in _cap(m, windows, batch_size)]
        steps.append(Step(mine, len(batch)))
    return steps


def _cap(texts: list[int], windows: list[int], limit: int) -> list[list[int]]:
    """`texts` cut in order into pieces of at most `limit` windows (one text over it goes alone)."""
    pieces, count = [[]], 0
    for t in texts:
        if pieces[-1] and count + windows[t] > limit:
            pieces.append([])
            count = 0
        pieces[-1].append(t)
        count += windows[t]
    return pieces


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches sorted by length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[j:j + batch_size] for j in range(0, len(order), batch_size)]
