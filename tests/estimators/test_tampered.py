"""Edited or damaged model directories load as one clear line, never as wrong answers, a hang,
a traceback or gigabytes allocated: every field is checked against its type and limits first."""

import json
import shutil
import time

import numpy as np
import pytest

import convtune
from convtune.errors import ConvtuneError
from convtune.estimators.registry import make_estimator

from ..conftest import toy_texts

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def tfidf_dir(tmp_path_factory):
    texts, labels = toy_texts(120, seed=9)
    d = tmp_path_factory.mktemp("tfidf") / "model"
    make_estimator("tfidf-svm", seed=0).fit(texts, labels).save(d)
    return d


def _copy(src, tmp_path):
    dst = tmp_path / "edited"
    shutil.copytree(src, dst)
    return dst


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _refused(directory, match):
    start = time.perf_counter()
    with pytest.raises(ConvtuneError, match=match) as e:
        convtune.load(directory)
    assert "\n" not in str(e.value) and time.perf_counter() - start < 60  # no hang (a safety bound, not a timing)


def _nan_coef(d):
    with np.load(d / "tfidf.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["coef"][0, 0] = np.nan
    np.savez(d / "tfidf.npz", **arrays)


TFIDF_EDITS = {
    "nan weights": (_nan_coef, "coef holds NaN or infinite values"),
    "duplicate labels": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"].update(labels=["pos", "pos"])),
                         "labels name 'pos' more than once"),
    "a million labels": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"].update(
        labels=[f"l{i}" for i in range(10**6)])), r"coef has shape \(2, \d+\).*want \(1000000,"),
    "integer labels": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"].update(labels=[0, 1])),
                       "labels must be a non-empty list of strings"),
    "100,000-grams": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"]["vectorizer"].update(
        analyzer="char", ngram_range=[1, 100_000])), "ngram_range must be"),
    "backtracking pattern": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"]["vectorizer"].update(
        token_pattern="(a+)+$")), "token_pattern .* is not one convtune writes"),
    "nested vocabulary": (lambda d: (d / "vocabulary.json").write_text(DEEP), "nested too deeply"),
}


@pytest.mark.parametrize("edit", TFIDF_EDITS)
def test_an_edited_tfidf_model_is_one_line(tfidf_dir, tmp_path, edit):
    change, match = TFIDF_EDITS[edit]
    d = _copy(tfidf_dir, tmp_path)
    change(d)
    _refused(d, match)


def _encoder_config(d, **values):
    _edit_json(d / "encoder" / "config.json", lambda c: c.update(values))


ENCODER_EDITS = {
    "a million layers": (lambda d: _encoder_config(d, num_hidden_layers=10**6), "num_hidden_layers = 1000000"),
    "absurd vocabulary": (lambda d: _encoder_config(d, vocab_size=10**12), "vocab_size = 1000000000000"),
    "negative positions": (lambda d: _encoder_config(d, max_position_embeddings=-5), "max_position_embeddings = -5"),
    "text sizes": (lambda d: _encoder_config(d, hidden_size="32"), "hidden_size"),
    "nested config": (lambda d: (d / "encoder" / "config.json").write_text(DEEP), "nested too deeply|cannot load"),
    "nested tokenizer": (lambda d: (d / "encoder" / "tokenizer.json").write_text(DEEP), "cannot load encoder"),
    "integer labels": (lambda d: _edit_json(d / "convtune.json", lambda m: m["model"].update(labels=[0, 1])),
                       "labels must be a non-empty list of strings"),
}


@pytest.mark.parametrize("edit", ENCODER_EDITS)
def test_an_edited_transformer_model_is_one_line(tiny_model_dir, tmp_path, edit):
    change, match = ENCODER_EDITS[edit]
    d = _copy(tiny_model_dir, tmp_path)
    change(d)
    _refused(d, match)


def test_a_damaged_metrics_file_does_not_stop_the_server(tfidf_dir, tmp_path):
    from fastapi.testclient import TestClient

    from convtune.deploy.serve import create_app

    d = _copy(tfidf_dir, tmp_path)
    (d / "metrics.json").write_text("{not json")
    with TestClient(create_app(d)) as client:
        info = client.get("/info")
        assert info.status_code == 200 and info.json()["training"]["dataset"] is None
        assert client.post("/predict", json={"texts": ["a good film"]}).status_code == 200
