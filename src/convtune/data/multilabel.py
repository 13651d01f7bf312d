"""Multi-label texts: label sets, their label space (BCE, sigmoid, per-label thresholds), splits.

A multi-label TextSet holds a tuple of labels per text (sorted, no duplicates; () is a text with
no label). The space's columns are the labels; a text's probability of each is a sigmoid, and
its predicted set is every label whose probability reaches that label's threshold, tuned on dev
to maximise the label's own F1 (0.5 for a label dev does not have).

    logits (N, C) -> sigmoid -> probabilities (N, C) -> >= thresholds (C,) -> label sets
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from convtune.errors import ConvtuneError

DEFAULT_THRESHOLD = 0.5
# A label's threshold is tuned on dev only when dev holds at least this many of its texts; with
# fewer, the best cut is noise (one positive ranked 400th makes "the top 400 are positive" its
# best F1). Chosen on Reuters' dev split by 2-fold cross-validation within dev (5 halvings):
# micro-F1 0.676 with 1, 0.847 with 3, 0.849 with 5 (frozen MiniLM-L6; docs/training.md).
MIN_DEV_POSITIVES = 5


def is_multi(labels: Sequence) -> bool:
    """True when the labels are label sets (tuples), as a multi-label TextSet holds them."""
    return bool(len(labels)) and isinstance(labels[0], tuple)


def label_set(cell, where: str, sep: str | None = None) -> tuple[str, ...]:
    """One text's labels as a sorted tuple: from a list / tuple / set, a JSON list in a string
    ("[\"a\", \"b\"]"), or a string cut at `sep`. An empty label or one given twice is an error
    (a typo such as "joy,,fear" or "joy,joy" would otherwise change what the model learns)."""
    if isinstance(cell, str):
        text = cell.strip()
        if text.startswith("["):
            try:
                cell = json.loads(text)
            except json.JSONDecodeError:
                raise ConvtuneError(f"{where}: label cell {cell[:60]!r} starts with '[' but is not a JSON list") from None
        elif sep is not None:
            cell = text.split(sep) if text else []
        else:
            cell = [text]
    if not isinstance(cell, list | tuple | set | frozenset):
        cell = [cell]
    labels = [str(y).strip() for y in cell]
    if any(not y for y in labels):
        raise ConvtuneError(f"{where}: an empty label in the label list {list(cell)!r}")
    repeated = sorted(y for y, n in Counter(labels).items() if n > 1)
    if repeated:
        raise ConvtuneError(f"{where}: label {repeated[0]!r} given twice in one text's labels {list(cell)!r}")
    return tuple(sorted(labels))


def flat(label_sets: Iterable[tuple[str, ...]]) -> Counter:
    """How many texts carry each label."""
    return Counter(y for s in label_sets for y in s)


def multi_hot(label_sets: Sequence[tuple[str, ...]], labels: Sequence[str]) -> np.ndarray:
    """(N, C) float32 0/1 matrix, columns in the order of `labels` (unknown labels: KeyError)."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for r, s in enumerate(label_sets):
        out[r, [index[y] for y in s]] = 1.0
    return out


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


def tune_thresholds(proba: np.ndarray, truth: np.ndarray, min_positives: int = MIN_DEV_POSITIVES) -> list[float]:
    """Per label, the threshold on dev probabilities that maximises that label's F1 (ties: the
    lowest such threshold; 0.5 for a label with fewer than `min_positives` positive dev texts).
    Candidates are the midpoints between sorted distinct probabilities, so the threshold
    generalises instead of sitting exactly on one dev text's score."""
    out = []
    for c in range(truth.shape[1]):
        y, p = truth[:, c] > 0, proba[:, c]
        if y.sum() < max(min_positives, 1):
            out.append(DEFAULT_THRESHOLD)
            continue
        order = np.argsort(-p, kind="stable")
        ps, ys = p[order], y[order]
        tp = np.cumsum(ys)                     # predicting the top k+1 texts positive
        f1 = 2 * tp / (np.arange(1, len(ps) + 1) + y.sum())
        last = np.r_[ps[1:] != ps[:-1], True]  # only cut between distinct scores
        f1 = np.where(last, f1, -1.0)
        k = int(np.argmax(f1))
        nxt = ps[k + 1] if k + 1 < len(ps) else 0.0
        out.append(float((ps[k] + nxt) / 2))
    return out


