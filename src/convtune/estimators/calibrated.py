"""Calibration, the part every classifier shares: a temperature fitted on dev, and the scores
(ECE, Brier, NLL, reliability bins) that say whether it helped. Mixed into TextClassifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from convtune.calibration import choose_temperature, reliability, scaled_thresholds
from convtune.calibration import scores as calibration_scores
from convtune.data.texts import TextSet


class Calibrated:
    """Needs from the class it is mixed into: label_space_, multi_label_, thresholds_, labels_,
    manifest_, decision_function and _check_fitted (TextClassifier has them all)."""

    temperature_: float | list[float] | None = None  # calibration fitted on dev (one per label if multi-label)
    calibration_: dict | None = None  # what was done: method, temperature, dev NLL before / after

    def _fit_temperature(self, dev: TextSet, method: str) -> None:
        """The last step of fit(): `method` "temperature" fits a temperature on the dev logits and
        keeps it if it lowers dev NLL; "none" leaves the logits alone. A multi-label model's tuned
        thresholds move with their label's temperature, so no decision changes."""
        if self.multi_label_ and self.temperature_ is not None and self.thresholds_ is not None:
            self.thresholds_ = scaled_thresholds(self.thresholds_, [1 / t for t in self.temperature_])  # undo
        self.temperature_, self.calibration_ = None, {"method": "none"}
        if method != "temperature":
            return
        truth = self.label_space_.encode(dev.labels)
        self.temperature_, self.calibration_ = choose_temperature(self.decision_function(dev.texts), truth,
                                                                  self.multi_label_)
        if self.multi_label_ and self.temperature_ is not None and self.thresholds_ is not None:
            self.thresholds_ = scaled_thresholds(self.thresholds_, self.temperature_)

    def _calibration_record(self) -> dict:
        """convtune.json's {"calibration": {...}} for a fitted temperature, else {}."""
        if self.temperature_ is None:
            return {}
        return {"calibration": dict(self.calibration_, temperature=self.temperature_)}

    def calibration_scores(self, logits: np.ndarray, labels: Sequence) -> dict:
        """ECE / Brier / NLL and reliability bins of the probabilities of `decision_function`'s
        logits against stored labels, and under "uncalibrated" the same without the temperature
        (when the model has one)."""
        space = self.label_space_
        truth = space.encode(labels)

        def of(proba: np.ndarray) -> dict:
            return {**calibration_scores(proba, truth, self.multi_label_),
                    "reliability": reliability(proba, truth, self.multi_label_)}

        out = of(space.probabilities(logits))
        if self.temperature_ is not None:
            out |= {"temperature": self.temperature_, "uncalibrated": of(replace(space, temperature=1.0).probabilities(logits))}
        return out

