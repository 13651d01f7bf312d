"""TF-IDF + linear SVM / multinomial naive Bayes, behind the same surface as the transformer.

English gets word 1-2-grams (optional English stop-word removal); Chinese, detected from the
training texts, gets character 1-3-grams. SVM probabilities come from a softmax calibration
fitted on the dev split's decision scores (held-out data, as scikit-learn's prefit calibration
does). Saved as JSON (vectorizer parameters and vocabulary) + npz (idf and linear weights):
prediction is a sparse matrix product, no pickle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convtune._fs import write_json
from convtune.data.texts import as_texts, looks_chinese, read_text_file, split_lines
from convtune.errors import ConvtuneError
from convtune.estimators.base import TextClassifier
from convtune.modeling.checkpoint import CONFIG_NAME, FORMAT_VERSION

WEIGHTS_NAME = "tfidf.npz"
VOCAB_NAME = "vocabulary.json"


def stop_word_list(stop_words: bool | str) -> str | list[str] | None:
    """None, scikit-learn's "english" list, or the words of a file (one a line, # comments):
    a file's words are saved with the model, so loading does not need the file."""
    if stop_words is False or stop_words in ("", "none"):
        return None
    if stop_words is True or stop_words == "english":
        return "english"
    words = [w.strip().lower() for w in split_lines(read_text_file(stop_words))]
    words = sorted({w for w in words if w and not w.startswith("#")})
    if not words:
        raise ConvtuneError(f"{stop_words}: no stop words in the file (one word a line)")
    return words


