"""Metrics and the text report: numbers only (figures are in `experiments.plots`)."""

from __future__ import annotations

from collections import Counter

from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

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
