"""The registry: every kind by name, `load` for any saved model, `make_estimator` for any head."""

import pytest

from convtune.errors import ConvtuneError
from convtune.config import all_heads
from convtune.estimators.registry import KINDS, load, make_estimator
from convtune.estimators.textcnn import TextCNNClassifier
from convtune.estimators.tfidf import TfidfClassifier
from convtune.estimators.transformer import Classifier

from ..conftest import toy_texts


def test_every_head_builds_its_kind_with_the_options_it_takes():
    options = {"encoder": "some-encoder", "mode": "frozen", "epochs": 2, "seed": 7, "max_length": 32,
               "stop_words": True, "layers": 2, "lr": None}
    built = {head: make_estimator(head, **options) for head in all_heads()}
    assert {h: type(c) for h, c in built.items()} == {
        "cnn": Classifier, "cnn+pool": Classifier, "linear": Classifier,
        "tfidf-svm": TfidfClassifier, "tfidf-nb": TfidfClassifier, "textcnn": TextCNNClassifier}
    cnn = built["cnn+pool"].get_params()
    assert (cnn["head"], cnn["encoder"], cnn["mode"], cnn["epochs"], cnn["seed"], cnn["layers"]) == \
        ("cnn+pool", "some-encoder", "frozen", 2, 7, 2)
    assert cnn["lr"] is None  # None means "not given": the encoder's default applies
    svm = built["tfidf-svm"].get_params()
    assert (svm["model"], svm["seed"], svm["stop_words"]) == ("svm", 7, True)  # no encoder, no epochs
    textcnn = built["textcnn"].get_params()
    assert (textcnn["epochs"], textcnn["max_length"], textcnn["batch_size"]) == (2, 32, 50)  # its own batch size


def test_unknown_head_is_one_line():
    with pytest.raises(ConvtuneError, match="unknown head 'rnn'; choose cnn"):
        make_estimator("rnn")


def test_load_dispatches_on_the_saved_kind(tmp_path):
    texts, labels = toy_texts(60)
    make_estimator("tfidf-nb").fit(texts, labels).save(tmp_path / "nb")
    clf = load(tmp_path / "nb")
    assert type(clf) is KINDS["tfidf"] and clf.model == "nb"
