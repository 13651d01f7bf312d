"""Contrastive tuning of an encoder from labels: the first stage of `--mode contrastive`.

    labelled texts -> pairs: each text with one text it shares a label with and one it does not,
                      `rounds` times (SetFit's num_iterations: 2 x N x rounds pairs)
    (u, v) masked mean of the last layer's token states -> cos(u, v) -> MSE against 1 or 0

SetFit (Tunstall et al. 2022) tunes a sentence encoder this way on a handful of examples per
class before a head is trained on it. Pairs are drawn, never enumerated: memory grows with the
number of texts times `rounds`, not with all n^2 pairs (a 20,000-text set with 20 rounds holds
800,000 index pairs, 19 MB). Multi-label texts pair by label-set overlap; texts without labels
pair with each other.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

from convtune.data.batching import collate, tokenize
from convtune.errors import ConvtuneError
from convtune.runtime import autocast

NEGATIVE_TRIES = 32  # multi-label: draws for a text sharing no label before giving up on one


def _groups(labels: list) -> dict:
    """label -> indices of the texts holding it (a label set's every label; () for none)."""
    groups = defaultdict(list)
    for i, y in enumerate(labels):
        for key in (y if isinstance(y, tuple | list) else (y,)) or ((),):
            groups[key].append(i)
    return {k: np.asarray(v) for k, v in groups.items()}


def check_pairable(labels: list) -> None:
    """One line unless every class has two texts and there are two classes (single-label)."""
    if any(isinstance(y, tuple | list) for y in labels):
        return
    counts = {k: len(v) for k, v in _groups(labels).items()}
    if len(counts) < 2:
        raise ConvtuneError("contrastive mode needs texts of at least two classes")
    lone = sorted(str(k) for k, n in counts.items() if n < 2)
    if lone:
        raise ConvtuneError(f"contrastive mode pairs each text with another of its class: {', '.join(lone[:5])} "
                            "has a single text (give it another, or use --mode finetune)")


def sample_pairs(labels: list, rounds: int, seed: int) -> np.ndarray:
    """(2 x N x rounds, 3) int32 rows (i, j, same): per round, each text i with a text j of one of
    its labels (same = 1) and with a text sharing none (same = 0)."""
    rng = np.random.default_rng(seed)
    groups = _groups(labels)
    sets = [frozenset(y if isinstance(y, tuple | list) else (y,)) for y in labels]
    n, out = len(labels), []
    for _ in range(rounds):
        for i in range(n):
            keys = sorted(sets[i], key=str) or [()]
            mates = groups[keys[rng.integers(len(keys))]]
            if len(mates) > 1:
                j = int(mates[rng.integers(len(mates))])
                while j == i:
                    j = int(mates[rng.integers(len(mates))])
                out.append((i, j, 1))
            for _ in range(NEGATIVE_TRIES):
                j = int(rng.integers(n))
                if not sets[i] & sets[j] and (sets[i] or sets[j]):
                    out.append((i, j, 0))
                    break
    return np.asarray(out, dtype=np.int32).reshape(-1, 3)


def _embed(encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, H): the masked mean of the last layer's token states (sentence-transformers' pooling)."""
    h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    m = mask.unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def contrastive_tune(encoder, tokenizer, texts: list[str], labels: list, *, rounds: int, lr: float, epochs: int,
                     batch_size: int, max_length: int, seed: int, precision: str, device: torch.device) -> dict:
    """Tune `encoder` in place on pairs drawn from the labels (AdamW, linear warm-up over the
    first 10% of steps then decay); what it did: pairs, steps, seconds, the last epoch's loss."""
    check_pairable(labels)
    start = time.perf_counter()
    pairs = sample_pairs(labels, rounds, seed)
    ids = tokenize(tokenizer, texts, max_length).ids
    encoder.to(device).train().requires_grad_(True)
    params = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(pairs) / batch_size)
    warm = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    rng, losses = np.random.default_rng(seed), []
    for _ in range(epochs):
        losses = []
        for batch in np.array_split(pairs[rng.permutation(len(pairs))], math.ceil(len(pairs) / batch_size)):
            rows = np.unique(batch[:, :2])                    # each text of the batch encoded once
            where = {int(r): k for k, r in enumerate(rows)}
            x, mask = collate([ids[r] for r in rows], tokenizer.pad_token_id)
            with autocast(precision, device.type):
                e = _embed(encoder, x.to(device), mask.to(device))
            e = F.normalize(e, dim=-1)
            u = e[[where[int(i)] for i in batch[:, 0]]]
            v = e[[where[int(j)] for j in batch[:, 1]]]
            loss = F.mse_loss((u * v).sum(-1), torch.as_tensor(batch[:, 2], dtype=torch.float32, device=device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
    encoder.eval()
    return {"pairs": int(len(pairs)), "steps": steps, "seconds": round(time.perf_counter() - start, 2),
            "loss": round(float(np.mean(losses)), 5) if losses else None}


def fit_linear_head(encoder, tokenizer, classifier: torch.nn.Linear, texts: list[str], y: np.ndarray, *,
                    max_length: int, precision: str, device: torch.device, batch_size: int = 64) -> float:
    """SetFit's second stage: a logistic regression (scikit-learn's, L2, C = 1) on the tuned
    encoder's masked-mean embeddings, written into the linear head's `classifier` (binary: the
    two logits -z/2 and z/2, whose softmax is the regression's sigmoid). Returns seconds."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    ids = tokenize(tokenizer, texts, max_length).ids
    encoder.to(device).eval()
    parts = []
    with torch.inference_mode():
        for i in range(0, len(ids), batch_size):
            x, mask = collate(ids[i:i + batch_size], tokenizer.pad_token_id)
            with autocast(precision, device.type):
                parts.append(_embed(encoder, x.to(device), mask.to(device)).cpu().numpy())
    lr = LogisticRegression(max_iter=2000).fit(np.concatenate(parts), y)
    W, b = lr.coef_, lr.intercept_
    if W.shape[0] == 1:
        W, b = np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    with torch.no_grad():
        classifier.weight.copy_(torch.as_tensor(W, dtype=classifier.weight.dtype))
        classifier.bias.copy_(torch.as_tensor(b, dtype=classifier.bias.dtype))
    return round(time.perf_counter() - start, 2)
