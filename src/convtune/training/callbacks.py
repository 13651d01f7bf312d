"""The training loop's extension points: the state it keeps, and callbacks that read it.

    fit -> after every optimizer step:  on_step(state)       state.loss, state.step
        -> after every dev check:       on_epoch_end(state)  state.train_loss, state.dev, state.improved
        -> once, at the end:            on_fit_end(state)    state.best_epoch
A callback stops training by setting ``state.stop`` (early stopping here; later, search
pruning). Progress, history, early stopping and the weight average plug in this way, and so can
a tracker: ``Classifier(...).fit(..., callbacks=[MyLogger()])``. Only the main process
(``state.is_main``) should write anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


@dataclass
class TrainState:
    """What the loop knows; callbacks read it (and may set `stop`)."""

    epochs: int
    steps_per_epoch: int
    epoch: int = 0                  # the epoch running (1-based)
    step: int = 0                   # optimizer steps taken in this fit
    loss: float = math.nan          # the last step's training loss
    train_loss: float = math.nan    # the last epoch's mean training loss
    dev: dict = field(default_factory=dict)  # the last dev check: accuracy, macro_f1
    epoch_seconds: float = 0.0
    improved: bool = False          # the last dev check beat every earlier one
    best_score: float = -1.0        # best dev macro-F1 so far
    best_epoch: int = 0
    stop: bool = False              # set by a callback: no further epoch starts
    is_main: bool = True            # rank 0 of a distributed run (the only one that writes)
    param_groups: list = field(default_factory=list, repr=False)  # the optimizer's (live) groups

    @property
    def learning_rates(self) -> dict:
        """The rates the next step uses: {"encoder": lr, "head": lr} (read only when asked)."""
        return {g["name"]: g["lr"] for g in self.param_groups if "name" in g}


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_step(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState) -> None:
        pass

    def on_fit_end(self, state: TrainState) -> None:
        pass


class History(Callback):
    """Per-epoch records and per-step losses, as saved in convtune.json / metrics.json and plotted."""

    def __init__(self):
        self.epochs: list[dict] = []
        self.step_losses: list[tuple[float, float]] = []  # (fractional epoch, loss)

    def on_step(self, state: TrainState) -> None:
        into_epoch = state.step - (state.epoch - 1) * state.steps_per_epoch
        self.step_losses.append((state.epoch - 1 + into_epoch / state.steps_per_epoch, state.loss))

    def on_epoch_end(self, state: TrainState) -> None:
        self.epochs.append({"epoch": state.epoch, "train_loss": state.train_loss,
                            "dev_accuracy": state.dev["accuracy"], "dev_macro_f1": state.dev["macro_f1"],
                            "seconds": round(state.epoch_seconds, 2)})


class EpochLog(Callback):
    """One line per epoch on the terminal (above the progress bars)."""

    def on_epoch_end(self, state: TrainState) -> None:
        if state.is_main:
            tqdm.write(f"epoch {state.epoch}: train loss {state.train_loss:.4f}  dev accuracy "
                       f"{state.dev['accuracy']:.4f}  dev macro-F1 {state.dev['macro_f1']:.4f}")


class EarlyStopping(Callback):
    """Stop after `patience` dev checks without a macro-F1 gain."""

    def __init__(self, patience: int):
        self.patience, self.stale = patience, 0

    def on_epoch_end(self, state: TrainState) -> None:
        self.stale = 0 if state.improved else self.stale + 1
        if self.stale >= self.patience:
            state.stop = True
            if state.is_main:
                tqdm.write(f"early stop: no dev macro-F1 gain for {self.stale} epochs")


class RankBudget(Callback):
    """AdaLoRA's budget schedule: after every optimizer step (its gradients still present) peft
    scores each singular value and prunes to the target rank; without this call AdaLoRA trains
    a fixed rank (peft #1327, #1801)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def on_step(self, state: TrainState) -> None:
        from convtune.modeling.adapters import allocate

        allocate(self.encoder, state.step)


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
