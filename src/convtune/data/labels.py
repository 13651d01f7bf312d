"""The label space of a fitted model: which classes, in which order, and what their values are.

    labels  ("0", "1", "2")   strings, in the order of the probability columns (saved in convtune.json)
    kind    "int" | "str"     "int" when fit() was given integer labels: every interface (Python,
                              CLI, server, ONNX exports) then answers 0, not "0"

Also here: the label map of a training set (`label_list`, sorted numerically when the labels
are numbers), checks of other splits against it, and the softmax that turns logits into the
probability columns.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from convtune.data.multilabel import flat, is_multi
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError, warn


def label_counts(labels: Sequence) -> Counter:
    """Texts per label (a multi-label text counts once for each of its labels)."""
    return flat(labels) if is_multi(labels) else Counter(labels)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


MAX_LABEL_CHARS = 1000  # a class name, not a text: a megabyte label is a wrong column


def too_long(labels) -> str | None:
    """The first label over MAX_LABEL_CHARS, if any (training data and saved label maps alike)."""
    return next((y for y in labels if len(y) > MAX_LABEL_CHARS), None)


def label_list(train: TextSet) -> list[str]:
    """The label map: sorted distinct training labels (numeric labels sort numerically).

    Labels that name the same number ("1" and "1.0") are ordered by their text, so the order
    never depends on set iteration (PYTHONHASHSEED). A label over MAX_LABEL_CHARS is refused.
    """
    counts = label_counts(train.labels)
    long = too_long(counts)
    if long is not None:
        raise ConvtuneError(f"a training label is {len(long):,} characters long ({long[:40]!r}...); labels are "
                            f"class names of at most {MAX_LABEL_CHARS:,} characters: is the label column the text?")
    if is_multi(train.labels):  # one label is a yes/no question per text, but it must have both answers
        if not counts:
            raise ConvtuneError("training data has no labels at all (every label set is empty)")
        if len(counts) == 1 and all(train.labels):
            raise ConvtuneError(f"every training text has label {next(iter(counts))!r}; need texts without it too")
        return sort_labels(counts)
    if len(counts) < 2:
        raise ConvtuneError(
            f"training data has only one class ({next(iter(counts), 'none')!r}); need at least two")
    return sort_labels(counts)


def warn_rare_classes(train: TextSet) -> None:
    """One warning line for classes with fewer than 2 training examples: predictable, hardly learnable."""
    counts = label_counts(train.labels)
    rare = sort_labels(lab for lab, n in counts.items() if n < 2)
    if rare:
        warn(f"{len(rare)} of {len(counts)} classes have fewer than 2 training examples "
             f"(e.g. {', '.join(map(repr, rare[:3]))}); they can hardly be learned")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Numeric order when every label is a finite number (ties by text), else text order."""
    labels = list(labels)
    try:
        keys = {lab: float(lab) for lab in labels}
    except ValueError:
        return sorted(labels)
    if not all(math.isfinite(k) for k in keys.values()):  # "nan" / "inf" have no place in an order
        return sorted(labels)
    return sorted(labels, key=lambda lab: (keys[lab], lab))


def check_label_map(labels, where: str) -> None:
    """A saved label map: a non-empty list of distinct strings of sane length (an edited
    convtune.json with integers, repeats or a megabyte label is one line, not wrong answers)."""
    if not isinstance(labels, list) or not labels or not all(isinstance(y, str) for y in labels):
        raise ConvtuneError(f"{where}: labels must be a non-empty list of strings")
    repeated = next((y for y, n in Counter(labels).items() if n > 1), None)
    if repeated is not None:
        raise ConvtuneError(f"{where}: labels name {repeated[:40]!r} more than once")
    long = too_long(labels)
    if long is not None:
        raise ConvtuneError(f"{where}: a label is {len(long):,} characters long (at most {MAX_LABEL_CHARS:,})")


def check_labels(data: TextSet, labels: list[str], where: str) -> None:
    """Reject labels that the model was not trained on (e.g. a class seen only in dev)."""
    unseen = sorted(set(label_counts(data.labels)) - set(labels))
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5])
        raise ConvtuneError(f"{where} has labels not in the training data: {shown}")

KINDS = ("str", "int")


@dataclass(frozen=True)
class LabelSpace:
    labels: tuple[str, ...]
    kind: str = "str"
    temperature: float = 1.0   # calibration: logits are divided by it before the softmax (arg-max unchanged)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"label type must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def values(self) -> list:
        """The labels as the user gave them (ints for an "int" space), in column order."""
        return [int(y) for y in self.labels] if self.kind == "int" else list(self.labels)

    def decode(self, proba: np.ndarray) -> list:
        """The most probable label value of each row of an (N, C) probability array."""
        values = self.values
        return [values[i] for i in np.asarray(proba).argmax(axis=1)]

    def encode(self, labels: Sequence[str]) -> np.ndarray:
        """(N,) int64 column index of each label (as stored: strings)."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        return np.array([index[y] for y in labels], dtype=np.int64)

    def loss(self, logits, targets, weight=None, label_smoothing: float = 0.0):
        """The training loss for (B, C) logits and (B,) class indices: cross-entropy (torch
        tensors; computed in fp32 whatever the autocast precision)."""
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=label_smoothing)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) logits -> probabilities: a softmax of logits / temperature over the classes."""
        logits = np.asarray(logits)
        return softmax(logits if self.temperature == 1.0 else (logits / self.temperature).astype(logits.dtype))

    def scores(self, row: Sequence[float], digits: int | None = None) -> dict[str, float]:
        """One text's probabilities keyed by label (strings: JSON object keys always are)."""
        return {lab: float(x) if digits is None else round(float(x), digits) for lab, x in zip(self.labels, row)}


def label_type(labels: Sequence) -> str:
    """"int" if every label is an integer (Python or numpy; not bool), else "str"."""
    ints = all(isinstance(y, numbers.Integral) and not isinstance(y, bool) for y in labels)
    return "int" if ints and len(labels) else "str"
