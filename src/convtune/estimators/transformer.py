"""The `Classifier` facade: scikit-learn-style fit / predict / predict_proba / evaluate,
plus save / load that keep the label map with the weights.

    clf = Classifier(encoder="minilm-l6", head="cnn", mode="finetune", epochs=3)
    clf.fit(train_texts, train_labels, dev_texts, dev_labels)
    clf.predict(["free entry! text WIN to 80086"])   # -> ["spam"]
    clf.save("runs/sms"); Classifier.load("runs/sms").predict_proba([...])  # (N, C) array
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass, replace
from inspect import signature
from pathlib import Path

from convtune.config import (
    ADAPTER_LR,
    AUTO_WINDOWS_SHARE,
    MODES,
    TRAIN_OPTIONS,
    LongText,
    RuntimeConfig,
    TrainConfig,
    keywords,
    split_options,
    transformer_heads,
)
from convtune.errors import ConvtuneError, warn
from convtune.data.batching import long_share, unknown_share
from convtune.estimators.base import TextClassifier, TokenClassifier, TokenPath, warn_long_texts
from convtune.estimators.blend import Blended, check_blend
from convtune.modeling.adapters import (
    ADAPTER_MODES,
    adapter_state,
    base_identity,
    finish_allocation,
    is_adapted,
    merged,
    trainable_share,
)
from convtune.modeling.checkpoint import save_model
from convtune.modeling.encoders import default_lr, encoder_identity, resolve_encoder
from convtune.modeling.heads import check_head_config
from convtune.modeling.model import build_model, load_model
from convtune.modeling.settings import AdapterConfig, ModelConfig
from convtune.runtime import resolve_device, resolve_precision, set_threads
from convtune.training.callbacks import Callback, RankBudget
from convtune.training.loop import TrainResult, fit, seed_everything


# fit warns once more than this share of the training tokens are [UNK] (English sets: ~0;
# MiniLM-L6 on Chinese hotel reviews: 64%, and 11 dev points below TF-IDF, docs/tuning.md).
UNKNOWN_WARN_SHARE = 0.05


ADAPTERS_UNAVAILABLE = (
    "--mode adapter (bottleneck adapters) needs the `adapters` library, whose 1.3.0 release requires "
    "transformers ~=4.57 and fails to import beside transformers 5 / huggingface_hub 2 (HfFolder is gone); "
    "use --mode ia3 (peft's IA3 scales) or --mode lora instead")


_MODEL, _TEXTS, _ADAPTER = ModelConfig(), LongText(), AdapterConfig()  # the keyword defaults are theirs
# Constructor arguments that only carry others (unpacked into the keywords get_params returns).
_CARRIERS = ("adapter", "train", "runtime")


class Classifier(Blended, TokenClassifier):
    """A pretrained encoder with a CNN (or linear) head, trained on labelled texts."""

    kind = "transformer"

    def __init__(self, encoder: str = _MODEL.encoder, head: str = _MODEL.head, mode: str = _MODEL.mode,
                 max_length: int | None = None, head_config: dict | object | None = None, layers: int | None = None,
                 long_text: str | LongText = "auto", stride: int | None = _TEXTS.stride,
                 window_pool: str = _TEXTS.pool, max_windows: int = _TEXTS.max_windows,
                 lora_r: int = _ADAPTER.r, lora_alpha: float = _ADAPTER.alpha, lora_dropout: float = _ADAPTER.dropout,
                 target_modules: list[str] | None = None, adapter: AdapterConfig | None = None,
                 blend: str = _MODEL.blend, train: TrainConfig | None = None, runtime: RuntimeConfig | None = None,
                 **options):
        """Settings as config objects or as keywords: `head_config` a head's dataclass (or a dict),
        `long_text` a LongText (or a rule name with stride / window_pool / max_windows), `adapter`
        an AdapterConfig (its method is `mode`; or lora_r / lora_alpha / ... ), `train` a TrainConfig
        and `runtime` a RuntimeConfig (or their fields as keywords, which win)."""
        if isinstance(long_text, LongText):
            long_text, stride, window_pool, max_windows = (getattr(long_text, f) for f in keywords(LongText))
        if adapter is not None:
            if mode not in ADAPTER_MODES:
                raise ConvtuneError(f"adapter= wants mode {', '.join(ADAPTER_MODES)}, not {mode!r}")
            lora_r, lora_alpha, lora_dropout, target_modules = (getattr(adapter, f) for f in keywords(AdapterConfig))
        options = {**(asdict(train) if train else {}), **(asdict(runtime) if runtime else {}), **options}
        if is_dataclass(head_config):
            head_config = asdict(head_config)
        _check_model(head, mode, max_length, layers)
        # Refuses a bad rule now, not after the encoder loads.
        LongText("truncate" if long_text == "auto" else long_text, stride, window_pool, max_windows)
        train_options, runtime_options = split_options(options)
        self.blend = check_blend(blend)
        self.encoder = encoder
        self.head = head
        self.mode = mode
        self.max_length = max_length
        self.layers = layers
        self.long_text, self.stride, self.window_pool, self.max_windows = long_text, stride, window_pool, max_windows
        self.long_text_: str | None = None  # fitted: the rule "auto" chose
        self.lora_r, self.lora_alpha, self.lora_dropout = lora_r, lora_alpha, lora_dropout
        self.target_modules = target_modules
        if mode in ADAPTER_MODES:
            AdapterConfig(**self._adapter_options())  # checks r, alpha, dropout, modules now
        self.head_config = head_config  # kept as given (scikit-learn's clone checks identity)
        check_head_config(head, dict(head_config or {}))
        self.train_config = TrainConfig(**train_options)     # hyper-parameters: saved with the model
        self.runtime = RuntimeConfig(**runtime_options)       # precision, cache, device: not saved
        self.train_config_: TrainConfig | None = None  # fitted: the encoder lr resolved
        self.max_length_: int | None = None  # fitted: max_length, or 128 capped at the encoder's limit
        self.model_ = None
        self.tokenizer_ = None
        self.labels_: list[str] | None = None
        self.result_: TrainResult | None = None
        self.manifest_: dict | None = None

    @property
    def _rule(self) -> LongText:
        """The long-text rule of the current parameters (read anew: set_params may change them);
        "auto" is what fit chose for the training texts (truncate before fit)."""
        given = {f: getattr(self, kw) for f, kw in keywords(LongText).items()}
        if self.long_text == "auto":
            given["rule"] = self.long_text_ or "truncate"
        return LongText(**given)

    # ------------------------------------------------------------------ training
    def fit(self, texts: Sequence[str], labels: Sequence[str], dev_texts: Sequence[str] | None = None,
            dev_labels: Sequence[str] | None = None, callbacks: Sequence[Callback] = ()) -> Classifier:
        """Train on (texts, labels); early-stop on the dev set (10% of train if none given).
        `callbacks` (convtune.training.callbacks.Callback) see every step and every epoch's dev scores."""
        set_threads()
        train, dev = self._fit_data(texts, labels, dev_texts, dev_labels, self.train_config.seed)
        adapted = self.mode in ADAPTER_MODES
        config = ModelConfig(encoder=self.encoder, labels=self.labels_, head=self.head,
                             head_config=dict(self.head_config or {}), mode=self.mode,
                             max_length=self.max_length, layers=self.layers, blend=self.blend,
                             adapter=self._adapter_options() if adapted else {})
        encoder_dir = resolve_encoder(self.encoder)
        self.train_config_ = self.train_config.with_learning_rates(ADAPTER_LR if adapted else default_lr(self.encoder))
        seed_everything(self.train_config.seed)  # the head's initial weights depend on it
        self.model_, self.tokenizer_, config = build_model(config, encoder_dir, total_steps=self._steps(len(train)))
        if self.mode == "adalora":
            callbacks = [RankBudget(self.model_.encoder), *callbacks]
        self.max_length_ = config.max_length
        config = self._choose_long_text(train.texts, config)
        self._check_vocabulary(train.texts)
        if self.train_config.freeze_embeddings:
            # me5-small's 250k-piece vocabulary is 96M of its 118M parameters: fixed, they need
            # no gradient and no AdamW state, and each step skips their update.
            self.model_.encoder.get_input_embeddings().requires_grad_(False)
        self.contrastive_ = self._contrastive_stage(train) if self.mode == "contrastive" else None
        trained, total = trainable_share(self.model_)  # the head included
        self.parameters_ = {"trained": trained, "total": total, "trained_share": round(trained / total, 5)}
        store = self._state_store(encoder_dir, config.layers)
        try:
            self.result_ = self._regression_head(train) if self._head_by_regression() else fit(
                self.model_, self.tokenizer_, train, dev, self.labels_, self.train_config_, self.max_length_,
                self.runtime, store=store, callbacks=callbacks, long_text=self._rule)
        finally:
            if store is not None:
                store.close()
        if self.mode == "adalora":  # the ranks it allocated, reapplied after the best epoch came back
            config = replace(config, adapter={**config.adapter, "rank_pattern": finish_allocation(self.model_.encoder)})
        self._remember_dev(dev.texts, self.result_.dev_logits)
        self._fit_blend(train, dev, self.train_config.seed)
        self._tune_thresholds(dev)
        self._fit_temperature(dev, self.train_config.calibrate)
        self.manifest_ = self._manifest(config)
        if adapted:
            self.manifest_["base_encoder"] = base_identity(self.manifest_["encoder_info"], encoder_dir)
        return self

    def _contrastive_stage(self, train) -> dict:
        """--mode contrastive: tune the encoder on pairs drawn from the training labels, then
        freeze it again for the head (training.contrastive)."""
        from convtune.training.contrastive import contrastive_tune

        c, (device, precision) = self.train_config, self._placement()
        record = contrastive_tune(self.model_.encoder, self.tokenizer_, train.texts, train.labels,
                                  rounds=c.pairs_per_text, lr=c.contrastive_lr, epochs=c.contrastive_epochs,
                                  batch_size=c.batch_size, max_length=self.max_length_, seed=c.seed,
                                  precision=precision, device=device)
        self.model_.encoder.requires_grad_(False)
        return record

    def _head_by_regression(self) -> bool:
        """Contrastive mode with a linear head on the mean of the token states (single-label): the
        head is SetFit's logistic regression on the tuned embeddings, not trained by epochs."""
        pooling = (self.head_config or {}).get("pooling", "cls")
        return self.mode == "contrastive" and self.head == "linear" and pooling == "mean" and not self.multi_label_

    def _regression_head(self, train) -> TrainResult:
        from convtune.training.contrastive import fit_linear_head

        device, precision = self._placement()
        seconds = fit_linear_head(self.model_.encoder, self.tokenizer_, self.model_.head.classifier, train.texts,
                                  self.label_space_.encode(train.labels), max_length=self.max_length_,
                                  precision=precision, device=device)
        return TrainResult(best_epoch=0, train_seconds=seconds, precision=precision)

    def _choose_long_text(self, texts: list[str], config: ModelConfig) -> ModelConfig:
        """Resolve "auto" for these training texts, warn about long ones, and put the rule in the config."""
        share = long_share(self.tokenizer_, texts, self.max_length_)
        if self.long_text == "auto":  # windows once many texts are long and no TF-IDF part reads them whole
            # (20 Newsgroups, neural alone: +3.8 points; blended: no gain at several times the time, docs/tuning.md)
            self.long_text_ = "windows" if share > AUTO_WINDOWS_SHARE and self.blend == "none" else "truncate"
        self.long_share_ = warn_long_texts(self.tokenizer_, texts, self.max_length_, self._rule, share)
        return replace(config, long_text=self._rule.rule, windows=self._rule.settings())

    def _check_vocabulary(self, texts: list[str]) -> None:
        """Warn when the encoder's vocabulary lacks many of the training texts' tokens."""
        self.unknown_share_ = round(unknown_share(self.tokenizer_, texts), 4)
        if self.unknown_share_ > UNKNOWN_WARN_SHARE:
            warn(f"{self.unknown_share_:.0%} of the training texts' tokens are unknown to {self.encoder}'s "
                 "vocabulary ([UNK]): it was not trained on this language or script; pick one that was "
                 "(convtune encoders; e.g. --encoder me5-small, multilingual)")

    def _adapter_options(self) -> dict:
        given = {f: getattr(self, kw) for f, kw in keywords(AdapterConfig).items()}
        return {"method": self.mode, **given, "target_modules": None if self.target_modules is None
                else list(self.target_modules)}

    def _steps(self, texts: int) -> int:
        """Optimizer steps of the whole run (AdaLoRA's schedule); every rank takes each global step."""
        from convtune.distributed import current

        per_step = self.train_config.batch_size * self.train_config.grad_accum * current().world_size
        return max(1, texts // per_step) * self.train_config.epochs

    def _state_store(self, encoder_dir: Path, layers: int):
        """The token-state cache for frozen mode (None when fine-tuning or turned off)."""
        if self.mode != "frozen" or self.runtime.cache == "off":
            return None
        from convtune.paths import default_cache_root
        from convtune.training.state_cache import StateStore, encoder_key

        root = default_cache_root() if self.runtime.cache == "auto" else Path(self.runtime.cache)
        hidden = self.model_.encoder.config.hidden_size
        return StateStore(root, encoder_key(Path(encoder_dir), self.max_length_), hidden, layers)

    def _manifest(self, config: ModelConfig) -> dict:
        """convtune.json: portable, so no path of this machine (the encoder by name and version,
        no cache directory: where the token states were cached is a runtime setting)."""
        r = self.result_
        identity = encoder_identity(self.encoder)
        blend = {"blend": self.blend_} if self.blend_ else {}
        return {**self._manifest_head(), **blend, "model": dict(config.to_dict(), encoder=identity["name"]),
                "train": self.train_config_.to_dict(), "encoder_info": identity,
                "training": {"best_epoch": r.best_epoch, "train_seconds": r.train_seconds,
                             "long_texts_share": self.long_share_, "unknown_tokens_share": self.unknown_share_,
                             "parameters": self.parameters_,
                             **({"contrastive": self.contrastive_} if getattr(self, "contrastive_", None) else {}),
                             "precision": r.precision, "cache_seconds": r.cache_seconds, "history": r.history}}

    # ------------------------------------------------------------------ prediction
    def _placement(self) -> tuple:
        """(device, autocast precision) the runtime settings resolve to on this machine."""
        device = resolve_device(self.runtime.device)
        return device, resolve_precision(self.runtime.precision, device)

    def _token_path(self) -> TokenPath:
        device, precision = self._placement()
        self.model_.to(device).eval()  # a loaded model comes to the device it predicts on
        return TokenPath(self.tokenizer_, self.model_, self.max_length_, self.train_config.eval_batch_size,
                         precision, device, self._rule)

    def explain(self, texts: Sequence[str], label=None, top: int = 5) -> list[dict]:
        """For each text, the n-grams that decided its most probable label (or `label`): exact
        contributions to the logit, as character spans of the text (estimators.explain)."""
        from convtune.estimators.explain import explain

        return explain(self, texts, label, top)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, overwrite: bool = False, merge: bool = False) -> None:
        """Save atomically; `merge=True` (adapter modes) writes the standalone merged model."""
        (self.merged() if merge else super()).save(path, overwrite)

    def merged(self) -> Classifier:
        """A copy with the adapter folded into the encoder's weights: an ordinary fine-tuned model
        (its own encoder/ directory, one ONNX graph); this classifier is left as it is."""
        self._check_fitted()
        if self.mode not in ADAPTER_MODES:
            raise ConvtuneError(f"merge: a {self.mode} model has no adapter to merge")
        clf = copy.copy(self)
        clf._remember_dev([], None)  # other weights: its dev logits are computed anew
        clf.model_ = copy.deepcopy(self.model_)
        clf.model_.encoder = merged(clf.model_.encoder)
        clf.mode = "finetune"
        model = dict(self.manifest_["model"], mode="finetune", adapter={})
        clf.manifest_ = {**{k: v for k, v in self.manifest_.items() if k != "base_encoder"}, "model": model,
                         "merged_from": {"mode": self.mode, "adapter": self.manifest_["model"]["adapter"],
                                         "base_encoder": self.manifest_["base_encoder"]}}
        return clf

    def save_into(self, directory: Path) -> None:
        """Write the model into an existing directory (used inside an atomic save)."""
        self._check_fitted()
        adapter = adapter_state(self.model_.encoder) if is_adapted(self.model_.encoder) else None
        save_model(Path(directory), self.model_, self.tokenizer_, self.manifest_, adapter)
        self._save_blend(Path(directory))

    @classmethod
    def _load_from(cls, path: Path, manifest: dict) -> Classifier:
        model, tokenizer, manifest = load_model(path, manifest)
        m = manifest["model"]
        # Only hyper-parameters (models saved before the runtime split also hold bf16 and cache).
        train_options = {k: v for k, v in manifest.get("train", {}).items() if k in TRAIN_OPTIONS}
        clf = cls(encoder=m["encoder"], head=m["head"], mode=m["mode"], max_length=m["max_length"],
                  head_config=m["head_config"], layers=m.get("layers", 1), blend=m.get("blend", "none"),
                  **_windows_params(m), **_adapter_params(m), **train_options)
        clf.model_, clf.tokenizer_, clf.labels_, clf.manifest_ = model, tokenizer, list(m["labels"]), manifest
        clf.max_length_ = m["max_length"]
        clf._load_blend(path, manifest)
        set_threads()
        return clf

    @classmethod
    def _loadable(cls) -> list[type[TextClassifier]]:
        # An ONNX export loads as its source model (a sibling import: onnx is below this module).
        from convtune.estimators.onnx import OnnxClassifier

        return [*super()._loadable(), OnnxClassifier]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's keywords (scikit-learn's rule: read from its signature), then the
        TrainConfig and RuntimeConfig fields."""
        names = [n for n, p in signature(type(self).__init__).parameters.items()
                 if n != "self" and n not in _CARRIERS and p.kind is p.POSITIONAL_OR_KEYWORD]
        return {n: getattr(self, n) for n in names} | asdict(self.train_config) | asdict(self.runtime)

    def hyperparameters(self) -> dict:
        p = self.get_params()
        if self.manifest_ is not None:  # as fitted: the head's full config, max length and encoder lr used
            m = self.manifest_["model"]
            p |= {"head_config": m["head_config"], "max_length": m["max_length"], "layers": m["layers"],
                  **self.manifest_["train"],
                  **_windows_params(m)}
        return p


def _check_model(head: str, mode: str, max_length: int | None, layers: int | None) -> None:
    """The model's own settings, one line each when wrong (before anything loads)."""
    if head not in transformer_heads():
        raise ConvtuneError(f"unknown head {head!r}; choose {', '.join(transformer_heads())}")
    if layers is not None and layers < 1:  # None: 4 in frozen mode, else 1 (modeling.settings.default_layers)
        raise ConvtuneError("layers must be at least 1")
    if mode == "adapter":  # bottleneck adapters: the `adapters` library cannot load here
        raise ConvtuneError(ADAPTERS_UNAVAILABLE)
    if mode not in MODES:
        raise ConvtuneError(f"unknown mode {mode!r}; choose {', '.join(MODES)}")
    if max_length is not None and max_length < 2:
        raise ConvtuneError("max_length must be at least 2 (room for the special tokens)")


def _windows_params(model: dict) -> dict:
    """Classifier parameters of convtune.json's long-text rule (checked when the Classifier is made)."""
    w = model.get("windows") or {}
    if not isinstance(w, dict):
        raise ConvtuneError(f"convtune.json: windows must be an object, not {w!r}")
    rule = LongText.of(model.get("long_text", "truncate"), w)
    return {kw: getattr(rule, f) for f, kw in keywords(LongText).items()}


def _adapter_params(model: dict) -> dict:
    """Classifier parameters of convtune.json's adapter (empty unless an adapter mode)."""
    a = model.get("adapter") or {}
    if not isinstance(a, dict):
        raise ConvtuneError(f"convtune.json: adapter must be an object, not {a!r}")
    return {kw: a[f] for f, kw in keywords(AdapterConfig).items() if f in a}
