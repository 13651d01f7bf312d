"""Several saved models as one: greedy ensemble selection on dev (Caruana et al. 2004).

    member probabilities on dev (M, N, C) -> greedy selection with replacement -> counts (M,)
    p = sum_m (count_m / total) p_m  -> log p (multi-label: logit p) -> thresholds, temperature

Selection starts from the best single member on dev and adds, one step at a time and with
replacement, the member whose addition gives the best dev score (macro-F1; multi-label:
micro-F1 at 0.5; ties: the lower dev log-loss); it keeps the best prefix of those steps, so on
dev the ensemble is never below its best member. Members are any saved models with the same
labels (transformers with or without their TF-IDF blend, adapters, TF-IDF, TextCNN, ONNX
exports), trained on the same split: their dev texts must be ones none of them trained on.

Saved as an ordinary model directory: `convtune.json` (kind "ensemble", each member's folder
and weight) and a copy of every member under `members/`. Loading loads the members the way
`convtune.load` loads any model (the registry hands its loader to this class).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from convtune._fs import write_json
from convtune.data.texts import as_texts
from convtune.errors import ConvtuneError
from convtune.estimators.base import TextClassifier
from convtune.estimators.blend import EPS, micro_f1, macro_f1
from convtune.modeling.checkpoint import CONFIG_NAME, FORMAT_VERSION

MEMBERS_DIR = "members"
STEPS = 20  # selection steps after the first member (Caruana et al. use tens to hundreds)


def _score(p: np.ndarray, y: np.ndarray, multi_label: bool) -> tuple[float, float]:
    """(dev score, -log-loss) of probabilities p (N, C) against y (classes, or multi-hot rows)."""
    if multi_label:
        q = np.clip(p, EPS, 1 - EPS)
        return micro_f1(y, p >= 0.5), float((y * np.log(q) + (1 - y) * np.log1p(-q)).mean())
    nll = -np.log(np.clip(p[np.arange(len(y)), y], EPS, None)).mean()
    return macro_f1(y, p.argmax(1), p.shape[1]), -float(nll)


def select(probas: np.ndarray, y: np.ndarray, multi_label: bool, steps: int = STEPS) -> tuple[np.ndarray, list]:
    """Greedy selection with replacement over members' dev probabilities `probas` (M, N, C):
    each member's count in the best prefix, and the dev (score, -log-loss) after each step."""
    alone = [_score(p, y, multi_label) for p in probas]
    counts = np.zeros(len(probas), dtype=int)
    counts[int(max(range(len(probas)), key=lambda m: alone[m]))] = 1
    history = [(counts.copy(), max(alone))]
    total = probas[counts.argmax()].copy()
    for _ in range(steps):
        k = counts.sum()
        tried = [_score((total + p) / (k + 1), y, multi_label) for p in probas]
        m = int(max(range(len(probas)), key=lambda i: tried[i]))
        counts[m] += 1
        total += probas[m]
        history.append((counts.copy(), tried[m]))
    best = max(range(len(history)), key=lambda i: (history[i][1], -i))  # the shortest of the best
    return history[best][0], [h[1] for h in history]


