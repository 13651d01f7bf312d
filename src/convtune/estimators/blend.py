"""A lexical model blended into a neural one, its weight chosen on dev.

    neural logits (N, C)  --softmax (sigmoid: multi-label)-->  p_neural  ┐
    TF-IDF + linear SVM on the whole text, calibrated ------>  p_lexical ┴-> w p_neural + (1 - w) p_lexical
                                                                         -> log-odds -> temperature -> probabilities

On long, topical documents a bag of n-grams over the whole text stays ahead of a small encoder
that reads a few hundred tokens; late fusion with one weight chosen on held-out data takes the
better of both (BertGCN's lambda; ensemble selection as in Caruana et al. 2004). The weight
comes from a grid that includes 0 and 1, so on dev the blend is never below either part.
`blend="auto"` keeps the lexical part only when dev gains from it beyond noise (the gain in
macro-F1, multi-label: micro-F1 at 0.5, exceeds its bootstrap standard deviation over the dev
rows).

Where dev is small (under SMALL_DEV texts), and for multi-label data (whose TF-IDF model
calibrates each label on dev, so its own dev probabilities are optimistic, most for rare labels),
the lexical model's dev probabilities come from cross-fitting: K models on train plus the other dev folds, each predicting its own fold (rows
matched by position, never by order of arrival), and the lexical model kept is fitted on train
+ dev; the grid is coarser there.

`Blended` is mixed into a token classifier before its base class: `decision_function` returns
the blend's log-odds, so thresholds, temperature, evaluation and every interface that predicts
(Python, CLI, server, ONNX export) see the blend. The lexical part is saved in the run
directory's `lexical/` folder as the TF-IDF baseline is (JSON + npz, no pickle).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from convtune.config import BLENDS
from convtune.data.labels import softmax
from convtune.data.multilabel import sigmoid
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError, warn
from convtune.estimators.base import load_as
from convtune.estimators.tfidf import TfidfClassifier
from convtune.modeling.checkpoint import read_manifest

LEXICAL_DIR = "lexical"
GRID = np.linspace(0.0, 1.0, 21)       # w: 0, 0.05, ..., 1
COARSE_GRID = np.linspace(0.0, 1.0, 5)  # w: 0, 0.25, ..., 1 (small dev)
SMALL_DEV = 200
FOLDS = 5
BOOTSTRAPS = 300
EPS = 1e-7


def check_blend(blend: str) -> str:
    if blend not in BLENDS:
        raise ConvtuneError(f"blend must be one of {', '.join(BLENDS)}, not {blend!r}")
    return blend


def mix(neural_logits: np.ndarray, lexical_proba: np.ndarray, weight, multi_label: bool) -> np.ndarray:
    """The blend's log-odds (N, C): log p (single-label; softmax gives p back) or logit p per label."""
    if multi_label:
        p = weight * sigmoid(neural_logits) + (1 - np.asarray(weight)) * lexical_proba
        p = np.clip(p, EPS, 1 - EPS)
        return (np.log(p) - np.log1p(-p)).astype(np.float32)
    p = weight * softmax(neural_logits) + (1 - weight) * lexical_proba
    return np.log(np.clip(p, EPS, None)).astype(np.float32)


def macro_f1(y: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """Macro-F1 of class indices (numpy only: the bootstrap calls it thousands of times)."""
    tp = np.bincount(y[pred == y], minlength=classes)
    predicted, actual = np.bincount(pred, minlength=classes), np.bincount(y, minlength=classes)
    denom = predicted + actual
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1[actual > 0].mean())


def micro_f1(Y: np.ndarray, P: np.ndarray) -> float:
    tp = float((Y * P).sum())
    return 2 * tp / max(float(Y.sum() + P.sum()), 1.0)


