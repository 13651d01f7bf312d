"""Classifier.explain: exact n-gram contributions as character spans, on every long-text rule."""

from __future__ import annotations

import numpy as np
import pytest

from convtune import Classifier, load
from convtune.errors import ConvtuneError
from convtune.estimators.explain import decisive_ngrams
from convtune.estimators.onnx import OnnxClassifier
from convtune.estimators.tfidf import TfidfClassifier
from tests.conftest import toy_texts


def check(clf, texts, explanations, label_index=None):
    """Every explanation adds up to its logit, which is the model's own (fp32), and every span
    is the text it names."""
    blended = getattr(clf, "lexical_", None) is not None  # the neural part is what the n-grams explain
    logits = clf.neural_decision_function(texts) if blended else clf.decision_function(texts)
    chosen = clf.predict_proba(texts).argmax(1)
    for text, row, e, top in zip(texts, logits, explanations, chosen):
        c = int(top) if label_index is None else label_index
        assert e["label"] == clf.labels_[c]
        assert e["logit"] == pytest.approx(float(row[c]), abs=1e-4)
        parts = e["bias"] + sum(g["contribution"] for g in e["ngrams"] + e["against"]) + e["rest"]
        assert parts == pytest.approx(e["logit"], abs=1e-5)
        for g in e["ngrams"] + e["against"]:
            assert text[g["start"]:g["end"]] == g["text"] and g["text"].strip()
        assert all(g["contribution"] > 0 for g in e["ngrams"]) and all(g["contribution"] < 0 for g in e["against"])


@pytest.fixture(scope="module")
def texts():
    return toy_texts(12, seed=9)[0] + ["  superb!!  a very   bad plot, truly superb  "]


def make(tiny_encoder, **options):
    train, labels = toy_texts(160)
    options = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "head_lr": 1e-2, "precision": "fp32", "seed": 0,
               "head_config": {"kernel_sizes": [2, 3], "num_filters": 16}, **options}
    return Classifier(encoder=str(tiny_encoder), **options).fit(train, labels)


@pytest.mark.parametrize("options", [
    {"max_length": 16},
    {"max_length": 8, "long_text": "head-tail"},
    {"max_length": 8, "long_text": "windows", "stride": 3},
    {"max_length": 8, "long_text": "windows", "stride": 3, "window_pool": "max"},
    {"max_length": 16, "head": "cnn+pool"},
    {"max_length": 16, "head_config": {"kernel_sizes": [2], "num_filters": 8, "pooling": "both"}},
    {"max_length": 16, "head": "linear", "head_config": {"pooling": "mean"}},
])
def test_explanations_add_up_to_the_models_logits(tiny_encoder, texts, options):
    clf = make(tiny_encoder, **options)
    check(clf, texts, clf.explain(texts, top=3))


def test_another_label_can_be_explained(tiny_encoder, texts):
    clf = make(tiny_encoder, max_length=16)
    check(clf, texts, clf.explain(texts, label="neg"), clf.labels_.index("neg"))
    with pytest.raises(ConvtuneError, match="unknown label"):
        clf.explain(texts, label="maybe")


def test_bad_inputs_are_one_line_or_a_correct_answer(tiny_encoder, tmp_path):
    clf = make(tiny_encoder, max_length=16)
    with pytest.raises(ConvtuneError, match="empty"):
        clf.explain(["fine", " "])
    huge = "superb " * 150_000  # 1 MB: the model reads its first 16 tokens, and so does the explanation
    check(clf, [huge], clf.explain([huge]))
    tfidf = TfidfClassifier().fit(*toy_texts(100))
    with pytest.raises(ConvtuneError, match="not available for a tfidf model"):
        tfidf.explain(["superb"])
    with pytest.raises(ConvtuneError, match="not available for a onnx model"):
        OnnxClassifier.explain(OnnxClassifier.__new__(OnnxClassifier), ["superb"])
    linear = make(tiny_encoder, max_length=16, head="linear", head_config={"pooling": "cls"})
    with pytest.raises(ConvtuneError, match="linear head on the cls vector"):
        linear.explain(["superb"])
    clf.save(tmp_path / "m")
    check(clf, ["superb plot"], load(tmp_path / "m").explain(["superb plot"]))


def test_decisive_ngrams_of_a_data_set(tiny_encoder):
    clf = make(tiny_encoder, max_length=16, epochs=4)
    table = decisive_ngrams(clf, toy_texts(60, seed=4)[0], top=5)
    assert set(table) == set(clf.labels_)
    for rows in table.values():
        assert rows and rows == sorted(rows, key=lambda r: -r["total"]) and len(rows) <= 5
        assert all(r["texts"] >= 1 and np.isclose(r["mean"] * r["texts"], r["total"]) for r in rows)
