"""The lexical blend: its endpoints, its weight, cross-fitting, and one model everywhere."""

import json

import numpy as np
import pytest

from convtune import Classifier
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError
from convtune.estimators.blend import COARSE_GRID, choose_label_weights, choose_weight, cross_fitted, mix

from ..conftest import toy_texts


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("multi", [False, True])
def test_weight_one_and_zero_give_each_part_exactly(multi):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype(np.float32)
    lexical = rng.dirichlet(np.ones(4), size=50) if not multi else rng.uniform(0.01, 0.99, size=(50, 4))
    neural = 1 / (1 + np.exp(-logits)) if multi else _softmax(logits)
    back = (lambda z: 1 / (1 + np.exp(-z))) if multi else _softmax
    np.testing.assert_allclose(back(mix(logits, lexical, 1.0, multi)), neural, atol=1e-6)
    np.testing.assert_allclose(back(mix(logits, lexical, 0.0, multi)), lexical, atol=1e-6)


def test_the_weight_is_never_worse_than_either_part_on_dev():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    neural = rng.dirichlet(np.ones(3), size=200)
    lexical = np.eye(3)[y] * 0.6 + rng.dirichlet(np.ones(3), size=200) * 0.4  # the better part
    chosen = choose_weight(neural, lexical, y, COARSE_GRID)
    assert chosen["dev_macro_f1"] >= max(chosen["neural_dev_macro_f1"], chosen["lexical_dev_macro_f1"])
    assert chosen["weight"] < 1.0


def test_multi_label_weights_record_the_gain_auto_reads():
    rng = np.random.default_rng(2)
    Y = (rng.random((300, 4)) < 0.3).astype(float)
    neural = rng.random((300, 4))                                # uninformative
    lexical = np.clip(Y * 0.7 + rng.random((300, 4)) * 0.3, 0, 1)  # the better part
    chosen = choose_label_weights(neural, lexical, Y, COARSE_GRID)
    assert np.all(np.asarray(chosen["weight"]) < 1.0)
    assert chosen["dev_micro_f1"] > chosen["neural_dev_micro_f1"] + 3 * chosen["gain_sd"] > 0
    same = choose_label_weights(lexical, lexical, Y, COARSE_GRID)  # two equal parts: no gain to find
    assert same["dev_micro_f1"] == same["neural_dev_micro_f1"]


class _Memoriser:
    """A 'model' that predicts the label it saw for a text, uniform for texts it did not see."""

    def fit(self, texts, labels):
        self.seen, self.labels_ = dict(zip(texts, labels)), sorted(set(labels))
        return self

    def predict_proba(self, texts):
        return np.array([[1.0 if self.seen.get(t) == c else 0.0 for c in self.labels_] if t in self.seen
                         else [1 / len(self.labels_)] * len(self.labels_) for t in texts])


def test_cross_fitted_rows_never_see_themselves_and_follow_shuffled_rows():
    texts, labels = toy_texts(60, seed=3)
    train, dev = TextSet(texts[:40], labels[:40]), TextSet(texts[40:], labels[40:])
    dev = TextSet([f"{t} #{i}" for i, t in enumerate(dev.texts)], dev.labels)  # distinct texts
    out = cross_fitted(_Memoriser, train, dev, ["neg", "pos"])
    np.testing.assert_allclose(out, 0.5)  # each dev row came from a model that did not see it

    class Rule(_Memoriser):  # knows each text's label from its words: a misaligned row shows
        def predict_proba(self, texts):
            from ..conftest import POSITIVE

            return np.array([[0.0, 1.0] if any(w in POSITIVE for w in t.split()) else [1.0, 0.0] for t in texts])

    perm = np.random.default_rng(0).permutation(len(dev))
    shuffled = TextSet([dev.texts[i] for i in perm], [dev.labels[i] for i in perm])
    for rows in (dev, shuffled):
        out = cross_fitted(Rule, train, rows, ["neg", "pos"], seed=5)
        assert [("neg", "pos")[k] for k in out.argmax(1)] == rows.labels


@pytest.fixture(scope="module")
def blended(tiny_encoder):
    texts, labels = toy_texts(240)
    dev_texts, dev_labels = toy_texts(60, seed=1)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, batch_size=16, max_length=16, precision="fp32", seed=0,
                     head_config={"kernel_sizes": [2], "num_filters": 8}, blend="tfidf")
    return clf.fit(texts, labels, dev_texts, dev_labels)