def check_thresholds(values, n: int, where: str) -> list[float]:
    """Saved or given thresholds: n finite numbers in [0, 1], else one line naming the entry."""
    if not isinstance(values, list) or len(values) != n:
        raise ConvtuneError(f"{where}: thresholds must be a list of {n} numbers (one per label)")
    for i, t in enumerate(values):
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or not 0 <= t <= 1:
            raise ConvtuneError(f"{where}: threshold {i} is {t!r}; each must be a number from 0 to 1")
    return [float(t) for t in values]


@dataclass(frozen=True)
class MultiLabelSpace:
    """The label space of a multi-label model (same interface as `labels.LabelSpace`)."""

    labels: tuple[str, ...]
    kind: str = "str"
    thresholds: tuple[float, ...] | None = None   # None: 0.5 for every label
    at_least_one: bool = False                     # an empty prediction becomes the top label
    temperature: tuple[float, ...] | float = 1.0   # calibration: each label's logit is divided by its own
    multi: bool = True

    @property
    def values(self) -> list:
        return [int(y) for y in self.labels] if self.kind == "int" else list(self.labels)

    def cutoffs(self) -> np.ndarray:
        return np.asarray(self.thresholds or [DEFAULT_THRESHOLD] * len(self.labels))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """(N, C) probabilities -> (N, C) bool: over each label's threshold (plus the top label of
        an empty row with `at_least_one`)."""
        proba = np.asarray(proba)
        on = proba >= self.cutoffs()
        if self.at_least_one and len(proba):
            empty = ~on.any(axis=1)
            on[empty, proba[empty].argmax(axis=1)] = True
        return on

    def decode(self, proba: np.ndarray) -> list[list]:
        """Each text's predicted label set, in column order (values: ints for an "int" space)."""
        values = self.values
        return [[values[c] for c in np.flatnonzero(row)] for row in self.decide(proba)]

    def decode_stored(self, proba: np.ndarray) -> list[tuple[str, ...]]:
        """Predicted sets as a TextSet holds them (sorted string tuples)."""
        return [tuple(sorted(self.labels[c] for c in np.flatnonzero(row))) for row in self.decide(proba)]

    def encode(self, label_sets: Sequence[tuple[str, ...]]) -> np.ndarray:
        return multi_hot(label_sets, self.labels)

    def loss(self, logits, targets, weight=None, label_smoothing: float = 0.0):
        """Binary cross-entropy with logits over (B, C) 0/1 targets; `weight` is BCE's pos_weight
        ((C,) negatives / positives with --class-weight balanced). Label smoothing pulls the
        targets towards 0.5."""
        import torch.nn.functional as F

        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) logits -> each label's sigmoid of logit / its temperature."""
        return sigmoid(np.asarray(logits, dtype=np.float64) / np.asarray(self.temperature)).astype(np.float32)

    def scores(self, row: Sequence[float], digits: int | None = None) -> dict[str, float]:
        return {lab: float(x) if digits is None else round(float(x), digits) for lab, x in zip(self.labels, row)}


def pos_weight(label_sets: Sequence[tuple[str, ...]], labels: Sequence[str]):
    """(C,) negatives / positives per label (BCE's pos_weight for --class-weight balanced)."""
    import torch

    pos = multi_hot(label_sets, labels).sum(axis=0)
    return torch.tensor((len(label_sets) - pos) / np.maximum(pos, 1), dtype=torch.float32)


def stratified_split_multi(label_sets: Sequence[tuple[str, ...]], fractions: tuple[float, ...],
                           seed: int) -> list[list[int]]:
    """Indices of len(fractions) parts by iterative stratification (Sechidis et al. 2011, the
    `iterative-stratification` package): every label spread over the parts in proportion."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    labels = sorted(flat(label_sets))
    y = multi_hot(label_sets, labels) if labels else np.zeros((len(label_sets), 1), dtype=np.float32)
    rest, parts = np.arange(len(label_sets)), []
    remaining = 1.0
    for frac in fractions[:-1]:
        share = frac / remaining
        if len(rest) < 2 or share >= 1:
            parts.append(sorted(rest.tolist()))
            rest = rest[:0]
        else:
            cut = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=1 - share, random_state=seed)
            keep, other = next(cut.split(np.zeros(len(rest)), y[rest]))
            parts.append(sorted(rest[keep].tolist()))
            rest = rest[other]
        remaining -= frac
    parts.append(sorted(rest.tolist()))
    return parts
