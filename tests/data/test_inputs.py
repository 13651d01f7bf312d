"""What the Python API takes: lists, generators, numpy arrays, pandas and `datasets` columns,
each checked in one line (missing labels, a whole table where a column was meant)."""

import numpy as np
import pandas as pd
import pytest

from convtune.errors import ConvtuneError
from convtune.estimators.registry import make_estimator

from ..conftest import toy_texts

TEXTS, LABELS = toy_texts(120, seed=7)
TEST_TEXTS, TEST_LABELS = toy_texts(40, seed=8)


def _reference():
    clf = make_estimator("tfidf-svm", seed=0).fit(TEXTS, LABELS)
    return clf, clf.predict_proba(TEST_TEXTS), clf.evaluate(TEST_TEXTS, TEST_LABELS)["accuracy"]


def _columns(kind):
    if kind == "pandas":
        df = pd.DataFrame({"text": TEXTS, "label": LABELS})
        return df["text"], df[["label"]], pd.Series(TEST_TEXTS), pd.DataFrame({"label": TEST_LABELS})
    if kind == "numpy":
        return np.array(TEXTS), np.array(LABELS), np.array(TEST_TEXTS), np.array(TEST_LABELS)
    if kind == "datasets":
        from datasets import Dataset

        train = Dataset.from_dict({"text": TEXTS, "label": LABELS})
        test = Dataset.from_dict({"text": TEST_TEXTS, "label": TEST_LABELS})
        return train["text"], train["label"], test["text"], test["label"]
    return (t for t in TEXTS), (y for y in LABELS), iter(TEST_TEXTS), (y for y in TEST_LABELS)


@pytest.mark.parametrize("kind", ["pandas", "numpy", "datasets", "generators"])
def test_fit_predict_and_evaluate_take_the_columns_users_hold(kind):
    _, proba, accuracy = _reference()
    texts, labels, test_texts, test_labels = _columns(kind)
    clf = make_estimator("tfidf-svm", seed=0).fit(texts, labels)
    assert clf.labels_ == ["neg", "pos"]
    np.testing.assert_allclose(clf.predict_proba(_columns(kind)[2]), proba, atol=1e-12)
    assert clf.evaluate(test_texts, test_labels)["accuracy"] == accuracy


def test_integer_labels_in_numpy_and_pandas_stay_integers():
    ints = [1 if y == "pos" else 0 for y in LABELS]
    for labels in (np.array(ints, dtype=np.int64), pd.Series(ints)):
        clf = make_estimator("tfidf-svm", seed=0).fit(TEXTS, labels)
        assert all(isinstance(p, int) for p in clf.predict(TEST_TEXTS))


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA])
def test_a_missing_label_is_one_line_not_a_class(missing):
    labels = list(LABELS)
    labels[5] = missing
    with pytest.raises(ConvtuneError, match=r"training data: labels\[5\] is missing"):
        make_estimator("tfidf-svm").fit(TEXTS, labels)
    with pytest.raises(ConvtuneError, match=r"labels\[5\] is missing"):
        make_estimator("tfidf-svm").fit(TEXTS, pd.Series(labels, dtype=object))


def test_a_generator_of_labels_trains_a_transformer_as_a_list_does(tiny_encoder):
    from convtune import Classifier

    clf = Classifier(encoder=str(tiny_encoder), epochs=1, max_length=16, precision="fp32",
                     head_config={"num_filters": 4}).fit(TEXTS, (y for y in LABELS))
    assert clf.labels_ == ["neg", "pos"] and len(clf.predict(pd.Series(TEST_TEXTS))) == len(TEST_TEXTS)


@pytest.mark.parametrize("given, says", [
    (pd.DataFrame({"text": TEXTS, "other": TEXTS}), "a DataFrame of 2 columns; pass one column"),
    (np.array([TEXTS, TEXTS]), "a 1-D column of texts, got an array of shape (2, 120)"),
    ("one text", "a single string"),
    (42, "got int"),
])
def test_a_table_where_a_column_was_meant_is_one_line(given, says):
    with pytest.raises(ConvtuneError, match=None) as e:
        make_estimator("tfidf-svm").fit(given, LABELS)
    assert says in str(e.value)


def test_a_whole_dataset_is_refused_with_its_columns():
    from datasets import Dataset

    ds = Dataset.from_dict({"text": TEXTS, "label": LABELS})
    with pytest.raises(ConvtuneError, match="got a dataset with columns text, label; pass one column"):
        make_estimator("tfidf-svm").fit(ds, LABELS)
