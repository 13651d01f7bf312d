"""The surface every convtune classifier shares (transformer + head, TF-IDF baselines, TextCNN).

scikit-learn's rules: `fit` returns self; `predict` returns a list of labels and
`predict_proba` an (N, C) array whose columns follow `labels_`. A subclass implements `fit`,
`predict_proba`, `save_into` and `_load_from`; saving, loading, prediction and evaluation
are here, once. The token models (transformer, TextCNN, ONNX) derive from `TokenClassifier`
and give a `_token_path()` instead of `predict_proba`: one prediction path for the three.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from sklearn.base import BaseEstimator, ClassifierMixin

from convtune._fs import atomic_dir
from convtune.calibration import check_temperature
from convtune._version import __version__
from convtune.data.batching import LongText, collate, long_share, text_logits, tokenize, window_reach
from convtune.data.inputs import as_set, train_dev
from convtune.data.labels import LabelSpace, check_label_map, check_labels, label_type
from convtune.data.multilabel import MultiLabelSpace, check_thresholds, is_multi, tune_thresholds
from convtune.estimators.calibrated import Calibrated
from convtune.data.texts import TextSet, as_column, as_texts
from convtune.errors import ConvtuneError, warn
from convtune.metrics import compute_metrics, multilabel_metrics, multilabel_report, text_report
from convtune.modeling.checkpoint import read_manifest
from convtune.runtime import host_to_device


class TextClassifier(Calibrated, ClassifierMixin, BaseEstimator):
    """Base class: labels_ and manifest_ are set by fit() or load()."""

    kind = "base"  # written to convtune.json; load() dispatches on it
    labels_: list[str] | None = None
    manifest_: dict | None = None
    label_type_: str = "str"  # "int" when fit() got integer labels: predict() gives ints back
    multi_label_: bool = False  # fit() got a label set per text: sigmoid outputs, predict() gives lists
    thresholds_: list[float] | None = None  # multi-label: each label's threshold, tuned on dev
    decision_: tuple = (None, False)  # multi-label: (one threshold for all or None, at least one label), set_decision

    # ---------------------------------------------------------------- to implement
    def fit(self, texts: Sequence[str], labels: Sequence[str], dev_texts: Sequence[str] | None = None,
            dev_labels: Sequence[str] | None = None, callbacks: Sequence = ()) -> TextClassifier:
        """`callbacks` (training.callbacks.Callback) see the training loop's steps and epochs;
        a model trained without that loop (TF-IDF) takes and ignores them."""
        raise NotImplementedError

    def decision_function(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Raw scores (N, C), columns in the order of `labels_`: the logits before the softmax (or
        the sigmoids) and before the calibration temperature."""
        raise NotImplementedError

    def save_into(self, directory: Path) -> None:
        """Write the fitted model into an existing (temporary) directory."""
        raise NotImplementedError

    @classmethod
    def _load_from(cls, directory: Path, manifest: dict) -> TextClassifier:
        raise NotImplementedError

    def get_params(self, deep: bool = True) -> dict:
        """Constructor arguments, as given (scikit-learn's contract: `sklearn.base.clone`,
        `GridSearchCV` and `cross_val_score` rebuild the estimator from these)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared
    def _fit_data(self, texts, labels, dev_texts, dev_labels, seed: int) -> tuple[TextSet, TextSet]:
        """fit()'s first step for every model: checked (train, dev); sets `labels_` (the label map)
        and `label_type_` (ints given, ints predicted)."""
        labels = None if labels is None else as_column(labels, "labels")  # a generator is read once
        train, dev, self.labels_ = train_dev(texts, labels, dev_texts, dev_labels, seed)
        self.multi_label_, self.thresholds_ = is_multi(train.labels), None
        self.temperature_, self.calibration_ = None, None
        self.label_type_ = label_type([y for ys in labels for y in ys] if self.multi_label_ else labels)
        return train, dev

    def _tune_thresholds(self, dev: TextSet) -> None:
        """Multi-label: each label's threshold from the dev probabilities (its best F1); a
        no-op for single-label models. Called by fit() once the model is trained."""
        if self.multi_label_:
            proba = self.predict_proba(dev.texts)
            self.thresholds_ = tune_thresholds(proba, self.label_space_.encode(dev.labels))

    def calibrate(self, texts: Sequence[str], labels: Sequence, method: str = "temperature") -> TextClassifier:
        """Fit (or refit, or with "none" remove) the temperature on labelled texts the model was not
        trained on: e.g. a model trained with --calibrate none, or new data of the same task.
        Predictions do not change; probabilities do. Returns self (save it to keep the change)."""
        self._check_fitted()
        if method not in ("temperature", "none"):
            raise ConvtuneError(f"calibration method must be temperature or none, not {method!r}")
        data = as_set(texts, labels, "calibration data", multi=self.multi_label_)
        check_labels(data, self.labels_, "calibration data")
        self._fit_temperature(data, method)
        if self.manifest_ is not None:  # what save() writes (convtune.json)
            self.manifest_ = {k: v for k, v in self.manifest_.items() if k != "calibration"} | self._calibration_record()
        return self

    def _manifest_head(self) -> dict:
        """The keys every fitted model's convtune.json starts with; load() dispatches on "kind"."""
        head = {"kind": self.kind, "convtune_version": __version__, "label_type": self.label_type_}
        if self.multi_label_:
            head |= {"multi_label": True, "thresholds": self.thresholds_}
        return head | self._calibration_record()

    def set_params(self, **params) -> TextClassifier:
        """Change constructor arguments (re-initialises: a fitted model is dropped)."""
        current = self.get_params()
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ValueError(f"unknown parameters for {type(self).__name__}: {', '.join(unknown)}")
        self.__init__(**(current | params))
        return self

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # scikit-learn's repr cannot tell set training options from defaults (they arrive as
        # **kwargs), so compare with a default-constructed estimator instead.
        try:
            defaults = type(self)().get_params()
        except TypeError:  # not constructible without arguments (an ONNX export)
            return super().__repr__(N_CHAR_MAX)
        changed = {k: v for k, v in self.get_params().items() if k not in defaults or defaults[k] != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @property
    def label_space_(self) -> LabelSpace | MultiLabelSpace:
        """The fitted labels, their order and type: what every interface decodes predictions with."""
        self._check_fitted()
        t = self.temperature_
        if self.multi_label_:
            return MultiLabelSpace(tuple(self.labels_), self.label_type_,
                                   None if self.thresholds_ is None else tuple(self.thresholds_),
                                   temperature=1.0 if t is None else tuple(t))
        return LabelSpace(tuple(self.labels_), self.label_type_, 1.0 if t is None else t)

    def set_decision(self, threshold: float | None = None, at_least_one: bool = False) -> TextClassifier:
        """Multi-label: from now on predict with one `threshold` for every label (None: the tuned
        ones) and `at_least_one`; what the CLI's and server's options set. Not saved."""
        self.decision_space(threshold, at_least_one)  # refuses bad values now, not at the first text
        self.decision_ = (threshold, at_least_one)
        return self

    def decision_space(self, threshold: float | None = None, at_least_one: bool | None = None):
        """The label space predictions are decoded with: multi-label models take one `threshold`
        for every label instead of the tuned ones, and `at_least_one` (an empty set becomes the
        most probable label); unset, those of `set_decision`. Single-label models refuse both
        (they pick the top label)."""
        default = getattr(self, "decision_", (None, False))
        threshold = default[0] if threshold is None else threshold
        at_least_one = default[1] if at_least_one is None else at_least_one
        space = self.label_space_
        if not self.multi_label_:
            if threshold is not None or at_least_one:
                raise ConvtuneError("--threshold and --at-least-one are for multi-label models; "
                                    "this one predicts one label per text")
            return space
        if threshold is not None:
            check_thresholds([threshold], 1, "--threshold")
            space = replace(space, thresholds=(float(threshold),) * len(space.labels))
        return replace(space, at_least_one=at_least_one)

    @property
    def classes_(self) -> np.ndarray:
        """The labels as fit() got them (str or int), in the order of `predict_proba`'s columns."""
        return np.asarray(self.label_space_.values)

    def hyperparameters(self) -> dict:
        """What a run records: the head's name and the parameters as fitted (defaults resolved)."""
        return {"head": self.kind, **self.get_params()}

    def describe(self) -> dict:
        """What a report calls this model: encoder, head, mode, seed."""
        p = self.hyperparameters()
        return {"encoder": p.get("encoder"), "head": p["head"], "mode": p.get("mode", "from scratch"),
                "seed": p.get("seed")}

    def training_summary(self) -> dict:
        """Time, best epoch and per-epoch history of the last fit (epoch-less models: empty)."""
        r = getattr(self, "result_", None)
        if r is None:
            return {"train_seconds": getattr(self, "train_seconds_", None), "best_epoch": None,
                    "precision": "fp32", "history": [], "step_losses": []}
        cache = {"cache_seconds": r.cache_seconds} if getattr(r, "cache_seconds", None) is not None else {}
        return {"train_seconds": r.train_seconds, "best_epoch": r.best_epoch, "precision": r.precision,
                **cache, "history": r.history, "step_losses": r.step_losses}

    def _check_fitted(self) -> None:
        if self.labels_ is None:
            raise ConvtuneError("this classifier is not trained yet: call fit() or convtune.load()")

    def predict(self, texts: Sequence[str], batch_size: int | None = None, threshold: float | None = None,
                at_least_one: bool | None = None) -> list:
        """The most probable label of each text: strings, or ints if fit() was given ints.
        Multi-label: each text's list of labels over their thresholds (see `decision_space`)."""
        self._check_fitted()
        return self.decision_space(threshold, at_least_one).decode(self.predict_proba(texts, batch_size))

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C), columns in the order of `labels_`; calibrated when fit() fitted
        a temperature (multi-label: each label's own probability)."""
        self._check_fitted()
        return self.label_space_.probabilities(self.decision_function(texts, batch_size))

    def explain(self, texts: Sequence[str], label=None, top: int = 5) -> list[dict]:
        """The n-grams that decided each text's label (transformer models with a CNN head)."""
        hint = {"onnx": "explain the PyTorch model the export was made from",
                "ensemble": "explain one of its members (its directory's members/N)",
                "tfidf": "TF-IDF weights are in the model's vocabulary, not per text; use a transformer model with "
                         "--head cnn"}.get(self.kind, "train a transformer model with --head cnn or cnn+pool")
        raise ConvtuneError(f"explanations are not available for a {self.kind} model: {hint}")

    def evaluate(self, texts: Sequence[str], labels: Sequence[str], threshold: float | None = None) -> dict:
        """Metrics on labelled texts: accuracy, macro-F1, per class, confusion matrix, report
        (multi-label: micro / macro / samples F1, Hamming loss, subset accuracy, LRAP too;
        `threshold`: one for every label instead of the tuned ones), and `calibration`: ECE,
        Brier and NLL (before the temperature too, under "uncalibrated"), reliability bins."""
        self._check_fitted()
        data = as_set(texts, labels, "evaluation data", multi=self.multi_label_)
        return self.score_logits(self.decision_function(data.texts), data, threshold)

    def score_logits(self, logits: np.ndarray, data: TextSet, threshold: float | None = None) -> dict:
        """`evaluate`'s metrics from `decision_function(data.texts)` already computed (a report
        that times prediction need not run the model twice)."""
        check_labels(data, self.labels_, "evaluation data")
        space = self.decision_space(threshold)
        proba = space.probabilities(logits)
        if self.multi_label_:
            truth, pred = space.encode(data.labels), space.decide(proba).astype(np.float32)
            out = multilabel_metrics(truth, pred, proba, self.labels_) | {
                "report": multilabel_report(truth, pred, self.labels_), "thresholds": list(space.cutoffs())}
        else:
            pred = [self.labels_[i] for i in proba.argmax(axis=1)]
            out = compute_metrics(data.labels, pred, self.labels_)
            out["report"] = text_report(data.labels, pred, self.labels_)
        out["calibration"] = self.calibration_scores(logits, data.labels)
        return out

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Save atomically: a temporary directory renamed to `path` when complete."""
        self._check_fitted()
        with atomic_dir(path, overwrite) as tmp:
            self.save_into(tmp)

    @classmethod
    def _loadable(cls) -> list[type[TextClassifier]]:
        """The classes `cls.load()` may return: itself and its subclasses (the transformer adds
        its ONNX export)."""
        return [cls, *_subclasses(cls)]

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Rebuild a saved classifier of this class; runs no code from the directory.
        `convtune.load()` loads any kind."""
        manifest = read_manifest(path)
        kind = manifest.get("kind", "transformer")
        classes = {c.kind: c for c in cls._loadable()}
        if kind not in classes:
            raise ConvtuneError(f"{path} holds a {kind} model; load it with convtune.load()")
        return load_as(classes[kind], path, manifest)


def load_as(target: type[TextClassifier], path: str | Path, manifest: dict) -> TextClassifier:
    """`target._load_from`, with a damaged directory as one line instead of a traceback."""
    try:
        clf = target._load_from(Path(path), manifest)
        check_label_map(clf.labels_, f"{path}: convtune.json")
        # An ONNX export keeps its source model's manifest under "source".
        source = manifest.get("source", manifest)  # an ONNX export keeps its model's labels under "source"
        clf.label_type_ = manifest.get("label_type") or source.get("label_type", "str")
        clf.multi_label_ = source.get("multi_label") is True
        if clf.multi_label_ and source.get("thresholds") is not None:
            clf.thresholds_ = check_thresholds(source["thresholds"], len(clf.labels_), f"{path}: convtune.json")
        if isinstance(source.get("calibration"), dict) and "temperature" in source["calibration"]:
            clf.calibration_ = source["calibration"]
            clf.temperature_ = check_temperature(source["calibration"]["temperature"], len(clf.labels_),
                                                 clf.multi_label_, f"{path}: convtune.json")
        return clf
    except RecursionError:
        raise ConvtuneError(f"{path}: damaged model directory (a JSON file nested too deeply to read)") from None
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile, SafetensorError) as e:
        # A hand-edited, truncated or missing file in the directory (convtune.json, weights,
        # vocabulary): one line naming the directory, not a traceback.
        raise ConvtuneError(f"{path}: damaged model directory ({type(e).__name__}: {e})") from None


