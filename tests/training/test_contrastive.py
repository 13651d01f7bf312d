"""The contrastive stage: pairs drawn from the labels (linear in the texts), and the mode end to end."""

import tracemalloc

import numpy as np
import pytest
import torch

from convtune import Classifier, load
from convtune.errors import ConvtuneError
from convtune.training.contrastive import check_pairable, sample_pairs

from ..conftest import toy_multilabel, toy_texts


def test_pairs_are_drawn_from_the_labels_and_stay_linear_in_the_texts():
    labels = ["a", "b"] * 10_000  # 20,000 texts: all pairs would be 4e8 rows
    tracemalloc.start()
    pairs = sample_pairs(labels, rounds=20, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pairs.shape == (2 * 20_000 * 20, 3)
    assert peak < 200 * 2**20  # ~ a few bytes per pair, never n^2
    i, j, same = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    y = np.asarray(labels)
    assert (i != j).all() and ((y[i] == y[j]) == (same == 1)).all() and same.mean() == pytest.approx(0.5)
    assert (sample_pairs(labels[:50], 3, seed=1) == sample_pairs(labels[:50], 3, seed=1)).all()


def test_multi_label_texts_pair_by_overlap():
    _, labels = toy_multilabel(40)
    sets = [frozenset(y) for y in labels]
    pairs = sample_pairs([tuple(y) for y in labels], rounds=3, seed=0)
    for i, j, same in pairs:
        assert bool(sets[i] & sets[j]) == bool(same) or (not sets[i] and not sets[j] and same)


@pytest.mark.parametrize("labels,message", [(["a"] * 5, "at least two classes"), (["a", "a", "b"], "b has a single text")])
def test_unpairable_labels_are_one_line(labels, message):
    with pytest.raises(ConvtuneError, match=message):
        check_pairable(labels)


def test_contrastive_mode_tunes_the_encoder_then_trains_the_head(tiny_encoder, tmp_path):
    texts, labels = toy_texts(60)
    clf = Classifier(encoder=str(tiny_encoder), mode="contrastive", epochs=2, max_length=16, precision="fp32",
                     pairs_per_text=2, blend="none").fit(texts, labels)
    record = clf.manifest_["training"]["contrastive"]
    assert record["pairs"] > 0 and record["steps"] > 0 and not any(
        p.requires_grad for p in clf.model_.encoder.parameters())
    original = Classifier(encoder=str(tiny_encoder), mode="frozen", epochs=1, max_length=16, precision="fp32",
                          blend="none", cache="off").fit(texts, labels)
    tuned = dict(clf.model_.encoder.named_parameters())
    assert any(not torch.equal(p, tuned[n]) for n, p in original.model_.encoder.named_parameters())
    clf.save(tmp_path / "m")
    back = load(tmp_path / "m", precision="fp32")
    np.testing.assert_allclose(back.predict_proba(texts[:8]), clf.predict_proba(texts[:8]), atol=1e-5)


def test_contrastive_mode_with_a_tfidf_head_is_one_line(toy_csv, tmp_path, capsys):
    from convtune.cli import main

    assert main(["train", "--data", str(toy_csv), "--mode", "contrastive", "--head", "tfidf-svm",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--mode contrastive tunes an encoder" in capsys.readouterr().err


def test_a_mean_pooled_linear_head_is_a_logistic_regression_on_the_tuned_embeddings(tiny_encoder):
    from sklearn.linear_model import LogisticRegression

    from convtune.data.batching import collate, tokenize
    from convtune.training.contrastive import _embed

    texts, labels = toy_texts(40)
    clf = Classifier(encoder=str(tiny_encoder), mode="contrastive", head="linear", head_config={"pooling": "mean"},
                     max_length=16, precision="fp32", pairs_per_text=2, blend="none", calibrate="none")
    clf.fit(texts, labels, texts, labels)
    assert clf.result_.best_epoch == 0 and clf.result_.history == []  # no epochs: the regression is the head
    x, mask = collate(tokenize(clf.tokenizer_, texts, 16).ids, clf.tokenizer_.pad_token_id)
    with torch.no_grad():
        emb = _embed(clf.model_.encoder, x, mask).numpy()
    want = LogisticRegression(max_iter=2000).fit(emb, clf.label_space_.encode(labels)).predict_proba(emb)
    np.testing.assert_allclose(clf.predict_proba(texts), want, atol=1e-4)
