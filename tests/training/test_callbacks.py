"""The training loop's callbacks: what they see, and that they can stop training."""

from __future__ import annotations

import pytest

from convtune import Classifier
from convtune.training.callbacks import Callback, EarlyStopping, TrainState

from ..conftest import toy_texts


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None):
        self.steps, self.epochs, self.ends, self.stop_after = [], [], 0, stop_after

    def on_step(self, state):
        self.steps.append((state.epoch, state.step, state.loss))

    def on_epoch_end(self, state):
        self.epochs.append((state.epoch, dict(state.dev), state.improved, state.train_loss))
        if self.stop_after is not None and state.epoch >= self.stop_after:
            state.stop = True

    def on_fit_end(self, state):
        self.ends += 1


def _fit(tiny_encoder, *callbacks, epochs=3, patience=5):
    texts, labels = toy_texts(96)
    dev = toy_texts(32, seed=1)
    clf = Classifier(encoder=str(tiny_encoder), epochs=epochs, patience=patience, batch_size=16, precision="fp32",
                     max_length=16, head_config={"num_filters": 8})
    return clf.fit(texts, labels, *dev, callbacks=list(callbacks))


def test_callbacks_see_every_step_and_every_dev_check(tiny_encoder):
    rec = Recorder()
    clf = _fit(tiny_encoder, rec)
    history = clf.result_.history
    assert [e[0] for e in rec.epochs] == [1, 2, 3] and rec.ends == 1
    assert [s[1] for s in rec.steps] == list(range(1, len(rec.steps) + 1))   # global step count
    assert len(rec.steps) == 3 * 6                                            # 96 texts / 16 per batch, 3 epochs
    assert [e[1]["macro_f1"] for e in rec.epochs] == [h["dev_macro_f1"] for h in history]
    assert [round(e[3], 6) for e in rec.epochs] == [round(h["train_loss"], 6) for h in history]
    assert [s[2] for s in rec.steps] == [loss for _, loss in clf.result_.step_losses]


def test_a_callback_can_stop_training(tiny_encoder):
    rec = Recorder(stop_after=1)
    clf = _fit(tiny_encoder, rec, epochs=4)
    assert len(clf.result_.history) == 1 and rec.ends == 1 and clf.result_.best_epoch == 1


@pytest.mark.parametrize("improvements, stops_at", [([True, False, False], 3), ([True, False, True, False], None)])
def test_early_stopping_counts_checks_without_a_gain(improvements, stops_at):
    stopper, state = EarlyStopping(patience=2), TrainState(epochs=len(improvements), steps_per_epoch=1)
    stopped = None
    for epoch, improved in enumerate(improvements, 1):
        state.epoch, state.improved = epoch, improved
        stopper.on_epoch_end(state)
        if state.stop and stopped is None:
            stopped = epoch
    assert stopped == stops_at
