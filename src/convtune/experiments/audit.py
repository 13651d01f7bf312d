"""`convtune audit`: texts whose given label is probably wrong (confident learning).

Every text gets an out-of-fold probability: k stratified folds, a model trained on the other k - 1
(TF-IDF + SVM by default, seconds; frozen MiniLM + CNN head, minutes with the token-state cache;
or fine-tuned for 2 epochs, the slowest and the most accurate), so no text is scored by a model
that saw its label. cleanlab's `find_label_issues`
(Northcutt et al. 2021, "Confident Learning") flags the texts whose given label the out-of-fold
probabilities contradict, and its self-confidence score (the probability of the given label)
ranks every text, most suspect first. Single-label sets only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convtune import markdown as md
from convtune._fs import atomic_dir
from convtune.data.labels import label_list
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError
from convtune.estimators.registry import make_estimator

# The fold models. finetune stops at 2 epochs, chosen before any run: a network fits the clean
# majority first and memorises wrong labels later (Arpit et al. 2017), and audit wants the former.
METHODS = {"tfidf": dict(head="tfidf-svm"), "frozen": dict(head="cnn", mode="frozen", blend="none"),
           "finetune": dict(head="cnn", mode="finetune", epochs=2, blend="none")}


@dataclass
class Audit:
    labels: list[str]          # the label map (probability columns)
    given: np.ndarray          # (N,) index of each text's given label
    proba: np.ndarray          # (N, C) out-of-fold probabilities
    flagged: np.ndarray        # (N,) bool: cleanlab's find_label_issues
    quality: np.ndarray        # (N,) probability of the given label (self-confidence): low = suspect
    ranked: np.ndarray         # every text's index, most suspect first


def out_of_fold(data: TextSet, method: str = "tfidf", folds: int = 5, seed: int = 42, **options) -> np.ndarray:
    """(N, C) probabilities, each row from the fold model that did not train on that text."""
    from sklearn.model_selection import StratifiedKFold

    labels = label_list(data)
    counts = np.bincount([labels.index(y) for y in data.labels], minlength=len(labels))
    if counts.min() < folds:
        raise ConvtuneError(f"audit: label {labels[int(counts.argmin())]!r} has {counts.min()} texts; "
                            f"{folds} folds need at least {folds} of each (use --folds {max(2, counts.min())})")
    proba = np.zeros((len(data), len(labels)), dtype=np.float64)
    texts, y = np.array(data.texts, dtype=object), np.array(data.labels)
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        clf = make_estimator(**METHODS[method], seed=seed, **options)
        clf.fit(texts[train].tolist(), y[train].tolist())
        if clf.labels_ != labels:  # every fold holds every label (checked above)
            raise ConvtuneError("audit: a fold lost a label")
        proba[held] = clf.predict_proba(texts[held].tolist())
    return proba


def audit(data: TextSet, method: str = "tfidf", folds: int = 5, seed: int = 42, **options) -> Audit:
    """Out-of-fold probabilities and cleanlab's verdict on every text of a single-label set."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise ConvtuneError("convtune audit needs cleanlab: pip install 'convtune[audit]'") from None
    if method not in METHODS:
        raise ConvtuneError(f"audit: --method is one of {', '.join(METHODS)}, not {method!r}")
    if data.labels and isinstance(data.labels[0], tuple):
        raise ConvtuneError("audit is for single-label data (one label per text)")
    if not 2 <= folds <= 20:
        raise ConvtuneError(f"audit: --folds must be 2 to 20, not {folds}")
    labels = label_list(data)
    given = np.array([labels.index(y) for y in data.labels])
    proba = out_of_fold(data, method, folds, seed, **options)
    flagged = find_label_issues(given, proba, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(given, proba, method="self_confidence")
    return Audit(labels, given, proba, flagged, quality, np.argsort(quality, kind="stable"))


def write_audit(result: Audit, data: TextSet, out: str | Path, spec: str, method: str, overwrite: bool = False,
                shown: int = 20) -> Path:
    """OUT/suspects.csv (every flagged text, most suspect first) and OUT/report.md."""
    rows = [i for i in result.ranked if result.flagged[i]]
    with atomic_dir(out, overwrite) as tmp:
        with open(tmp / "suspects.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["rank", "index", "text", "given_label", "suggested_label", "p_given", "p_suggested"])
            for rank, i in enumerate(rows, 1):
                best = int(result.proba[i].argmax())
                w.writerow([rank, int(i), data.texts[i], result.labels[result.given[i]], result.labels[best],
                            f"{result.proba[i, result.given[i]]:.4f}", f"{result.proba[i, best]:.4f}"])
        (tmp / "report.md").write_text(_report(result, data, rows, spec, method, shown), encoding="utf-8")
        summary = {"data": spec, "method": method, "texts": len(data), "flagged": len(rows),
                   "flagged_by_given_label": {lab: int(sum(result.given[i] == c for i in rows))
                                              for c, lab in enumerate(result.labels)}}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(out)


def _report(result: Audit, data: TextSet, rows: list[int], spec: str, method: str, shown: int) -> str:
    lines = [f"# convtune audit: {md.text(spec)}", "",
             f"{len(data)} texts, out-of-fold probabilities from {method} models; cleanlab flags **{len(rows)}** "
             f"({len(rows) / len(data):.1%}) whose given label the other folds' model contradicts. "
             "Most suspect first (lowest probability of the given label); every flagged text is in suspects.csv.", "",
             "| rank | given | suggested | p(given) | text |", "|---|---|---|---|---|"]
    for rank, i in enumerate(rows[:shown], 1):
        best = int(result.proba[i].argmax())
        text = " ".join(data.texts[i].split())
        text = md.text(text if len(text) <= 160 else text[:157] + "...")
        lines.append(f"| {rank} | {md.text(result.labels[result.given[i]])} | {md.text(result.labels[best])} | "
                     f"{result.proba[i, result.given[i]]:.3f} | {text} |")
    return "\n".join(lines) + "\n"