class TfidfClassifier(TextClassifier):
    """TF-IDF features with a linear SVM (`model="svm"`) or multinomial NB (`model="nb"`)."""

    kind = "tfidf"

    def __init__(self, model: str = "svm", analyzer: str = "auto", stop_words: bool | str = False,
                 C: float = 1.0, alpha: float = 0.1, min_df: int = 1, seed: int = 42):
        if model not in ("svm", "nb"):
            raise ConvtuneError(f"unknown TF-IDF model {model!r}; choose svm or nb")
        if analyzer not in ("auto", "word", "char"):
            raise ConvtuneError(f"analyzer must be auto, word or char, not {analyzer!r}")
        if not isinstance(stop_words, bool | str):
            raise ConvtuneError("stop_words must be False, True / 'english', or a file with one word a line")
        self.model, self.analyzer, self.stop_words = model, analyzer, stop_words
        self.C, self.alpha, self.min_df, self.seed = C, alpha, min_df, seed
        self.vectorizer_ = None
        self.coef_: np.ndarray | None = None       # (C, V) log-probabilities (nb) or SVM weights
        self.intercept_: np.ndarray | None = None  # (C,)
        self.calib_: tuple[np.ndarray, np.ndarray] | None = None  # SVM: scores -> logits (A, b)
        self.labels_ = None
        self.train_seconds_: float | None = None

    def _vectorizer_params(self, texts: Sequence[str]) -> dict:
        char = self.analyzer == "char" or (self.analyzer == "auto" and looks_chinese(list(texts)))
        if char:
            return {"analyzer": "char_wb", "ngram_range": [1, 3], "min_df": self.min_df, "sublinear_tf": True}
        return {"analyzer": "word", "ngram_range": [1, 2], "min_df": self.min_df, "sublinear_tf": True,
                "stop_words": stop_word_list(self.stop_words),
                "token_pattern": r"(?u)\b\w+\b"}  # keep 1-letter words: "i", "a" carry signal in short texts

    def fit(self, texts, labels, dev_texts=None, dev_labels=None, callbacks=()) -> TfidfClassifier:
        """Fit vectorizer and classifier on train; calibrate SVM scores on dev (10% of train if none).
        No epochs, so `callbacks` have nothing to see."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        start = time.perf_counter()
        train, dev = self._fit_data(texts, labels, dev_texts, dev_labels, self.seed)
        params = self._vectorizer_params(train.texts)
        self.vectorizer_ = TfidfVectorizer(**{**params, "ngram_range": tuple(params["ngram_range"])})
        X = self.vectorizer_.fit_transform(train.texts)
        space = self.label_space_
        y = space.encode(train.labels)
        if self.multi_label_:  # one-vs-rest: a binary model per label
            self._fit_one_vs_rest(X, y, self.vectorizer_.transform(dev.texts), space.encode(dev.labels))
        else:
            self._fit_model(X, y)
        if self.model == "svm" and not self.multi_label_:
            self._calibrate(self.vectorizer_.transform(dev.texts), space.encode(dev.labels))
        self.train_seconds_ = round(time.perf_counter() - start, 3)
        self._tune_thresholds(dev)
        self.manifest_ = self._manifest(params)
        return self

    def _fit_model(self, X, y) -> None:
        if self.model == "nb":
            from sklearn.naive_bayes import MultinomialNB

            nb = MultinomialNB(alpha=self.alpha).fit(X, y)
            self.coef_, self.intercept_ = nb.feature_log_prob_, nb.class_log_prior_
            return
        from sklearn.svm import LinearSVC

        svm = LinearSVC(C=self.C, random_state=self.seed).fit(X, y)
        coef, intercept = svm.coef_, svm.intercept_
        if coef.shape[0] == 1:  # binary: one score s for class 1; use (-s, s) so classes are symmetric
            coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
        self.coef_, self.intercept_ = coef, intercept

    def _fit_one_vs_rest(self, X, Y: np.ndarray, X_dev, Y_dev: np.ndarray) -> None:
        """Multi-label: per label, a binary linear model whose score is that label's logit. NB:
        the log-odds of two multinomial NBs (label vs. not); SVM: its margin, Platt-scaled on dev
        (a*s + b; a=1, b=0 for a label dev lacks or always has). Weights stay (C, V) + (C,)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.svm import LinearSVC

        coef, intercept, a, b = [], [], np.ones(Y.shape[1]), np.zeros(Y.shape[1])
        for c in range(Y.shape[1]):
            y = Y[:, c].astype(int)
            if self.model == "nb":
                nb = MultinomialNB(alpha=self.alpha).fit(X, y)
                coef.append(nb.feature_log_prob_[1] - nb.feature_log_prob_[0])
                intercept.append(nb.class_log_prior_[1] - nb.class_log_prior_[0])
                continue
            svm = LinearSVC(C=self.C, random_state=self.seed).fit(X, y)
            coef.append(svm.coef_[0])
            intercept.append(svm.intercept_[0])
            if 0 < Y_dev[:, c].sum() < len(Y_dev):
                s = np.asarray(X_dev @ svm.coef_[0]).reshape(-1, 1) + svm.intercept_[0]
                lr = LogisticRegression(C=10.0, max_iter=1000).fit(s, Y_dev[:, c].astype(int))
                a[c], b[c] = lr.coef_[0, 0], lr.intercept_[0]
        self.coef_, self.intercept_ = np.vstack(coef), np.asarray(intercept)
        self.calib_ = (a, b) if self.model == "svm" else None

    def _scores(self, X) -> np.ndarray:
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def _calibrate(self, X_dev, y_dev) -> None:
        """Multinomial logistic regression from SVM scores to classes, fitted on dev."""
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=10.0, max_iter=1000).fit(self._scores(X_dev), y_dev)
        A, b = lr.coef_, lr.intercept_
        if A.shape[0] == 1:  # binary LR gives one row: turn it into two symmetric logits
            A, b = np.vstack([-A / 2, A / 2]), np.array([-b[0] / 2, b[0] / 2])
        if len(lr.classes_) != len(self.labels_):
            raise ConvtuneError("dev split lacks some classes: cannot calibrate SVM probabilities")
        self.calib_ = (A, b)

    def decision_function(self, texts, batch_size=None) -> np.ndarray:
        """Logits (N, C), columns in the order of `labels_`: NB's log-probabilities, or the SVM's
        margins through the logistic regression fitted on dev (so already calibrated on dev)."""
        self._check_fitted()
        scores = self._scores(self.vectorizer_.transform(as_texts(texts)))
        if self.model == "svm":
            A, b = self.calib_
            scores = scores * A + b if A.ndim == 1 else scores @ A.T + b  # (C,): per-label Platt scaling
        return scores

    def term_contributions(self, text: str, c: int) -> list[dict]:
        """Each n-gram of `text` with its exact share of label c's logit (tf-idf value x the
        calibrated weight), largest first."""
        self._check_fitted()
        W = self.coef_
        if self.model == "svm" and self.calib_ is not None:
            A = self.calib_[0]
            W = A[:, None] * W if A.ndim == 1 else A @ W  # (C, V): the calibration is linear in the scores
        x = self.vectorizer_.transform([text])
        if getattr(self, "terms_", None) is None:  # column -> n-gram, built once
            self.terms_ = self.vectorizer_.get_feature_names_out()
        values = x.data * W[c, x.indices]
        order = np.argsort(-values)
        return [{"text": str(self.terms_[x.indices[i]]), "contribution": float(values[i])} for i in order]

    def _manifest(self, params: dict) -> dict:
        return {**self._manifest_head(),
                "model": {"head": f"tfidf-{self.model}", "labels": self.labels_, "vectorizer": params,
                          "C": self.C, "alpha": self.alpha, "seed": self.seed},
                "training": {"train_seconds": self.train_seconds_}}

    def save_into(self, directory: Path) -> None:
        self._check_fitted()
        vocab = {term: int(i) for term, i in self.vectorizer_.vocabulary_.items()}
        (Path(directory) / VOCAB_NAME).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        arrays = {"idf": self.vectorizer_.idf_, "coef": self.coef_, "intercept": self.intercept_}
        if self.calib_ is not None:
            arrays.update(calib_A=self.calib_[0], calib_b=self.calib_[1])
        np.savez(Path(directory) / WEIGHTS_NAME, **arrays)
        write_json(Path(directory) / CONFIG_NAME, dict(self.manifest_, format_version=FORMAT_VERSION))

    @classmethod
    def _load_from(cls, directory: Path, manifest: dict) -> TfidfClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer

        m = manifest["model"]
        clf = cls(model=m["head"].split("-", 1)[1], C=m["C"], alpha=m["alpha"], seed=m["seed"])
        params = checked_vectorizer(m["vectorizer"], directory)
        vocab = checked_vocabulary(json.loads((directory / VOCAB_NAME).read_text(encoding="utf-8")), directory)
        with np.load(directory / WEIGHTS_NAME, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        checked_weights(arrays, len(vocab), len(m["labels"]), directory / WEIGHTS_NAME)
        clf.vectorizer_ = TfidfVectorizer(**params, vocabulary=vocab)
        clf.vectorizer_.idf_ = arrays["idf"]
        clf.coef_, clf.intercept_ = arrays["coef"], arrays["intercept"]
        if "calib_A" in arrays:
            clf.calib_ = (arrays["calib_A"], arrays["calib_b"])
        clf.labels_, clf.manifest_ = list(m["labels"]), manifest
        return clf

    def get_params(self, deep: bool = True) -> dict:
        return {"model": self.model, "analyzer": self.analyzer, "stop_words": self.stop_words,
                "C": self.C, "alpha": self.alpha, "min_df": self.min_df, "seed": self.seed}

    def hyperparameters(self) -> dict:
        return {"head": f"tfidf-{self.model}", **self.get_params()}


# --------------------------------------------------------------------------- a saved model, checked
# What convtune writes, and nothing else: an edited vectorizer could ask for 100,000-grams
# (gigabytes a text) or a regular expression that backtracks forever.
WORD_PATTERNS = (r"(?u)\b\w+\b", r"(?u)\b\w\w+\b")
MAX_NGRAM = 8


def checked_vectorizer(params, directory: Path) -> dict:
    """The saved TfidfVectorizer settings, refused (one line) unless convtune could have written them."""
    where = f"{directory}: {CONFIG_NAME} vectorizer"
    if not isinstance(params, dict) or not set(params) <= {"analyzer", "ngram_range", "min_df", "sublinear_tf",
                                                           "stop_words", "token_pattern"}:
        raise ConvtuneError(f"{where}: unexpected settings {sorted(params) if isinstance(params, dict) else params!r}")
    lo_hi = params.get("ngram_range")
    if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(type(n) is int for n in lo_hi)
            and 1 <= lo_hi[0] <= lo_hi[1] <= MAX_NGRAM):
        raise ConvtuneError(f"{where}: ngram_range must be [low, high] with 1 <= low <= high <= {MAX_NGRAM}, "
                            f"not {str(lo_hi)[:60]}")
    if params.get("analyzer") not in ("word", "char", "char_wb"):
        raise ConvtuneError(f"{where}: analyzer must be word, char or char_wb, not {str(params.get('analyzer'))[:40]!r}")
    if params.get("token_pattern", WORD_PATTERNS[0]) not in WORD_PATTERNS:
        raise ConvtuneError(f"{where}: token_pattern {str(params['token_pattern'])[:60]!r} is not one convtune writes")
    stop = params.get("stop_words")
    if not (stop is None or stop == "english" or (isinstance(stop, list) and all(isinstance(w, str) for w in stop))):
        raise ConvtuneError(f"{where}: stop_words must be null, \"english\" or a list of words")
    return {**params, "ngram_range": tuple(lo_hi)}


