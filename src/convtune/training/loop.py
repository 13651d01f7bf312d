"""One explicit training loop: cross-entropy, AdamW with two learning rates, linear warm-up
then decay, gradient clipping, early stopping on dev macro-F1, best epoch restored.

On any device and precision (runtime.py), with gradient accumulation, and under torchrun on
many ranks (DDP; distributed.py says what every rank does): a step is one global batch of
batch_size * ranks * grad_accum texts, each micro-batch's mean loss weighted by its share of
the step, so N ranks or N accumulated micro-batches of B texts take the very step one process
takes with N * B texts. Only the caller on rank 0 saves.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from convtune.config import RuntimeConfig, TrainConfig
from convtune.data.batching import (
    Encoded,
    LongText,
    Step,
    collate,
    pool_windows,
    text_logits,
    tokenize,
    train_steps,
)
from convtune.data.labels import LabelSpace
from convtune.data.multilabel import MultiLabelSpace, is_multi, pos_weight
from convtune.data.texts import TextSet
from convtune.errors import TrainingDiverged, warn
from convtune.metrics import multilabel_scores, scores
from convtune.modeling.encoders import DEFAULT_LR
from convtune.progress import progress
from convtune.distributed import Ranks, all_sum, barrier, current
from convtune.runtime import (
    autocast,
    flush_denormal,
    grad_scaler,
    host_to_device,
    resolve_device,
    resolve_precision,
)
from convtune.training.callbacks import (
    Callback,
    EarlyStopping,
    EpochLog,
    History,
    TrainState,
    WeightAverage,
)


@dataclass
class TrainResult:
    best_epoch: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    step_losses: list[tuple[float, float]] = field(default_factory=list)  # (fractional epoch, loss)
    precision: str = "fp32"  # what autocast ran in: fp32, bf16 or fp16
    cache_seconds: float | None = None  # frozen mode: time spent filling the state cache
    # (dev texts, C) logits of the kept (best) epoch, as its dev check scored them: fit's last
    # steps (thresholds, temperature) and the run's dev report reuse them instead of running the
    # model over dev again (frozen mode: from the token-state cache, so the encoder never runs).
    dev_logits: np.ndarray | None = None


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


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or SGD with momentum) with the encoder at `lr`, the head at `head_lr`, no decay
    on biases / norms (`fit` has filled in unset rates).

    The fused kernel (CPU, CUDA, MPS): on 2 cores the per-parameter loop took 80 of a 410 ms
    MiniLM step, fused 20 ms (docs/comparisons.md, "Many processes"); under DDP every rank
    repeats the step on its share of the cores, so the loop cost twice as much there."""
    groups: dict[tuple[str, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if name.startswith(("head.", "head_mix.")) else "encoder"
        no_decay = p.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((part, no_decay), []).append(p)
    params = [{"params": ps, "lr": config.head_lr if part == "head" else config.lr, "name": part,
               "weight_decay": 0.0 if no_decay else config.weight_decay}
              for (part, no_decay), ps in groups.items()]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=config.momentum, fused=_fusable(groups))
    return torch.optim.AdamW(params, fused=_fusable(groups))


def _fusable(groups: dict) -> bool | None:
    devices = {p.device.type for ps in groups.values() for p in ps}
    return True if devices and devices <= {"cpu", "cuda", "mps"} else None


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


Forward = Callable[[list[int]], torch.Tensor]  # batch indices -> logits (B, C)


class _StepModule(torch.nn.Module):
    """The model's training forward as one module call, so that DDP sees (and syncs) every
    step, whether it runs the whole model or, on cached token states, only the head."""

    def __init__(self, model: torch.nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(*tensors)


def _checkpointing(model, on: bool) -> None:
    """Turn the encoder's gradient checkpointing on or off (Hugging Face models' own switch).
    Each layer's forward runs again in the backward pass; a frozen encoder has nothing to recompute."""
    encoder = getattr(model, "encoder", None)
    base = encoder.get_base_model() if hasattr(encoder, "get_base_model") else encoder
    if getattr(model, "frozen", False) or not getattr(base, "supports_gradient_checkpointing", False):
        if on:
            warn("--gradient-checkpointing: this encoder is frozen or cannot checkpoint; ignored")
        return
    if on:
        base.activation_checkpointing_enable({"use_reentrant": False})
    elif base.is_activation_checkpointing:
        base.activation_checkpointing_disable()


def _forwards(model, store, enc: Encoded, dev_enc: Encoded, pad_id: int, config: TrainConfig,
              precision: str, device: torch.device, ranks: Ranks, pool: str = "mean"):
    """(train module, train forward over texts, dev forward over entries of dev_enc, seconds
    spent filling the cache).

    With a frozen encoder and a state store the encoder runs once per missing text, and both
    forwards run only the head on stored token states. The train module is DDP-wrapped when
    there are several ranks (frozen parts have no gradient, so none is left unused: #43259).
    """
    start, cache_seconds = time.perf_counter(), None
    if store is None or not getattr(model, "frozen", False):
        step, train_inputs = _StepModule(model, "forward"), lambda idx: collate([enc.ids[i] for i in idx], pad_id)
        dev_inputs = lambda idx: collate([dev_enc.ids[i] for i in idx], pad_id)  # noqa: E731
        dev_call = model
    else:
        train_keys, dev_keys = _fill_cache(model, store, enc, dev_enc, pad_id, config, precision, ranks)
        cache_seconds = round(time.perf_counter() - start, 2)
        step, train_inputs = _StepModule(model, "classify"), lambda idx: store.batch([train_keys[i] for i in idx])
        dev_inputs = lambda idx: store.batch([dev_keys[i] for i in idx])  # noqa: E731
        dev_call = model.classify
    if ranks.active:
        step = torch.nn.parallel.DistributedDataParallel(
            step, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False,
            gradient_as_bucket_view=True)
    train_forward = _per_text(lambda idx: step(*host_to_device(train_inputs(idx), device)), enc, pool)
    return step, train_forward, lambda idx: dev_call(*host_to_device(dev_inputs(idx), device)), cache_seconds


def _per_text(forward: Forward, enc: Encoded, pool: str) -> Forward:
    """A forward over texts from one over entries of `enc`: with windows, every window of the
    batch's texts goes through the model at once and their logits are pooled per text."""
    if enc.owner is None:
        return forward

    def texts_forward(idx: list[int]) -> torch.Tensor:
        windows, seg = enc.windows_of(idx)
        return pool_windows(forward(windows), seg, len(idx), pool)
    return texts_forward


def _fill_cache(model, store, enc: Encoded, dev_enc: Encoded, pad_id: int, config: TrainConfig,
                precision: str, ranks: Ranks) -> tuple[list[bytes], list[bytes]]:
    """Keys of the train and dev texts after the encoder ran over those the store lacks: on rank
    0 first; the others then read what it wrote (and fill only what their disk still lacks)."""
    from convtune.training.state_cache import fill_store

    def fill() -> tuple[list[bytes], list[bytes]]:
        batch = config.eval_batch_size
        return (fill_store(model, store, enc.ids, pad_id, batch, precision, desc="encode train"),
                fill_store(model, store, dev_enc.ids, pad_id, batch, precision, desc="encode dev"))

    keys = fill() if ranks.is_main else None
    if ranks.active:
        barrier()
        if not ranks.is_main:
            store.reload()
            keys = fill()
    return keys


@dataclass
class _Run:
    """What every training step uses (one object instead of a dozen parameters)."""

    model: torch.nn.Module
    module: torch.nn.Module            # what the step calls: the model, or its DDP wrapper
    forward: Forward
    space: LabelSpace | MultiLabelSpace  # the classes, and the loss over them
    y: torch.Tensor                    # (N,) class index of each text, or (N, C) 0/1 (multi-label), on `device`
    weight: torch.Tensor | None        # (C,) class weights, or None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler       # loss scaling for fp16 (a pass-through otherwise)
    config: TrainConfig
    precision: str
    device: torch.device
    ranks: Ranks
    pool: str = "mean"                 # windows: how window logits become a text's
    # What clipping looks at: only weights that train (a frozen encoder's hundred-odd tensors
    # without gradients cost clip_grad_norm_ a millisecond a step for nothing).
    trainable: list[torch.nn.Parameter] = field(default_factory=list)


def _step_loss(run: _Run, step: Step) -> float:
    """Forward and backward over this rank's micro-batches; returns the step's global mean loss.

    Each micro-batch's mean loss is weighted by ranks * its share of the step: DDP averages
    gradients over the ranks and accumulation sums them, so the gradient is that of the mean
    loss over the whole global batch, however it was cut."""
    ddp = isinstance(run.module, torch.nn.parallel.DistributedDataParallel)
    share_sum = torch.zeros((), dtype=torch.float64)
    for k, idx in enumerate(step.micro):
        last = k == len(step.micro) - 1
        with contextlib.nullcontext() if last or not ddp else run.module.no_sync():
            with autocast(run.precision, run.device.type):
                logits = run.forward(idx)
            loss = run.space.loss(logits, run.y[idx], run.weight, run.config.label_smoothing)
            share = len(idx) * run.ranks.world_size / step.total
            run.scaler.scale(loss * share).backward()
        share_sum += loss.detach().double().cpu() * (len(idx) / step.total)
    return float(all_sum(share_sum))


def _train_epoch(run: _Run, steps: list[Step], state: TrainState, hooks: list[Callback]) -> float:
    """One pass over `steps`; returns the mean training loss."""
    run.module.train()
    bar = progress(steps, desc=f"epoch {state.epoch}/{state.epochs}", unit="step", quiet=not state.is_main)
    losses = []
    for step in bar:
        run.optimizer.zero_grad(set_to_none=True)
        state.loss = _step_loss(run, step)
        if not math.isfinite(state.loss):  # NaN / inf: every later step and the saved model would be NaN
            raise TrainingDiverged(
                f"training loss became {state.loss} at epoch {state.epoch}, step {len(losses) + 1}: the learning "
                f"rate is too high (lr {run.config.lr:g}, head lr {run.config.head_lr:g}) or the data breaks "
                "the model; nothing was saved")
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(run.trainable, run.config.max_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        state.step += 1
        losses.append(state.loss)
        for hook in hooks:
            hook.on_step(state)
        if len(losses) % 20 == 1:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
    return float(np.mean(losses))


def _check_dev(run: _Run, dev_forward: Forward, dev_enc: Encoded, dev: TextSet, labels: list[str],
               state: TrainState, average: WeightAverage) -> tuple[dict, np.ndarray] | None:
    """Dev accuracy / macro-F1 into `state`; (the trainable weights, the dev logits) if they are
    the best so far."""
    model = run.model
    model.eval()
    best = None
    with average.applied():  # a no-op without --ema; with it, dev sees (and we keep) the average
        # Every rank scores its share of dev and sees all the logits: the same early stopping.
        logits = text_logits(dev_forward, dev_enc, run.config.eval_batch_size, run.precision, "dev",
                             run.device.type, run.pool)
        if isinstance(run.space, MultiLabelSpace):  # at 0.5: thresholds are tuned once, after training
            state.dev = multilabel_scores(run.space.encode(dev.labels), run.space.decide(run.space.probabilities(logits)))
        else:
            state.dev = scores(dev.labels, [labels[i] for i in logits.argmax(1)], labels)
        state.improved = state.dev["macro_f1"] > state.best_score
        if state.improved:  # weights that never change (a frozen encoder, an adapter's base) are not copied
            fixed = {name for name, p in model.named_parameters() if not p.requires_grad}
            best = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in fixed}, logits
            state.best_score, state.best_epoch = state.dev["macro_f1"], state.epoch
    return best


def _targets(train: TextSet, labels: list[str], config: TrainConfig):
    """(space, y, class weights): y is (N,) class indices, or (N, C) 0/1 for label sets, whose
    balanced weights are BCE's pos_weight (each label's negatives / positives)."""
    if is_multi(train.labels):
        space = MultiLabelSpace(tuple(labels))
        weight = pos_weight(train.labels, labels) if config.class_weight == "balanced" else None
        return space, torch.from_numpy(space.encode(train.labels)), weight
    space = LabelSpace(tuple(labels))
    y = torch.from_numpy(space.encode(train.labels))
    return space, y, class_weights(y.tolist(), len(labels), config.class_weight)


def fit(model: torch.nn.Module, tokenizer, train: TextSet, dev: TextSet, labels: list[str],
        config: TrainConfig, max_length: int, runtime: RuntimeConfig | None = None, store=None,
        callbacks: Sequence[Callback] = (), long_text: str | LongText = "truncate") -> TrainResult:
    """Train `model` in place; on return it holds the best epoch's weights.

    With a frozen encoder and a `store` (training.state_cache.StateStore), the encoder runs once per text
    that the store lacks, and every epoch trains the head on the stored token states.
    `callbacks` run after the built-in ones (weight average, history, epoch log, early stopping).
    `long_text` is how texts over max_length are read (data.batching.LongText); with windows a
    batch is a batch of texts, each with all its windows, their logits pooled before the loss.
    `runtime` (device, precision) changes where and how fast it runs, not what it learns. Under
    torchrun every rank calls fit with the same data; each trains on its share of every step.
    """
    seed_everything(config.seed)
    config = config.with_learning_rates(DEFAULT_LR)  # a no-op for the estimators, which set both rates
    runtime, ranks = runtime or RuntimeConfig(), current()
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    space, y, weight = _targets(train, labels, config)
    rule = LongText.of(long_text)
    enc, dev_enc = (tokenize(tokenizer, part.texts, max_length, rule) for part in (train, dev))
    model.to(device)
    _checkpointing(model, runtime.gradient_checkpointing)
    start = time.perf_counter()
    module, forward, dev_forward, cache_seconds = _forwards(model, store, enc, dev_enc, tokenizer.pad_token_id,
                                                            config, precision, device, ranks, rule.pool)
    plan = dict(lengths=enc.text_lengths(), batch_size=config.batch_size, seed=config.seed,
                world_size=ranks.world_size, rank=ranks.rank, accum=config.grad_accum,
                windows=enc.windows_per_text())
    steps = len(train_steps(epoch=0, **plan))
    optimizer = make_optimizer(model, config)
    run = _Run(model, module, forward, space, y.to(device), None if weight is None else weight.to(device), optimizer,
               linear_schedule(optimizer, warmup_steps(config, steps), steps * config.epochs),
               grad_scaler(precision, device), config, precision, device, ranks, rule.pool,
               [p for p in module.parameters() if p.requires_grad])
    average, history = WeightAverage(model, config.ema), History()
    hooks = [average, history, EpochLog(), EarlyStopping(config.patience), *callbacks]
    state = TrainState(config.epochs, steps, is_main=ranks.is_main, param_groups=optimizer.param_groups)
    best = _epochs(run, state, hooks, plan, lambda: _check_dev(run, dev_forward, dev_enc, dev, labels, state, average))
    if best is not None:
        model.load_state_dict(best[0], strict=False)
    _checkpointing(model, False)
    return TrainResult(best_epoch=state.best_epoch, train_seconds=round(time.perf_counter() - start, 2),
                       history=history.epochs, step_losses=history.step_losses, precision=precision,
                       cache_seconds=cache_seconds, dev_logits=None if best is None else best[1])


def _epochs(run: _Run, state: TrainState, hooks: list, plan: dict, check_dev) -> tuple | None:
    """The epochs: train, check dev (`check_dev()` returns (weights, dev logits) on a new best),
    tell the hooks; stop when one says so. Returns the best epoch's (weights, dev logits)."""
    best = None
    with flush_denormal():
        for state.epoch in range(1, state.epochs + 1):
            epoch_start = time.perf_counter()
            state.train_loss = _train_epoch(run, train_steps(epoch=state.epoch, **plan), state, hooks)
            best = check_dev() or best
            state.epoch_seconds = time.perf_counter() - epoch_start
            for hook in hooks:
                hook.on_epoch_end(state)
            if state.stop:
                break
    for hook in hooks:
        hook.on_fit_end(state)
    return best
