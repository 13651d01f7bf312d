"""Temperature scaling and calibration scores: numbers on made-up logits, then a trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convtune
from convtune import Classifier
from convtune.calibration import (
    brier,
    check_temperature,
    choose_temperature,
    ece,
    fit_temperature,
    nll_of_logits,
    reliability,
    scaled_thresholds,
)
from convtune.errors import ConvtuneError
from tests.conftest import toy_texts


def overconfident(n: int = 2000, seed: int = 0, scale: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a calibrated 3-class model, multiplied by `scale`: over-confident by that factor."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * 1.5
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    return z * scale, y


def test_fitted_temperature_undoes_the_overconfidence():
    logits, y = overconfident(scale=4.0)
    t = fit_temperature(logits, y)
    assert 3.4 < t < 4.6
    assert nll_of_logits(logits / t, y) < nll_of_logits(logits, y)


def test_temperature_lowers_ece_and_keeps_every_prediction():
    logits, y = overconfident(scale=3.0, seed=1)
    t, record = choose_temperature(logits, y)
    soft = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    before, after = soft(logits), soft(logits / t)
    assert ece(after, y) < ece(before, y) / 2
    assert brier(after, y) < brier(before, y)
    assert (after.argmax(1) == before.argmax(1)).all()
    assert record["dev_nll_after"] < record["dev_nll_before"]


def test_a_calibrated_model_keeps_temperature_one():
    logits, y = overconfident(scale=1.0, seed=2)
    t, record = choose_temperature(logits, y)
    assert t is None or abs(t - 1) < 0.1  # kept only if it lowers NLL, and then barely moves


def test_ece_and_reliability_by_hand():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    bins = reliability(proba, y)
    assert [b["count"] for b in bins] == [1, 1, 2]  # 0.6, 0.7, 0.9 twice
    # |1 - 0.6| + |1 - 0.7| + 2 * |0.5 - 0.9|, over 4 texts
    assert ece(proba, y) == pytest.approx((0.4 + 0.3 + 0.8) / 4)
    assert brier(proba, y) == pytest.approx((0.02 + 1.62 + 0.32 + 0.18) / 4)


def test_multilabel_temperatures_are_per_label_and_thresholds_keep_decisions():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4000, 2)) * 2
    truth = (rng.random((4000, 2)) < 1 / (1 + np.exp(-z))).astype(float)
    t = fit_temperature(z * np.array([3.0, 0.5]), truth, multi=True)
    assert 2.5 < t[0] < 3.5 and 0.35 < t[1] < 0.65
    thresholds = [0.3, 0.7]
    moved = scaled_thresholds(thresholds, t)
    p_before = 1 / (1 + np.exp(-z))
    p_after = 1 / (1 + np.exp(-z / np.asarray(t)))
    assert ((p_before >= thresholds) == (p_after >= moved)).all()


@pytest.mark.parametrize("value", [0, -1, 1e9, "2", None, [1.0], True])
def test_absurd_temperatures_are_refused(value):
    with pytest.raises(ValueError, match="temperature"):
        check_temperature(value, 2, False, "convtune.json")


@pytest.fixture(scope="module")
def calibrated(tiny_encoder):
    texts, labels = toy_texts(240)
    dev_texts, dev_labels = toy_texts(60, seed=1)
    clf = Classifier(encoder=str(tiny_encoder), epochs=4, batch_size=16, lr=3e-3, head_lr=1e-2, max_length=16,
                     precision="fp32", seed=0, head_config={"kernel_sizes": [2, 3], "num_filters": 16})
    return clf.fit(texts, labels, dev_texts, dev_labels)


def test_model_fits_saves_and_applies_its_temperature(calibrated, tmp_path):
    test_texts, test_labels = toy_texts(80, seed=7)
    assert calibrated.temperature_ is not None and calibrated.temperature_ != 1.0
    logits = calibrated.decision_function(test_texts)
    proba = calibrated.predict_proba(test_texts)
    z = logits / calibrated.temperature_
    expected = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True), atol=1e-6)
    raw_pred = [calibrated.labels_[i] for i in logits.argmax(1)]
    assert calibrated.predict(test_texts) == raw_pred  # the temperature moves no prediction
    m = calibrated.evaluate(test_texts, test_labels)["calibration"]
    assert set(m) >= {"ece", "brier", "nll", "reliability", "temperature", "uncalibrated"}
    calibrated.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    assert manifest["calibration"]["temperature"] == calibrated.temperature_
    np.testing.assert_allclose(convtune.load(tmp_path / "m").predict_proba(test_texts), proba, atol=1e-6)


def test_calibrate_none_keeps_the_raw_softmax_and_calibrate_adds_a_temperature_later(tiny_encoder, tmp_path):
    texts, labels = toy_texts(120)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, batch_size=16, max_length=16, precision="fp32",
                     calibrate="none").fit(texts, labels)
    assert clf.temperature_ is None and "calibration" not in clf.manifest_
    assert "uncalibrated" not in clf.evaluate(texts, labels)["calibration"]
    held_out = toy_texts(60, seed=11)
    before = clf.predict(held_out[0])
    clf.calibrate(*held_out)
    assert clf.temperature_ is not None and clf.predict(held_out[0]) == before
    clf.save(tmp_path / "m")
    assert convtune.load(tmp_path / "m").temperature_ == clf.temperature_
    assert clf.calibrate(*held_out, method="none").temperature_ is None and "calibration" not in clf.manifest_
    with pytest.raises(ConvtuneError, match="not in the training data"):
        clf.calibrate(["good"], ["maybe"])


def test_absurd_temperature_in_a_model_directory_is_one_line(calibrated, tmp_path):
    calibrated.save(tmp_path / "m")
    path = tmp_path / "m" / "convtune.json"
    manifest = json.loads(path.read_text())
    manifest["calibration"]["temperature"] = -3
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="temperature"):
        convtune.load(tmp_path / "m")


def test_tfidf_reports_calibration_without_a_temperature():
    from convtune.estimators.tfidf import TfidfClassifier

    texts, labels = toy_texts(200)
    clf = TfidfClassifier().fit(texts, labels)
    cal = clf.evaluate(*toy_texts(60, seed=3))["calibration"]
    assert 0 <= cal["ece"] <= 1 and "uncalibrated" not in cal