def checked_vocabulary(vocab, directory: Path) -> dict:
    """term -> column, each column 0..V-1 exactly once."""
    if not isinstance(vocab, dict) or not all(isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()) \
            or sorted(vocab.values()) != list(range(len(vocab))):
        raise ConvtuneError(f"{directory / VOCAB_NAME}: not a vocabulary (terms mapped to columns 0 to V-1, once each)")
    return vocab


def checked_weights(arrays: dict, vocab: int, labels: int, path: Path) -> None:
    """idf (V,), coef (C, V), intercept (C,), calibration (C, C) or (C,) + (C,): shapes that fit
    the vocabulary and the labels, and finite numbers."""
    shapes = {"idf": (vocab,), "coef": (labels, vocab), "intercept": (labels,), "calib_b": (labels,),
              "calib_A": arrays["calib_A"].shape if "calib_A" in arrays and arrays["calib_A"].shape in
              ((labels, labels), (labels,)) else (labels, labels)}
    for name, array in arrays.items():
        if name not in shapes or array.shape != shapes[name] or array.dtype.kind != "f":
            raise ConvtuneError(f"{path}: {name} has shape {array.shape} ({array.dtype}); {vocab} terms and "
                                f"{labels} labels want {shapes.get(name, 'no such array')}")
        if not np.isfinite(array).all():
            raise ConvtuneError(f"{path}: {name} holds NaN or infinite values")
    missing = {"idf", "coef", "intercept"} - set(arrays)
    if missing:
        raise ConvtuneError(f"{path}: lacks {', '.join(sorted(missing))}")
