"""The label space of a fitted model: which classes, in which order, and what their values are.

    labels  ("0", "1", "2")   strings, in the order of the probability columns (saved in convtune.json)
    kind    "int" | "str"     "int" when fit() was given integer labels: every interface (Python,
                              CLI, server, ONNX exports) then answers 0, not "0"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KINDS = ("str", "int")


@dataclass(frozen=True)
class LabelSpace:
    labels: tuple[str, ...]
    kind: str = "str"

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

    def scores(self, row: Sequence[float], digits: int | None = None) -> dict[str, float]:
        """One text's probabilities keyed by label (strings: JSON object keys always are)."""
        return {lab: float(x) if digits is None else round(float(x), digits) for lab, x in zip(self.labels, row)}