def choose_weight(p_neural: np.ndarray, p_lexical: np.ndarray, y: np.ndarray, grid: np.ndarray) -> dict:
    """Single-label: the w of `grid` with the best dev macro-F1 (then the lower dev NLL, then the
    larger w), and the scores of w, of the neural part alone (w = 1) and of the lexical one (w = 0)."""
    classes = p_neural.shape[1]

    def score(w: float) -> tuple[float, float]:
        p = w * p_neural + (1 - w) * p_lexical
        nll = float(-np.log(np.clip(p[np.arange(len(y)), y], EPS, None)).mean())
        return macro_f1(y, p.argmax(1), classes), -nll

    table = {round(float(w), 4): score(float(w)) for w in grid}
    best = max(table, key=lambda w: (*table[w], w))
    blend = (best * p_neural + (1 - best) * p_lexical).argmax(1)
    sd = _gain_sd(y, blend, p_neural.argmax(1), lambda t, p: macro_f1(t, p, classes))
    return {"weight": best, "dev_macro_f1": table[best][0], "neural_dev_macro_f1": table[1.0][0],
            "lexical_dev_macro_f1": table[0.0][0], "gain_sd": sd}


def _gain_sd(y: np.ndarray, blend: np.ndarray, alone: np.ndarray, score) -> float:
    """Bootstrap standard deviation over the dev rows of score(blend) - score(alone): `blend`,
    `alone` are each model's predictions (class indices, or multi-hot rows)."""
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(BOOTSTRAPS):
        i = rng.integers(0, len(y), len(y))
        gains.append(score(y[i], blend[i]) - score(y[i], alone[i]))
    return float(np.std(gains, ddof=1))


def choose_label_weights(p_neural: np.ndarray, p_lexical: np.ndarray, Y: np.ndarray, grid: np.ndarray) -> dict:
    """Multi-label: per label, the w with the lowest dev log-loss; one shared w instead unless the
    per-label ones lower the mean dev log-loss by over 1%. Scores: mean dev log-loss of each, and
    micro-F1 at 0.5 of the blend and of the neural part with the bootstrap sd of their gap."""
    def loss(w) -> np.ndarray:  # (C,) each label's dev log-loss
        p = np.clip(w * p_neural + (1 - np.asarray(w)) * p_lexical, EPS, 1 - EPS)
        return -(Y * np.log(p) + (1 - Y) * np.log1p(-p)).mean(0)

    per = np.stack([loss(float(w)) for w in grid])        # (W, C)
    each = grid[per.argmin(0)]                              # (C,)
    shared = float(grid[per.mean(1).argmin()])
    use_each = loss(each).mean() < 0.99 * loss(shared).mean()
    weight = [float(w) for w in each] if use_each else shared
    w = np.asarray(weight)
    blend, alone = (w * p_neural + (1 - w) * p_lexical) >= 0.5, p_neural >= 0.5
    return {"weight": weight, "dev_log_loss": float(loss(w).mean()),
            "neural_dev_log_loss": float(loss(1.0).mean()), "lexical_dev_log_loss": float(loss(0.0).mean()),
            "dev_micro_f1": micro_f1(Y, blend), "neural_dev_micro_f1": micro_f1(Y, alone),
            "gain_sd": _gain_sd(Y, blend, alone, micro_f1)}


def cross_fitted(make, train: TextSet, dev: TextSet, labels: list[str], folds: int = FOLDS,
                 seed: int = 0) -> np.ndarray:
    """Lexical probabilities (len(dev), C) for each dev row from a model that did not see it:
    fold k's model is fitted on train + the other dev folds. Rows are matched by position, so
    the result lines up with `dev` however its rows were ordered."""
    order = np.random.default_rng(seed).permutation(len(dev))
    out = np.full((len(dev), len(labels)), np.nan)
    for k in range(folds):
        held = order[k::folds]
        if len(held) == 0:
            continue
        kept = np.setdiff1d(order, held)
        model = make().fit(train.texts + [dev.texts[i] for i in kept], train.labels + [dev.labels[i] for i in kept])
        out[held] = aligned_proba(model, [dev.texts[i] for i in held], labels)
    return out