def test_a_blend_keeps_its_weight_and_both_parts_scores(blended):
    b = blended.blend_
    assert b["kept"] and 0.0 <= b["weight"] <= 1.0 and blended.lexical_ is not None
    assert b["cross_fitted"]  # 60 dev texts: the lexical dev probabilities are out-of-fold
    texts, _ = toy_texts(20, seed=4)
    w = blended._weight()
    proba = blended.predict_proba(texts)
    t = 1.0 if blended.temperature_ is None else blended.temperature_
    neural = _softmax(blended.neural_decision_function(texts))
    lexical = blended.lexical_.predict_proba(texts)
    np.testing.assert_allclose(proba, _softmax(np.log(w * neural + (1 - w) * lexical) / t), atol=1e-5)


def test_a_saved_blend_loads_and_predicts_the_same_everywhere(blended, tmp_path):
    from convtune import load
    from convtune.cli import main

    blended.save(tmp_path / "m")
    assert (tmp_path / "m" / "lexical" / "tfidf.npz").is_file()
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    assert manifest["blend"]["kept"] and manifest["model"]["blend"] == "tfidf"
    texts, _ = toy_texts(12, seed=5)
    again = load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(texts), blended.predict_proba(texts), atol=1e-5)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    assert main(["predict", str(tmp_path / "m"), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    cli = np.array([[r["probabilities"][label] for label in again.labels_] for r in rows])
    np.testing.assert_allclose(cli, blended.predict_proba(texts), atol=1e-5)


def test_a_tampered_blend_weight_is_one_line(blended, tmp_path):
    from convtune import load

    blended.save(tmp_path / "m")
    path = tmp_path / "m" / "convtune.json"
    manifest = json.loads(path.read_text())
    manifest["blend"]["weight"] = 7
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="blend weight must be in"):
        load(tmp_path / "m")


def test_blend_none_trains_the_neural_model_alone(tiny_encoder):
    texts, labels = toy_texts(80)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, max_length=16, precision="fp32", blend="none",
                     head_config={"kernel_sizes": [2], "num_filters": 8}).fit(texts, labels)
    assert clf.lexical_ is None and clf.blend_ is None and "blend" not in clf.manifest_


def test_a_bad_blend_is_one_line():
    with pytest.raises(ConvtuneError, match="blend must be one of auto, tfidf, none"):
        Classifier(blend="bm25")


def test_an_onnx_export_of_a_blend_blends_as_pytorch_does(blended, tmp_path):
    from convtune import load
    from convtune.deploy.export import ParityData, export_onnx

    blended.save(tmp_path / "m")
    texts, labels = toy_texts(30, seed=6)
    export_onnx(tmp_path / "m", tmp_path / "onnx", ParityData(texts, labels, "toy"))
    exported = load(tmp_path / "onnx")
    assert exported.kind == "onnx" and exported.lexical_ is not None
    np.testing.assert_allclose(exported.predict_proba(texts), blended.predict_proba(texts), atol=1e-5)


def test_blend_tfidf_on_a_baseline_head_is_one_line(toy_csv, tmp_path, capsys):
    from convtune.cli import main

    assert main(["train", "--data", str(toy_csv), "--head", "tfidf-svm", "--blend", "tfidf",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--blend tfidf blends a TF-IDF model into a model over an encoder" in err


def test_a_blend_explains_both_parts(blended):
    text = "a superb film and a very good plot"
    e = blended.explain([text])[0]
    assert e["label"] == blended.predict([text])[0]
    lexical = blended.lexical_
    c = lexical.labels_.index(e["label"])
    terms = lexical.term_contributions(text, c)
    intercept = float(lexical.decision_function([""])[0, c])  # an empty text: only the intercept
    assert sum(t["contribution"] for t in terms) + intercept == pytest.approx(
        float(lexical.decision_function([text])[0, c]), abs=1e-6)
    assert {t["text"] for t in e["blend"]["lexical_ngrams"]} <= {t["text"] for t in terms}
    assert e["blend"]["neural_weight"] == pytest.approx(blended.blend_["weight"])


def test_a_multi_label_blend_saves_and_loads(tiny_encoder, tmp_path):
    from convtune import load

    from ..conftest import toy_multilabel

    texts, labels = toy_multilabel(160)
    clf = Classifier(encoder=str(tiny_encoder), epochs=1, max_length=16, precision="fp32", blend="tfidf",
                     head_config={"kernel_sizes": [2], "num_filters": 8}).fit(texts, labels)
    assert clf.multi_label_ and clf.lexical_.multi_label_
    clf.save(tmp_path / "m")
    back = load(tmp_path / "m", precision="fp32")
    probe, _ = toy_multilabel(20, seed=3)
    np.testing.assert_allclose(back.predict_proba(probe), clf.predict_proba(probe), atol=1e-5)
    assert back.predict(probe) == clf.predict(probe)
