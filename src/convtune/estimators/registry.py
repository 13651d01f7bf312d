"""Every kind of estimator by name: the one module that knows them all.

    KINDS             kind in convtune.json -> class (load() dispatches on it)
    all_heads()       what `--head` accepts: a transformer head, a TF-IDF baseline, TextCNN (config.py)
    load(path)        any saved model, ONNX export or ensemble of them
    make_estimator    the estimator for a head name, from keyword options (CLI, compare, bench)
"""

from __future__ import annotations

import inspect
from pathlib import Path

from convtune.config import RUNTIME_OPTIONS, TRAIN_OPTIONS, all_heads
from convtune.errors import ConvtuneError
from convtune.estimators.base import TextClassifier, load_as
from convtune.estimators.ensemble import Ensemble
from convtune.estimators.onnx import OnnxClassifier
from convtune.estimators.textcnn import TextCNNClassifier
from convtune.estimators.tfidf import TfidfClassifier
from convtune.estimators.transformer import Classifier
from convtune.modeling.checkpoint import read_manifest

KINDS: dict[str, type[TextClassifier]] = {
    c.kind: c for c in (Classifier, TfidfClassifier, TextCNNClassifier, OnnxClassifier, Ensemble)}


def load(path: str | Path, device: str | None = None, precision: str | None = None) -> TextClassifier:
    """Load any saved convtune model (transformer, TF-IDF, TextCNN, an ONNX export or an
    ensemble of them) to predict on `device` in `precision` (None: auto). A model saved on any
    device loads on any other."""
    manifest = read_manifest(path)
    kind = manifest.get("kind", "transformer")
    if kind not in KINDS:
        raise ConvtuneError(f"{path}: unknown model kind {kind!r}")
    clf = load_as(KINDS[kind], path, manifest)
    for model in getattr(clf, "members", None) or [clf]:
        _place(model, device, precision, path)
    return clf


def _place(clf: TextClassifier, device: str | None, precision: str | None, path) -> None:
    """Set where and in which precision a loaded model predicts (checked as its constructor would)."""
    runtime = getattr(clf, "runtime", None)
    if runtime is not None:
        runtime.device, runtime.precision = device or runtime.device, precision or runtime.precision
        type(runtime)(**runtime.to_dict())
    elif device not in (None, "auto", "cpu"):
        raise ConvtuneError(f"{path}: a {clf.kind} model runs on the CPU only, not on --device {device}")


Ensemble.load_member = staticmethod(load)  # an ensemble's members are any kind this module loads


def _accepted(cls: type[TextClassifier]) -> set[str]:
    """Keyword options `cls(...)` takes: its own parameters, plus the fields of TrainConfig and
    RuntimeConfig for the neural ones (they take **options)."""
    params = inspect.signature(cls.__init__).parameters
    names = {n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        names |= TRAIN_OPTIONS | RUNTIME_OPTIONS
    return names


def make_estimator(head: str, **options) -> TextClassifier:
    """The estimator for `head` (see config.all_heads). Options set to None, and those this kind does not
    take (an encoder for TF-IDF), are left out, so that one set of options can build every kind
    of a comparison grid and each keeps its own defaults for the rest."""
    if head not in all_heads():
        raise ConvtuneError(f"unknown head {head!r}; choose {', '.join(all_heads())}")
    if head.startswith("tfidf-"):
        cls, options = TfidfClassifier, dict(options, model=head.split("-", 1)[1])
    elif head == "textcnn":
        cls = TextCNNClassifier
    else:
        cls, options = Classifier, dict(options, head=head)
    given = {k: v for k, v in options.items() if v is not None and k in _accepted(cls)}
    return cls(**given)
