"""Metrics and the text report: numbers only (figures are in `experiments.plots`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
)

def mean_sd(values) -> tuple[float, float]:
    """(mean, sample standard deviation) of a few runs' scores: the one "mean ± sd" of every
    report and bench (ddof=1, as a spread over seeds is an estimate; 0.0 for a single run)."""
    a = np.asarray(list(values), dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


# Past this many classes metrics.json holds no dense confusion matrix (10,000 classes would be
# 10^8 counts, gigabytes as JSON) but the sub-matrix of the classes with the most errors.
DENSE_CONFUSION_MAX = 100
TOP_CONFUSION_CLASSES = 40   # classes in that sub-matrix, and the most a confusion plot draws


def scores(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy and macro-F1 only: the per-epoch dev check (cheap for any number of classes)."""
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))}


def compute_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support and the confusion matrix (rows = truth).

    With more than DENSE_CONFUSION_MAX classes, "confusion_matrix" is None and "confusion_top"
    holds the rows and columns of the TOP_CONFUSION_CLASSES classes with the most errors.
    """
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out = {"size": len(y_true), **scores(y_true, y_pred, labels),
           "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                               "support": int(s[i])} for i, lab in enumerate(labels)},
           "labels": list(labels), "confusion_matrix": None}
    if len(labels) <= DENSE_CONFUSION_MAX:
        out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    else:
        out["confusion_top"] = top_confusion(y_true, y_pred, labels, TOP_CONFUSION_CLASSES)
    return out


def top_confusion(y_true: list[str], y_pred: list[str], labels: list[str], k: int) -> dict:
    """The confusion sub-matrix of the k classes with the most errors (as truth or prediction;
    then the most frequent), counted pair by pair: memory grows with the texts, not with the
    classes squared."""
    pairs = Counter(zip(y_true, y_pred))
    errors: Counter = Counter()
    for (t, q), n in pairs.items():
        if t != q:
            errors[t] += n
            errors[q] += n
    support = Counter(y_true)
    order = {lab: i for i, lab in enumerate(labels)}
    # Most errors first; classes without errors (a good model has few) by how often they occur.
    ranked = sorted(order, key=lambda lab: (-errors[lab], -support[lab], order[lab]))
    chosen = sorted(ranked[:k], key=order.get)
    index = {lab: i for i, lab in enumerate(chosen)}
    matrix = [[0] * len(chosen) for _ in chosen]
    for (t, q), n in pairs.items():
        if t in index and q in index:
            matrix[index[t]][index[q]] += n
    return {"labels": chosen, "matrix": matrix, "classes": len(labels)}


def text_report(y_true: list[str], y_pred: list[str], labels: list[str]) -> str:
    """scikit-learn's classification report."""
    return classification_report(y_true, y_pred, labels=labels, digits=4, zero_division=0)


# --------------------------------------------------------------------------- multi-label

def multilabel_scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """(N, C) 0/1 truth and prediction -> subset accuracy (as "accuracy") and macro-F1: the dev
    check, under the same keys as the single-label one."""
    return {"accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0))}


def multilabel_metrics(truth: np.ndarray, pred: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict:
    """Micro / macro / samples F1, per-label P/R/F1/support, Hamming loss, subset accuracy and
    label-ranking average precision (LRAP, from the probabilities) for (N, C) arrays."""
    p, r, f, s = precision_recall_fscore_support(truth, pred, zero_division=0)
    out = {"size": int(len(truth)), "multi_label": True, **multilabel_scores(truth, pred),
           "subset_accuracy": float(accuracy_score(truth, pred)),
           "micro_f1": float(f1_score(truth, pred, average="micro", zero_division=0)),
           "samples_f1": float(f1_score(truth, pred, average="samples", zero_division=1.0)),  # no label, none predicted: 1
           "hamming_loss": float(hamming_loss(truth, pred)),
           "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                               "support": int(s[i])} for i, lab in enumerate(labels)},
           "labels": list(labels), "confusion_matrix": None}
    # LRAP is undefined for a text without labels; scikit-learn scores such rows 1.0, so leave them out.
    rows = truth.sum(axis=1) > 0
    out["lrap"] = float(label_ranking_average_precision_score(truth[rows], proba[rows])) if rows.any() else None
    return out


def multilabel_report(truth: np.ndarray, pred: np.ndarray, labels: list[str]) -> str:
    """scikit-learn's classification report for label indicator arrays (micro / macro / samples rows)."""
    return classification_report(truth, pred, target_names=list(labels), digits=4, zero_division=0)
