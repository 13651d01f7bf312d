"""Multi-label models: BCE, tuned thresholds saved with the model, set predictions, metrics."""

from __future__ import annotations

import numpy as np
import pytest

import convtune
from convtune import Classifier
from convtune.errors import ConvtuneError
from convtune.estimators.tfidf import TfidfClassifier
from tests.conftest import toy_multilabel, toy_texts


@pytest.fixture(scope="module")
def fitted(tiny_encoder):
    texts, labels = toy_multilabel(240)
    clf = Classifier(encoder=str(tiny_encoder), epochs=6, batch_size=16, lr=3e-3, seed=0)
    return clf.fit(texts, labels)


def test_transformer_learns_label_sets(fitted):
    texts, labels = toy_multilabel(80, seed=5)
    m = fitted.evaluate(texts, labels)
    assert m["multi_label"] and m["micro_f1"] > 0.9, m["report"]
    assert set(m) >= {"macro_f1", "samples_f1", "hamming_loss", "subset_accuracy", "lrap", "per_class"}
    assert len(fitted.thresholds_) == 2 and all(0 < t < 1 for t in fitted.thresholds_)
    proba = fitted.predict_proba(texts)
    assert proba.shape == (80, 2) and not np.allclose(proba.sum(axis=1), 1)  # sigmoids, not a softmax
    pred = fitted.predict(texts)
    assert all(isinstance(p, list) for p in pred) and [] in pred and ["neg", "pos"] in pred


def test_saved_thresholds_reload_and_override(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    back = convtune.load(tmp_path / "m")
    texts, _ = toy_multilabel(20, seed=9)
    assert back.thresholds_ == fitted.thresholds_ and back.predict(texts) == fitted.predict(texts)
    assert all(p == ["neg", "pos"] for p in back.predict(texts, threshold=0.0))
    assert all(p for p in back.predict(texts, at_least_one=True))
    with pytest.raises(ConvtuneError, match="from 0 to 1"):
        back.predict(texts, threshold=2)


def test_damaged_thresholds_entry_is_one_line(fitted, tmp_path):
    import json

    fitted.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    manifest["thresholds"] = [0.5, "high"]
    (tmp_path / "m" / "convtune.json").write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="threshold 1"):
        convtune.load(tmp_path / "m")


@pytest.mark.parametrize("model", ["svm", "nb"])
def test_tfidf_one_vs_rest(model, tmp_path):
    texts, labels = toy_multilabel(400)
    clf = TfidfClassifier(model=model).fit(texts, labels)
    m = clf.evaluate(*toy_multilabel(100, seed=3))
    assert m["micro_f1"] > (0.9 if model == "svm" else 0.8), m["report"]  # NB's log-odds are cruder
    clf.save(tmp_path / "t")
    assert convtune.load(tmp_path / "t").predict(texts[:30]) == clf.predict(texts[:30])


def test_single_label_data_as_sets_of_one(tiny_encoder):
    texts, labels = toy_texts(120)
    clf = TfidfClassifier().fit(texts, [[y] for y in labels])
    assert clf.multi_label_ and all(len(p) <= 2 for p in clf.predict(texts[:10]))
    with pytest.raises(ConvtuneError, match="multi-label"):
        TfidfClassifier().fit(texts, labels).predict(texts[:2], threshold=0.3)


def test_balanced_class_weight_is_a_pos_weight(tiny_encoder):
    texts, labels = toy_multilabel(80)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, batch_size=16, class_weight="balanced")
    assert clf.fit(texts, labels).multi_label_


@pytest.fixture(scope="module")
def windowed(tiny_encoder):
    """Label sets behind 22 neutral words, read in windows of 12 tokens (all of them)."""
    texts, labels = _behind_neutral(*toy_multilabel(240))
    clf = Classifier(encoder=str(tiny_encoder), epochs=6, batch_size=16, lr=3e-3, head_lr=1e-2, seed=0,
                     max_length=12, long_text="windows", max_windows=0)
    return clf.fit(texts, labels)


def _behind_neutral(texts: list[str], labels: list) -> tuple[list[str], list]:
    from tests.conftest import NEUTRAL

    return [" ".join(NEUTRAL * 2) + " " + t for t in texts], labels


@pytest.mark.parametrize("model", ["fitted", "windowed"])
def test_every_interface_gives_the_same_label_sets(model, request, tmp_path, capsys):
    """Python, CLI (JSONL and CSV), server and ONNX agree on a multi-label model's sets; with
    windows over long texts, and a 1 MB text among them, too."""
    import csv
    import json

    from fastapi.testclient import TestClient

    from convtune.cli import main
    from convtune.deploy.export import ParityData, export_onnx
    from convtune.deploy.serve import ServeConfig, create_app

    fitted = request.getfixturevalue(model)
    fitted.save(tmp_path / "m")
    texts, labels = toy_multilabel(40, seed=11)
    if model == "windowed":
        texts, labels = _behind_neutral(texts, labels)
        texts.append("good " + "the " * 250_000 + "bad")  # 1 MB: 50,000 windows, in batches
        assert fitted.evaluate(texts[:-1], labels)["micro_f1"] > 0.85  # the windows found the labels
    want = fitted.predict(texts)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n")
    assert main(["predict", str(tmp_path / "m"), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in rows] == want
    assert main(["predict", str(tmp_path / "m"), "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 0
    csv.field_size_limit(4_000_000)  # the output holds the 1 MB text
    with (tmp_path / "o.csv").open() as f:
        assert [json.loads(r["labels"]) for r in csv.DictReader(f)] == want
    limits = ServeConfig(max_chars=2_000_000, max_body=4_000_000)
    with TestClient(create_app(str(tmp_path / "m"), limits)) as client:  # the context runs the batcher
        got = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert [p["labels"] for p in got] == want
    export_onnx(tmp_path / "m", tmp_path / "onnx", ParityData(texts[:40], None, "toy"))
    onnx = convtune.load(tmp_path / "onnx")
    assert onnx.multi_label_ and onnx.thresholds_ == fitted.thresholds_
    assert onnx.predict(texts) == want


def test_textcnn_and_frozen_cached_heads_train_multilabel(tiny_encoder, tmp_path, monkeypatch):
    """TextCNN, and a frozen encoder through the token-state cache, take label sets too."""
    from convtune.estimators.textcnn import TextCNNClassifier

    monkeypatch.setenv("CONVTUNE_CACHE", str(tmp_path / "cache"))
    texts, labels = toy_multilabel(400)
    test = toy_multilabel(60, seed=4)
    # Predicting both labels for every text scores micro-F1 0.67 here: the bar is above that.
    cnn = TextCNNClassifier(epochs=10, lr=3e-3, seed=0).fit(texts, labels)
    assert cnn.multi_label_ and cnn.evaluate(*test)["subset_accuracy"] > 0.7
    frozen = Classifier(encoder=str(tiny_encoder), mode="frozen", epochs=8, batch_size=16, lr=3e-3, seed=0)
    frozen.fit(texts, labels)
    assert frozen.multi_label_ and len(frozen.thresholds_) == 2
    assert list((tmp_path / "cache").rglob("shard-*.f16"))  # the states came from the cache
    assert frozen.evaluate(*test)["subset_accuracy"] > 0.4  # a frozen random encoder: above the 0.25 of one guess