def aligned_proba(model, texts: list[str], labels: list[str]) -> np.ndarray:
    """`model.predict_proba(texts)` with its columns in the order of `labels`."""
    columns = [model.labels_.index(label) for label in labels if label in model.labels_]
    if len(columns) != len(labels):
        raise ConvtuneError("the lexical model did not see every label (too few texts of one class to blend)")
    return model.predict_proba(texts)[:, columns]


class Blended:
    """Mixed into a token classifier (before its base class): the blend's log-odds are its
    decision function once `_fit_blend` has kept a lexical part. Needs `blend` (auto | tfidf |
    none), `labels_`, `multi_label_` and the base class's `decision_function`."""

    blend: str = "none"
    lexical_: TfidfClassifier | None = None
    blend_: dict | None = None   # the weight and the dev scores that chose it (convtune.json's "blend")

    # (dev texts, their lexical probabilities) from _fit_blend: cross-fitted, the kept lexical model
    # saw dev, so the thresholds and temperature fitted after the blend must read these instead.
    _lexical_dev_: tuple[list[str], np.ndarray] | None = None

    def decision_function(self, texts, batch_size: int | None = None) -> np.ndarray:
        logits = super().decision_function(texts, batch_size)
        if self.lexical_ is None:
            return logits
        return self.blended_logits(logits, self.lexical_proba(list(texts)))

    def blended_logits(self, neural: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """The blend's log-odds from each part's output on the same texts (`decision_function`
        from parts a caller already computed: the encoder pass is the cost)."""
        return mix(neural, lexical, self._weight(), self.multi_label_)

    def lexical_proba(self, texts: list[str]) -> np.ndarray:
        """The lexical part's probabilities, columns in the order of `labels_` (fit's dev texts:
        their out-of-fold probabilities)."""
        if self._lexical_dev_ is not None and self._lexical_dev_[0] == texts:
            return self._lexical_dev_[1].copy()
        return aligned_proba(self.lexical_, texts, self.labels_)

    def neural_decision_function(self, texts, batch_size: int | None = None) -> np.ndarray:
        """The neural part's logits alone (no blend, no temperature)."""
        return super().decision_function(texts, batch_size)

    def blend_scores(self, data: TextSet, neural: np.ndarray | None = None, lexical: np.ndarray | None = None) -> dict:
        """Each part's scores on labelled texts beside the blend's: accuracy and macro-F1 of the
        most probable label (multi-label: micro-F1 at 0.5, the parts have no tuned thresholds).
        `neural`, `lexical`: each part's output on `data.texts` where already computed."""
        space = self.label_space_
        truth = space.encode(data.labels)
        neural = self.neural_decision_function(data.texts) if neural is None else neural
        lexical = self.lexical_proba(list(data.texts)) if lexical is None else lexical
        parts = {"neural": sigmoid(neural) if self.multi_label_ else softmax(neural), "lexical": lexical,
                 "blend": space.probabilities(self.blended_logits(neural, lexical))}
        if self.multi_label_:
            return {k: {"micro_f1": micro_f1(truth, p >= 0.5)} for k, p in parts.items()}
        return {k: {"accuracy": float((p.argmax(1) == truth).mean()),
                    "macro_f1": macro_f1(truth, p.argmax(1), len(self.labels_))} for k, p in parts.items()}

    def fit_lexical(self, train: TextSet, dev: TextSet, seed: int = 42) -> dict | None:
        """Fit and keep a TF-IDF part beside an already trained neural model, its weight chosen
        on dev, as `--blend tfidf` does during fit (its thresholds and temperature stay the
        neural model's). Returns the record (`blend_`)."""
        self.blend = "tfidf"
        self._fit_blend(train, dev, seed)
        return self.blend_

    def _weight(self):
        w = self.blend_["weight"]
        return np.asarray(w, dtype=np.float64) if isinstance(w, list) else float(w)

    def _fit_blend(self, train: TextSet, dev: TextSet, seed: int) -> None:
        """After the neural part is trained and before thresholds and temperature: fit the lexical
        model, choose the weight on dev, keep the lexical part unless "auto" finds no gain."""
        self.lexical_, self.blend_, self._lexical_dev_ = None, None, None
        if self.blend == "none":
            return
        start = time.perf_counter()
        try:
            lexical, p_lexical = self._lexical(train, dev, seed)
        except ConvtuneError as e:
            if self.blend == "tfidf":
                raise
            warn(f"no lexical blend: {e}")
            return
        grid = COARSE_GRID if len(dev) < SMALL_DEV else GRID
        neural = self.neural_decision_function(dev.texts)
        space = self.label_space_
        if self.multi_label_:
            chosen = choose_label_weights(sigmoid(neural), p_lexical, space.encode(dev.labels), grid)
            gain = chosen["dev_micro_f1"] - chosen["neural_dev_micro_f1"]
        else:
            chosen = choose_weight(softmax(neural), p_lexical, space.encode(dev.labels), grid)
            gain = chosen["dev_macro_f1"] - chosen["neural_dev_macro_f1"]
        keep = bool(np.any(np.asarray(chosen["weight"]) < 1.0) and gain > chosen["gain_sd"])
        kept = self.blend == "tfidf" or keep
        self.blend_ = {"lexical": "tfidf-svm", "kept": kept, "auto_keeps": bool(keep),
                       "cross_fitted": self._cross_fits(dev), **chosen,
                       "seconds": round(time.perf_counter() - start, 3)}
        self.lexical_ = lexical if kept else None
        self._lexical_dev_ = (list(dev.texts), p_lexical) if kept else None
        if not kept:  # the model is the neural one alone; the weight dev preferred stays on record
            self.blend_["dev_weight"], self.blend_["weight"] = self.blend_["weight"], 1.0

    def _lexical(self, train: TextSet, dev: TextSet, seed: int) -> tuple[TfidfClassifier, np.ndarray]:
        """The lexical model kept and its dev probabilities (cross-fitted where dev is small)."""
        def make() -> TfidfClassifier:
            return TfidfClassifier(model="svm", seed=seed)

        if self._cross_fits(dev):
            p_dev = cross_fitted(make, train, dev, self.labels_, seed=seed)
            both = TextSet(train.texts + dev.texts, train.labels + dev.labels)
            return make().fit(both.texts, both.labels), p_dev
        model = make().fit(train.texts, train.labels, dev.texts, dev.labels)
        return model, aligned_proba(model, dev.texts, self.labels_)

    def _cross_fits(self, dev: TextSet) -> bool:
        """Cross-fit the lexical dev probabilities: where dev is small, and for multi-label data,
        whose TF-IDF model calibrates each label on dev (Platt): on dev's own rows, a label with a
        few positives would look near perfect, and the weights and thresholds chosen there fail."""
        return len(dev) < SMALL_DEV or self.multi_label_

    def _save_blend(self, directory: Path) -> None:
        if self.lexical_ is not None:
            (Path(directory) / LEXICAL_DIR).mkdir()
            self.lexical_.save_into(Path(directory) / LEXICAL_DIR)

    def _load_blend(self, directory: Path, manifest: dict) -> None:
        """The lexical part of a saved blend, checked against the neural part's labels."""
        record = manifest.get("blend")
        self.blend_, self.lexical_ = (record if isinstance(record, dict) else None), None
        if not (isinstance(record, dict) and record.get("kept")):
            return
        where = Path(directory) / LEXICAL_DIR
        lexical = load_as(TfidfClassifier, where, read_manifest(where))  # its label rule and calibration too
        if sorted(lexical.labels_) != sorted(self.labels_):
            raise ConvtuneError(f"{where}: its labels differ from the model's")
        w = record.get("weight")
        ok = (isinstance(w, int | float) and 0 <= w <= 1) or (
            isinstance(w, list) and len(w) == len(self.labels_) and all(isinstance(x, int | float) and 0 <= x <= 1 for x in w))
        if not ok or isinstance(w, bool):
            raise ConvtuneError(f"{directory}: convtune.json blend weight must be in [0, 1] (one, or one per label)")
        self.lexical_ = lexical