class Ensemble(TextClassifier):
    """Fitted models as one classifier: `Ensemble(members).fit(train_texts, train_labels,
    dev_texts, dev_labels)` chooses the weights on dev (train gives the label map only: the
    members are already trained). `sources`: each member's saved directory, copied on save."""

    kind = "ensemble"
    load_member: Callable[[Path], TextClassifier] | None = None  # set by the registry: loads any kind

    def __init__(self, members: Sequence[TextClassifier] = (), sources: Sequence[str | Path | None] | None = None,
                 steps: int = STEPS, calibration: str = "temperature"):
        self.members, self.sources, self.steps, self.calibration = list(members), sources, steps, calibration
        self.weights_: np.ndarray | None = None
        self.selection_: dict | None = None
        self.labels_ = None
        self._dev_: tuple[list[str], np.ndarray] | None = None  # fit's dev texts and member probabilities

    def get_params(self, deep: bool = True) -> dict:
        return {"members": self.members, "sources": self.sources, "steps": self.steps, "calibration": self.calibration}

    def hyperparameters(self) -> dict:
        weights = None if self.weights_ is None else [float(w) for w in self.weights_]
        return {"head": self.kind, "members": [str(s) for s in self._sources()], "steps": self.steps, "weights": weights}

    def describe(self) -> dict:
        return {"encoder": None, "head": self.kind, "mode": f"{len(self.members)} members", "seed": None}

    def _sources(self) -> list:
        return list(self.sources) if self.sources is not None else [None] * len(self.members)

    def fit(self, texts, labels, dev_texts=None, dev_labels=None, callbacks=()) -> Ensemble:
        if len(self.members) < 2:
            raise ConvtuneError("an ensemble needs at least two models")
        if dev_texts is None:
            raise ConvtuneError("an ensemble chooses its weights on dev texts its members did not train on: give them")
        if not 1 <= int(self.steps) <= 1000:
            raise ConvtuneError(f"steps must be from 1 to 1000, not {self.steps!r}")
        start = time.perf_counter()
        train, dev = self._fit_data(texts, labels, dev_texts, dev_labels, seed=0)
        self._check_members()
        probas = self._member_proba(dev.texts)
        truth = self.label_space_.encode(dev.labels)
        counts, scores = select(probas, truth, self.multi_label_, int(self.steps))
        self.weights_ = counts / counts.sum()
        names = [str(s) if s is not None else f"member {i}" for i, s in enumerate(self._sources())]
        self.selection_ = {"counts": counts.tolist(), "weights": self.weights_.tolist(), "members": names,
                           "metric": "micro_f1" if self.multi_label_ else "macro_f1",
                           "members_dev": [_score(p, truth, self.multi_label_)[0] for p in probas],
                           "ensemble_dev": max(scores)[0], "dev_by_step": [s[0] for s in scores]}
        self._tune_thresholds(dev)
        self._fit_temperature(dev, self.calibration)
        self.train_seconds_ = round(time.perf_counter() - start, 3)
        self.manifest_ = self._manifest()
        return self

    def _check_members(self) -> None:
        for i, m in enumerate(self.members):
            m._check_fitted()
            if sorted(map(str, m.labels_)) != sorted(map(str, self.labels_)) or m.multi_label_ != self.multi_label_:
                raise ConvtuneError(f"{self._sources()[i] or f'member {i}'}: its labels differ from the data's "
                                    f"({', '.join(map(str, m.labels_))}); every member must have the same labels")

    def _member_proba(self, texts: list[str]) -> np.ndarray:
        """Each member's probabilities (M, N, C), columns in the order of `labels_`."""
        if self._dev_ is not None and self._dev_[0] == texts:
            return self._dev_[1]
        out = []
        for m in self.members:
            columns = [list(map(str, m.labels_)).index(str(label)) for label in self.labels_]
            out.append(m.predict_proba(texts)[:, columns])
        probas = np.stack(out)
        self._dev_ = (list(texts), probas)
        return probas

    def decision_function(self, texts, batch_size=None) -> np.ndarray:
        """The weighted average of the members' probabilities as log-probabilities (multi-label:
        log-odds), before the ensemble's own temperature."""
        self._check_fitted()
        probas = self._member_proba(as_texts(texts))
        p = np.tensordot(self.weights_, probas, axes=1)
        if self.multi_label_:
            p = np.clip(p, EPS, 1 - EPS)
            return (np.log(p) - np.log1p(-p)).astype(np.float32)
        return np.log(np.clip(p, EPS, None)).astype(np.float32)

    def _manifest(self) -> dict:
        members = [{"dir": f"{MEMBERS_DIR}/{i}", "weight": float(w), "source": None if s is None else str(s)}
                   for i, (w, s) in enumerate(zip(self.weights_, self._sources()))]
        return {**self._manifest_head(), "model": {"head": self.kind, "labels": self.labels_, "members": members,
                                                   "steps": int(self.steps)},
                "training": {"train_seconds": self.train_seconds_, "selection": self.selection_}}

    def save_into(self, directory: Path) -> None:
        self._check_fitted()
        for i, (member, source) in enumerate(zip(self.members, self._sources())):
            where = Path(directory) / MEMBERS_DIR / str(i)
            if source is not None and (Path(source) / CONFIG_NAME).is_file():  # as saved, with its reports
                shutil.copytree(source, where, ignore=shutil.ignore_patterns("*.partial", "eval-*.json"))
            else:
                where.mkdir(parents=True)
                member.save_into(where)
        write_json(Path(directory) / CONFIG_NAME, dict(self.manifest_, format_version=FORMAT_VERSION))

    @classmethod
    def _load_from(cls, directory: Path, manifest: dict) -> Ensemble:
        m = manifest["model"]
        entries = m["members"]
        if not isinstance(entries, list) or len(entries) < 2:
            raise ValueError("an ensemble lists at least two members")
        members, weights = [], []
        for e in entries:
            where = (directory / e["dir"]).resolve()
            if directory.resolve() / MEMBERS_DIR not in where.parents:
                raise ValueError(f"member folder {e['dir']!r} is outside {MEMBERS_DIR}/")
            w = e["weight"]
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 1:
                raise ValueError(f"member weight {w!r} must be a number from 0 to 1")
            members.append(cls.load_member(where))
            weights.append(float(w))
        if abs(sum(weights) - 1) > 1e-6:
            raise ValueError("member weights must add up to 1")
        clf = cls(members, sources=[e.get("source") for e in entries], steps=m.get("steps", STEPS))
        clf.labels_, clf.weights_, clf.manifest_ = list(m["labels"]), np.asarray(weights), manifest
        clf.multi_label_ = manifest.get("multi_label") is True
        clf._check_members()
        return clf