@dataclass
class TokenPath:
    """What a token model needs to predict: the one path of transformer, TextCNN and ONNX."""

    tokenizer: object                  # a Hugging Face tokenizer, or anything called like one
    forward: Callable                  # (input_ids (B, T), attention_mask (B, T)) -> logits (B, C)
    max_length: int
    batch_size: int
    precision: str = "fp32"            # autocast: fp32, bf16 or fp16
    device: torch.device = torch.device("cpu")  # where `forward` wants its inputs
    long_text: LongText = LongText()   # texts over max_length: truncate | head-tail | windows, as in training


class TokenClassifier(TextClassifier):
    """A classifier over token ids. Subclasses give their `_token_path()`; prediction is here:
    tokenize, length-sorted batches (least padding), logits, probabilities in input order."""

    # (dev texts, their logits) from the training loop's kept epoch, set by fit(): its thresholds,
    # its temperature and a run's dev report need them right after training, and computing them
    # again would cost three passes over dev (through the encoder even in frozen mode, where the
    # loop scored dev from cached token states). Any other call, or any other text list, runs the model.
    _fit_dev_: tuple[list[str], np.ndarray] | None = None

    def _token_path(self) -> TokenPath:
        raise NotImplementedError

    def _fit_data(self, texts, labels, dev_texts, dev_labels, seed: int) -> tuple[TextSet, TextSet]:
        self._remember_dev([], None)  # a new fit: the old dev logits are no longer the model's
        return super()._fit_data(texts, labels, dev_texts, dev_labels, seed)

    def _remember_dev(self, dev_texts: list[str], logits: np.ndarray | None) -> None:
        """fit(): keep the loop's dev logits for the calls that follow it (None forgets)."""
        self._fit_dev_ = None if logits is None else (list(dev_texts), logits)

    def decision_function(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Logits (N, C) float32, columns in the order of `labels_` (texts read in windows: the
        windows' logits pooled)."""
        self._check_fitted()
        texts = as_texts(texts)
        if self._fit_dev_ is not None and self._fit_dev_[0] == texts:
            return self._fit_dev_[1].copy()
        path = self._token_path()
        enc = tokenize(path.tokenizer, texts, path.max_length, path.long_text)
        pad = path.tokenizer.pad_token_id

        def forward(idx: list[int]) -> torch.Tensor:
            return path.forward(*host_to_device(collate([enc.ids[i] for i in idx], pad), path.device))

        logits = text_logits(forward, enc, batch_size or path.batch_size, path.precision,
                             desc="predict" if len(texts) > 2000 else None, device_type=path.device.type,
                             pool=path.long_text.pool)
        return logits


def warn_long_texts(tokenizer, texts: list[str], max_length: int, rule: LongText,
                    share: float | None = None) -> float:
    """One warning when training texts are longer than the window (nothing is cut silently);
    returns their share (of a sample of 2,000; `share` if already measured), which the model's
    convtune.json records."""
    share = long_share(tokenizer, texts, max_length) if share is None else share
    if share > 0.01:
        warn(f"{share:.0%} of the training texts are longer than {max_length} tokens; --long-text {rule.rule} "
             f"{_kept(rule, max_length)}")
    reach = window_reach(tokenizer, max_length, rule)
    over = long_share(tokenizer, texts, reach) if reach and share > 0.01 else 0.0
    if over > 0.01:
        warn(f"{over:.0%} of the training texts are longer than {rule.max_windows} windows ({reach} tokens); only "
             "their first windows are read (--max-windows 0 reads all)")
    return round(share, 4)


def _kept(rule: LongText, max_length: int) -> str:
    if rule.rule == "windows":
        return (f"reads them in windows of {max_length} tokens and pools the windows' logits ({rule.pool}); "
                f"up to {rule.max_windows or 'all'} windows a text")
    kept = {"truncate": f"the first {max_length}", "head-tail": "the first quarter and the last three quarters"}
    return f"keeps {kept[rule.rule]} of their tokens (--max-length, or --long-text head-tail or windows, to keep more)"


def _subclasses(cls) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub] + _subclasses(sub)
    return out
