"""How far predicted probabilities can be trusted, and temperature scaling to fix them.

Numbers only (numpy / scipy), like metrics.py. A fine-tuned Transformer is over-confident;
temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the
logits by one scalar T > 0 fitted on dev by minimising the negative log-likelihood. A softmax
of z / T has the same arg-max as one of z, so no single-label prediction moves. Multi-label
models get one temperature per label (each label's sigmoid is its own binary classifier).

    ECE    expected calibration error: 15 equal-width confidence bins, the |accuracy - confidence|
           gap of each weighted by its share of texts (single-label: the top label's probability;
           multi-label: every (text, label) probability against its 0/1 truth)
    Brier  mean squared distance of the probability vector from the one-hot truth (summed over
           classes; multi-label: the mean over labels)
    NLL    mean negative log-likelihood of the true label (multi-label: mean binary cross-entropy)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 15
# T outside [1/20, 20] is not a calibration but a broken model; the bounds also keep the
# optimiser away from overflow.
T_RANGE = (0.05, 20.0)
EPS = 1e-12


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def nll_of_logits(logits: np.ndarray, targets: np.ndarray, multi: bool = False) -> float:
    """NLL of (N, C) logits: `targets` (N,) class indices, or (N, C) 0/1 with `multi`."""
    z = np.asarray(logits, dtype=np.float64)
    if multi:
        t = np.asarray(targets, dtype=np.float64)
        return float(-(t * _log_sigmoid(z) + (1 - t) * _log_sigmoid(-z)).mean())
    return float(-_log_softmax(z)[np.arange(len(z)), np.asarray(targets)].mean())


def _best_t(nll) -> float:
    res = minimize_scalar(lambda log_t: nll(np.exp(log_t)), bounds=np.log(T_RANGE), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, multi: bool = False) -> float | list[float]:
    """The temperature(s) minimising dev NLL: one float, or one per label with `multi`."""
    z = np.asarray(logits, dtype=np.float64)
    if not multi:
        return _best_t(lambda t: nll_of_logits(z / t, targets))
    t = np.asarray(targets, dtype=np.float64)
    return [_best_t(lambda T, c=c: nll_of_logits(z[:, c:c + 1] / T, t[:, c:c + 1], multi=True))
            for c in range(z.shape[1])]


def _flat(proba: np.ndarray, targets: np.ndarray, multi: bool) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) pairs that ECE and the reliability diagram bin."""
    p = np.asarray(proba, dtype=np.float64)
    if multi:
        return p.ravel(), np.asarray(targets, dtype=np.float64).ravel()
    return p.max(axis=1), (p.argmax(axis=1) == np.asarray(targets)).astype(np.float64)


def reliability(proba: np.ndarray, targets: np.ndarray, multi: bool = False, bins: int = BINS) -> list[dict]:
    """Per non-empty bin: its range, mean confidence, accuracy and text count."""
    conf, correct = _flat(proba, targets, multi)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi]; 0 joins the first bin
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "confidence": float(conf[sel].mean()),
                        "accuracy": float(correct[sel].mean()), "count": int(sel.sum())})
    return out


def ece(proba: np.ndarray, targets: np.ndarray, multi: bool = False, bins: int = BINS) -> float:
    rows = reliability(proba, targets, multi, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / max(total, 1))


def brier(proba: np.ndarray, targets: np.ndarray, multi: bool = False) -> float:
    p = np.asarray(proba, dtype=np.float64)
    if multi:
        return float(((p - np.asarray(targets, dtype=np.float64)) ** 2).mean())
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), np.asarray(targets)] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def nll_of_proba(proba: np.ndarray, targets: np.ndarray, multi: bool = False) -> float:
    """NLL from probabilities (models without logits, e.g. TF-IDF); clipped away from 0 and 1."""
    p = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1 - EPS)
    if multi:
        t = np.asarray(targets, dtype=np.float64)
        return float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean())
    return float(-np.log(p[np.arange(len(p)), np.asarray(targets)]).mean())


def scores(proba: np.ndarray, targets: np.ndarray, multi: bool = False) -> dict:
    """{"ece", "brier", "nll"} of probabilities against the truth (indices, or 0/1 with `multi`)."""
    return {"ece": ece(proba, targets, multi), "brier": brier(proba, targets, multi),
            "nll": nll_of_proba(proba, targets, multi)}


def choose_temperature(logits: np.ndarray, targets: np.ndarray, multi: bool = False) -> tuple[object, dict]:
    """(temperature or None, record): the dev-fitted temperature, kept only if it lowers dev NLL
    (`None`: leave the logits as they are). The record is what convtune.json keeps."""
    t = fit_temperature(logits, targets, multi)
    before = nll_of_logits(logits, targets, multi)
    after = nll_of_logits(np.asarray(logits, dtype=np.float64) / np.asarray(t), targets, multi)
    keep = after < before
    return (t if keep else None), {"method": "temperature", "temperature": t if keep else 1.0,
                                   "dev_nll_before": before, "dev_nll_after": after if keep else before}


def check_temperature(value, labels: int, multi: bool, where: str) -> float | list[float]:
    """A temperature read from a model directory: a positive finite number (a list of `labels`
    of them for a multi-label model) inside T_RANGE; ValueError otherwise."""
    values = value if multi else [value]
    if not isinstance(values, list) or len(values) != (labels if multi else 1) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and T_RANGE[0] <= t <= T_RANGE[1] for t in values):
        want = f"a list of {labels} numbers" if multi else "a number"
        raise ValueError(f"{where}: calibration temperature must be {want} from {T_RANGE[0]} to {T_RANGE[1]}, "
                         f"not {str(value)[:60]}")
    return [float(t) for t in values] if multi else float(value)


def scaled_thresholds(thresholds: list[float], temperature: list[float]) -> list[float]:
    """Multi-label thresholds tuned on uncalibrated probabilities, moved to the calibrated ones:
    p >= t  <=>  z >= logit(t)  <=>  sigmoid(z / T) >= sigmoid(logit(t) / T), so each text's label
    set stays the same."""
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-7, 1 - 1e-7)
    z = np.log(t) - np.log1p(-t)
    return (1.0 / (1.0 + np.exp(-z / np.asarray(temperature)))).tolist()
