"""The training loop's parts: the weight average (--ema) on its own and inside fit."""

import pytest
import torch

from convtune import Classifier
from convtune import config as train_config
from convtune.config import TrainConfig
from convtune.errors import ConvtuneError
from convtune.training import loop as train

from ..conftest import toy_texts


def test_weight_average_follows_the_formula_and_restores_the_raw_weights():
    model = torch.nn.Linear(3, 2)
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    model.register_parameter("fixed", frozen)  # not trainable: not averaged
    start = model.weight.detach().clone()
    average = train.WeightAverage(model, decay=0.5)
    expected = start.clone()
    for t in range(1, 4):
        with torch.no_grad():
            model.weight.add_(1.0)
        average.update()
        decay = min(0.5, (1 + t) / (10 + t))  # the warm-up caps the decay at 2/11, 3/12, 0.5
        expected = decay * expected + (1 - decay) * model.weight.detach()
    raw = model.weight.detach().clone()
    with average.applied():
        torch.testing.assert_close(model.weight.detach(), expected)
        assert not torch.equal(model.weight.detach(), raw)
    torch.testing.assert_close(model.weight.detach(), raw)  # training goes on from the raw weights
    assert len(average.shadow) == 2  # weight and bias; the frozen parameter is left out


def test_weight_average_off_changes_nothing():
    model = torch.nn.Linear(3, 2)
    average = train.WeightAverage(model, decay=0.0)
    before = model.weight.detach().clone()
    average.update()
    with average.applied():
        assert torch.equal(model.weight.detach(), before)
    assert average.shadow == []


def test_fit_keeps_the_averaged_weights(tiny_encoder, monkeypatch):
    # One epoch: the kept model is the average at the end of it, not the last raw weights.
    made = []

    class Recording(train.WeightAverage):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(train, "WeightAverage", Recording)
    texts, labels = toy_texts(64)
    dev_texts, dev_labels = toy_texts(16, seed=1)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, batch_size=16, lr=3e-3, head_lr=1e-2,
                     max_length=16, precision="fp32", seed=0, ema=0.9,
                     head_config={"kernel_sizes": [2], "num_filters": 4}).fit(texts, labels, dev_texts, dev_labels)
    (average,) = made
    kept = [p.detach() for p in clf.model_.parameters() if p.requires_grad]
    assert len(kept) == len(average.shadow)
    for p, s in zip(kept, average.shadow):
        torch.testing.assert_close(p, s)
    assert clf.manifest_["train"]["ema"] == 0.9  # saved with the model


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_ema_out_of_range_is_refused(decay):
    with pytest.raises(ConvtuneError, match="ema must be in"):
        TrainConfig(ema=decay)


def test_warmup_is_the_ratio_of_all_steps_rounded_up():
    # The callback refactor computed 0.1 * 217 * 10 = 217.00000000000003 -> 218 warm-up steps, which
    # moved frozen SST-2 (10 epochs of 217 steps) from 0.8413 to 0.8353 test accuracy.
    assert train.warmup_steps(TrainConfig(epochs=10), 217) == 217
    assert train.warmup_steps(TrainConfig(epochs=3, warmup_ratio=0.1), 217) == 66  # 65.1 rounds up
    assert train.warmup_steps(TrainConfig(warmup_ratio=0.0), 217) == 0


@pytest.mark.parametrize("mode", ["finetune", "lora"])
def test_gradient_checkpointing_recomputes_layers_and_learns_the_same(tiny_encoder, mode):
    # Checkpointing trades memory for a second forward of every layer in the backward pass; what
    # the model learns must not change (dropout masks are replayed from the saved RNG state).
    texts, labels = toy_texts(48)
    dev_texts, dev_labels = toy_texts(16, seed=1)
    calls, probs = {}, {}
    for on in (False, True):
        clf = Classifier(encoder=str(tiny_encoder), mode=mode, epochs=1, batch_size=16, max_length=16,
                         precision="fp32", seed=0, gradient_checkpointing=on,
                         head_config={"kernel_sizes": [2], "num_filters": 4})
        count = []
        real_fit = train.fit

        def counting_fit(model, *args, **kwargs):
            base = model.encoder.get_base_model() if hasattr(model.encoder, "get_base_model") else model.encoder
            base.encoder.layer[0].attention.register_forward_hook(lambda *a: count.append(1) if base.training else None)
            return real_fit(model, *args, **kwargs)

        import convtune.estimators.transformer as est
        est.fit, saved = counting_fit, est.fit
        try:
            clf.fit(texts, labels, dev_texts, dev_labels)
        finally:
            est.fit = saved
        calls[on], probs[on] = len(count), clf.predict_proba(dev_texts)
        assert not (clf.model_.encoder.get_base_model() if mode == "lora" else clf.model_.encoder).is_activation_checkpointing
    assert calls[False] == 3 and calls[True] == 6  # 3 training steps; each layer recomputed once
    torch.testing.assert_close(probs[True], probs[False], atol=1e-5, rtol=0)


def test_sgd_gets_its_own_rates_and_momentum_and_learns(tiny_encoder):
    config = TrainConfig(optimizer="sgd", momentum=0.8).with_learning_rates(1e-4)
    assert (config.lr, config.head_lr) == (train_config.SGD_LR, train_config.SGD_HEAD_LR)  # not AdamW's 1e-4
    assert TrainConfig(optimizer="sgd", lr=0.5).with_learning_rates(1e-4).lr == 0.5       # a given rate wins
    texts, labels = toy_texts(96)
    clf = Classifier(encoder=str(tiny_encoder), optimizer="sgd", momentum=0.8, epochs=8, patience=8, batch_size=16,
                     lr=0.01, head_lr=0.3,
                     max_length=16, precision="fp32", seed=0, head_config={"kernel_sizes": [2], "num_filters": 8})
    made = []
    real = train.make_optimizer
    train.make_optimizer = lambda *a: made.append(real(*a)) or made[-1]
    try:
        clf.fit(texts, labels, *toy_texts(32, seed=1))
    finally:
        train.make_optimizer = real
    (opt,) = made
    assert isinstance(opt, torch.optim.SGD) and {g["momentum"] for g in opt.param_groups} == {0.8}
    assert {g["initial_lr"] for g in opt.param_groups} == {0.01, 0.3}
    assert clf.manifest_["train"]["optimizer"] == "sgd"
    losses = [e["train_loss"] for e in clf.result_.history]
    assert losses[-1] < 0.8 * losses[0], losses  # it learns (SGD on a random tiny model learns slowly)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ConvtuneError, match="optimizer must be one of adamw, sgd"):
        TrainConfig(optimizer="adam")
