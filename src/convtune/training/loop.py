"""One explicit training loop: cross-entropy, AdamW with two learning rates, linear warm-up
then decay, gradient clipping, early stopping on dev macro-F1, best epoch restored.

Distributed training later only needs `rank` / `world_size`: batches are sharded in
`data.batching.train_batches`, and only the caller on rank 0 saves.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from convtune.config import RuntimeConfig, TrainConfig
from convtune.data.batching import (
    Encoded,
    batched_logits,
    collate,
    tokenize,
    train_batches,
)
from convtune.data.labels import LabelSpace
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError
from convtune.metrics import scores
from convtune.progress import progress
from convtune.runtime import autocast, use_bf16
from convtune.training.callbacks import (
    Callback,
    EarlyStopping,
    EpochLog,
    History,
    TrainState,
)


@dataclass
class TrainResult:
    best_epoch: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    step_losses: list[tuple[float, float]] = field(default_factory=list)  # (fractional epoch, loss)
    bf16: bool = False
    cache_seconds: float | None = None  # frozen mode: time spent filling the state cache


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weights(labels: list[int], num_classes: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (scikit-learn's 'balanced') or None."""
    if mode == "none":  # TrainConfig has already refused anything but none / balanced
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return torch.tensor(len(labels) / (num_classes * np.maximum(counts, 1)), dtype=torch.float32)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the encoder at `lr`, the head at `head_lr`, no decay on biases / norms."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if name.startswith(("head.", "head_mix.")) else "encoder"
        no_decay = p.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((part, no_decay), []).append(p)
    return torch.optim.AdamW([
        {"params": ps, "lr": config.head_lr if part == "head" else config.lr,
         "weight_decay": 0.0 if no_decay else config.weight_decay}
        for (part, no_decay), ps in groups.items()])


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Steps of linear warm-up: the ratio of all steps, rounded up. The product is taken in
    this order on purpose: 0.1 * 217 * 10 is 217.00000000000003 (218 steps), 0.1 * 2170 is 217."""
    return math.ceil(config.warmup_ratio * (steps_per_epoch * config.epochs))


def linear_schedule(optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightAverage(Callback):
    """Exponential moving average of the trainable weights; does nothing when decay is 0.

    Dev evaluation and the kept best epoch use the average, while training goes on from the raw
    weights. The decay warms up as min(decay, (1 + t) / (10 + t)) after t updates, so the random
    head initialisation fades within the first steps instead of dominating epoch 1.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.params = [p for p in model.parameters() if p.requires_grad] if decay > 0 else []
        self.shadow = [p.detach().clone() for p in self.params]  # float32, like the weights

    def on_step(self, state: TrainState) -> None:
        self.update()

    @torch.no_grad()
    def update(self) -> None:
        if not self.params:
            return
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, p in zip(self.shadow, self.params):
            average.lerp_(p.detach(), 1.0 - decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; the raw ones come back after."""
        if not self.params:
            yield
            return
        raw = [p.detach().clone() for p in self.params]
        self._load(self.shadow)
        try:
            yield
        finally:
            self._load(raw)

    @torch.no_grad()
    def _load(self, values: list[torch.Tensor]) -> None:
        for p, v in zip(self.params, values):
            p.copy_(v)


Forward = Callable[[list[int]], torch.Tensor]  # batch indices -> logits (B, C)


def _forwards(model, store, enc: Encoded, dev_enc: Encoded, pad_id: int, config: TrainConfig,
              bf16: bool, device: torch.device) -> tuple[Forward, Forward, float | None]:
    """(train forward, dev forward, seconds spent filling the cache); batches go to `device`.

    With a frozen encoder and a state store the encoder runs once per missing text, and both
    forwards run only the head on stored token states.
    """
    def to(tensors):
        return [t.to(device, non_blocking=True) for t in tensors]

    if store is None or not getattr(model, "frozen", False):
        return (lambda idx: model(*to(collate([enc.ids[i] for i in idx], pad_id))),
                lambda idx: model(*to(collate([dev_enc.ids[i] for i in idx], pad_id))), None)
    from convtune.training.state_cache import fill_store

    start = time.perf_counter()
    train_keys = fill_store(model, store, enc.ids, pad_id, config.eval_batch_size, bf16, desc="encode train")
    dev_keys = fill_store(model, store, dev_enc.ids, pad_id, config.eval_batch_size, bf16, desc="encode dev")
    return (lambda idx: model.classify(*to(store.batch([train_keys[i] for i in idx]))),
            lambda idx: model.classify(*to(store.batch([dev_keys[i] for i in idx]))),
            round(time.perf_counter() - start, 2))


@dataclass
class _Run:
    """What every training step uses (one object instead of a dozen parameters)."""

    model: torch.nn.Module
    forward: Forward
    space: LabelSpace                  # the classes, and the loss over them
    y: torch.Tensor                    # (N,) class index of each training text, on `device`
    weight: torch.Tensor | None        # (C,) class weights, or None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: TrainConfig
    bf16: bool
    device: torch.device


def _train_epoch(run: _Run, batches: list[list[int]], state: TrainState, hooks: list[Callback]) -> float:
    """One pass over `batches`; returns the mean training loss."""
    run.model.train()
    bar = progress(batches, desc=f"epoch {state.epoch}/{state.epochs}", unit="batch", quiet=not state.is_main)
    losses = []
    for idx in bar:
        with autocast(run.bf16, run.device.type):
            logits = run.forward(idx)
        loss = run.space.loss(logits, run.y[idx], run.weight, run.config.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        state.step, state.loss = state.step + 1, loss.item()
        if not math.isfinite(state.loss):  # NaN / inf: every later step and the saved model would be NaN
            raise ConvtuneError(
                f"training loss became {state.loss} at epoch {state.epoch}, step {len(losses) + 1}: the learning "
                f"rate is too high (lr {run.config.lr:g}, head lr {run.config.head_lr:g}) or the data breaks "
                "the model; nothing was saved")
        losses.append(state.loss)
        for hook in hooks:
            hook.on_step(state)
        if len(losses) % 20 == 1:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
    return float(np.mean(losses))


def _check_dev(run: _Run, dev_forward: Forward, dev_enc: Encoded, dev: TextSet, labels: list[str],
               state: TrainState, average: WeightAverage) -> dict | None:
    """Dev accuracy / macro-F1 into `state`; the trainable weights if they are the best so far."""
    run.model.eval()
    best = None
    with average.applied():  # a no-op without --ema; with it, dev sees (and we keep) the average
        pred = batched_logits(dev_forward, dev_enc.lengths(), run.config.eval_batch_size, run.bf16, "dev").argmax(1)
        state.dev = scores(dev.labels, [labels[i] for i in pred], labels)
        state.improved = state.dev["macro_f1"] > state.best_score
        if state.improved:  # a frozen encoder never changes: keep only the trainable part
            frozen = getattr(run.model, "frozen", False)
            best = {k: v.detach().clone() for k, v in run.model.state_dict().items()
                    if not (frozen and k.startswith("encoder."))}
            state.best_score, state.best_epoch = state.dev["macro_f1"], state.epoch
    return best


def fit(model: torch.nn.Module, tokenizer, train: TextSet, dev: TextSet, labels: list[str],
        config: TrainConfig, max_length: int, runtime: RuntimeConfig | None = None, rank: int = 0,
        world_size: int = 1, store=None, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train `model` in place; on return it holds the best epoch's weights.

    With a frozen encoder and a `store` (training.state_cache.StateStore), the encoder runs once per text
    that the store lacks, and every epoch trains the head on the stored token states.
    `callbacks` run after the built-in ones (weight average, history, epoch log, early stopping).
    `runtime` (precision, device) changes how fast it runs, not what it learns.
    """
    seed_everything(config.seed)
    runtime = runtime or RuntimeConfig()
    device, bf16 = torch.device(runtime.device), use_bf16(runtime.bf16)
    space = LabelSpace(tuple(labels))
    enc = tokenize(tokenizer, train.texts, max_length)
    dev_enc = tokenize(tokenizer, dev.texts, max_length)
    y = torch.from_numpy(space.encode(train.labels))
    weight = class_weights(y.tolist(), len(labels), config.class_weight)
    model.to(device)
    start = time.perf_counter()
    forward, dev_forward, cache_seconds = _forwards(model, store, enc, dev_enc, tokenizer.pad_token_id, config,
                                                    bf16, device)
    steps = len(train_batches(enc.lengths(), config.batch_size, config.seed, 0, rank, world_size))
    optimizer = make_optimizer(model, config)
    run = _Run(model, forward, space, y.to(device), None if weight is None else weight.to(device), optimizer,
               linear_schedule(optimizer, warmup_steps(config, steps), steps * config.epochs), config, bf16, device)
    average, history = WeightAverage(model, config.ema), History()
    hooks = [average, history, EpochLog(), EarlyStopping(config.patience), *callbacks]
    state, best_state = TrainState(config.epochs, steps, is_main=rank == 0), None
    for state.epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        batches = train_batches(enc.lengths(), config.batch_size, config.seed, state.epoch, rank, world_size)
        state.train_loss = _train_epoch(run, batches, state, hooks)
        best_state = _check_dev(run, dev_forward, dev_enc, dev, labels, state, average) or best_state
        state.epoch_seconds = time.perf_counter() - epoch_start
        for hook in hooks:
            hook.on_epoch_end(state)
        if state.stop:
            break
    for hook in hooks:
        hook.on_fit_end(state)
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    return TrainResult(best_epoch=state.best_epoch, train_seconds=round(time.perf_counter() - start, 2),
                       history=history.epochs, step_losses=history.step_losses, bf16=bf16,
                       cache_seconds=cache_seconds)
