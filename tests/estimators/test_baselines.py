"""TF-IDF + SVM / NB and TextCNN behind the same surface: fit, predict, save -> load, CLI."""

import json

import numpy as np
import pytest

from convtune import TextCNNClassifier, TfidfClassifier, load
from convtune.cli import main
from convtune.data.texts import looks_chinese
from convtune.errors import ConvtuneError

from ..conftest import toy_texts


@pytest.mark.parametrize("model", ["svm", "nb"])
def test_tfidf_fit_predict_save_load(model, tmp_path):
    texts, labels = toy_texts(200)
    clf = TfidfClassifier(model=model).fit(texts, labels, *toy_texts(40, seed=1))
    probe, probe_labels = toy_texts(60, seed=2)
    assert clf.evaluate(probe, probe_labels)["accuracy"] > 0.9
    proba = clf.predict_proba(probe)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    clf.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["convtune.json", "tfidf.npz", "vocabulary.json"]
    again = load(tmp_path / "m")
    assert isinstance(again, TfidfClassifier) and again.labels_ == ["neg", "pos"]
    np.testing.assert_allclose(again.predict_proba(probe), proba, atol=1e-12)


def test_tfidf_multiclass_and_chinese_chars(tmp_path):
    texts = ["股市大涨", "股票下跌", "基金收益", "房价上涨", "楼市调控", "新房开盘", "球队夺冠", "比赛结束", "球员转会"] * 4
    labels = ["finance"] * 3 * 1 + ["realty"] * 3 + ["sports"] * 3
    labels = labels * 4
    assert looks_chinese(texts)
    clf = TfidfClassifier(model="svm").fit(texts, labels, texts[:9], labels[:9])
    assert clf.manifest_["model"]["vectorizer"]["analyzer"] == "char_wb"
    assert clf.predict(["股市", "楼市", "球队"]) == ["finance", "realty", "sports"]
    assert clf.predict_proba(["股市"]).shape == (1, 3)


def test_textcnn_learns_and_roundtrips(tmp_path):
    texts, labels = toy_texts(300)
    clf = TextCNNClassifier(epochs=8, batch_size=16, max_length=16, lr=3e-3, head_lr=3e-3,
                            head_config={"num_filters": 16}).fit(texts, labels, *toy_texts(60, seed=1))
    probe, probe_labels = toy_texts(60, seed=2)
    assert clf.evaluate(probe, probe_labels)["accuracy"] > 0.9
    clf.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert isinstance(again, TextCNNClassifier)
    np.testing.assert_allclose(again.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)
    assert again.predict(["", "good"])  # an empty text still gets a prediction


def test_load_checks_kind(tmp_path):
    texts, labels = toy_texts(60)
    TfidfClassifier(model="nb").fit(texts, labels).save(tmp_path / "m")
    from convtune import Classifier

    with pytest.raises(ConvtuneError, match="convtune.load"):
        Classifier.load(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    manifest["kind"] = "bogus"
    (tmp_path / "m" / "convtune.json").write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="unknown model kind"):
        load(tmp_path / "m")


@pytest.mark.parametrize("head", ["tfidf-svm", "tfidf-nb", "textcnn"])
def test_cli_trains_baselines(head, toy_csv, tmp_path, capsys):
    out = tmp_path / head
    extra = ["--epochs", "2", "--filters", "8"] if head == "textcnn" else []
    assert main(["train", "--data", str(toy_csv), "--head", head, "--out", str(out), *extra]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["head"] == head and m["test"]["accuracy"] > 0.5
    capsys.readouterr()
    assert main(["predict", str(out), "good film", "dull, boring film"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The CLI answers what the Python API answers, with every class's probability.
    assert [r["label"] for r in rows] == load(out).predict(["good film", "dull, boring film"])
    assert all(sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-3) and
               r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in rows)


def test_scikit_learn_model_selection():
    # clone / cross_val_score / GridSearchCV work on convtune estimators (string labels)
    from sklearn.model_selection import GridSearchCV, cross_val_score

    texts, labels = toy_texts(120)
    scores = cross_val_score(TfidfClassifier(), texts, labels, cv=3, scoring="f1_macro")
    assert scores.shape == (3,) and scores.min() > 0.6
    search = GridSearchCV(TfidfClassifier(), {"C": [0.1, 1.0]}, cv=3, scoring="neg_log_loss").fit(texts, labels)
    assert search.best_params_["C"] in (0.1, 1.0) and search.predict(["good film", "awful plot"]) == ["pos", "neg"]


def test_integer_labels_work_with_scikit_learn_scorers():
    from sklearn.model_selection import cross_val_score

    texts, labels = toy_texts(120)
    ints = [1 if y == "pos" else 0 for y in labels]
    assert cross_val_score(TfidfClassifier(), texts, ints, cv=3, scoring="accuracy").min() > 0.6
    assert TfidfClassifier().fit(texts, ints).predict(["good film", "awful plot"]) == [1, 0]


def test_stop_words_from_english_or_a_file_are_saved(tmp_path):
    import convtune
    from convtune.estimators.tfidf import TfidfClassifier

    texts, labels = toy_texts(120)
    (tmp_path / "stop.txt").write_text("# mine\nthe\nFilm\n\n")
    clf = TfidfClassifier(stop_words=str(tmp_path / "stop.txt")).fit(texts, labels)
    assert "the" not in clf.vectorizer_.vocabulary_ and "film" not in clf.vectorizer_.vocabulary_
    assert "movie" in clf.vectorizer_.vocabulary_
    clf.save(tmp_path / "m")
    (tmp_path / "stop.txt").unlink()  # the words travel with the model
    assert convtune.load(tmp_path / "m").predict(texts[:5]) == clf.predict(texts[:5])
    english = TfidfClassifier(stop_words="english").fit(texts, labels)
    assert "the" not in english.vectorizer_.vocabulary_ and "movie" in english.vectorizer_.vocabulary_
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConvtuneError, match="no stop words"):
        TfidfClassifier(stop_words=str(tmp_path / "empty.txt")).fit(texts, labels)
