"""The two configs of a training run, torch-free (the CLI reads them to build its options).

    TrainConfig     hyper-parameters: saved with the model, they decide what it learns
    RuntimeConfig   how this machine runs training and prediction (device, precision, cache):
                    never saved, so a model trained on a GPU loads and predicts on a CPU

Each field's help is in its metadata; `convtune train` makes one option per field from it, so
a new hyper-parameter is written once, here.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields, replace

from convtune.errors import ConvtuneError

# TextCNN trains from scratch with its own recipe (Kim 2014 / Zhang & Wallace 2017): these
# replace TrainConfig's defaults for it (an option the user sets still wins).
TEXTCNN_TRAIN_DEFAULTS = {"epochs": 10, "lr": 1e-3, "head_lr": 1e-3, "patience": 3, "batch_size": 50,
                          "weight_decay": 0.0, "warmup_ratio": 0.0}
TEXTCNN_RUNTIME_DEFAULTS = {"precision": "fp32"}
HEAD_LR = 1e-3       # AdamW, the head (chosen on SMS, docs/tuning.md)
# Adapters' encoder learning rate when none is given: on SST-2 dev (MiniLM-L6, r 8, 3 epochs, seed 42)
# 1e-3 reached 86.81% against 86.24% for the LoRA paper's RoBERTa-base 5e-4 (docs/results/adapters.md).
ADAPTER_LR = 1e-3
# SGD with momentum 0.9 takes ~30x AdamW's rates: the encoder's (and the head's). A starting
# point, not tuned on dev: the search space spans 1e-3 .. 3e-2 (1e-1 for the head) around it.
SGD_LR = 3e-3
SGD_HEAD_LR = 3e-2
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")  # what --device accepts

# The names every layer reads: the CLI's choices, the estimators, compare's grid, the search.
BASELINES = ("tfidf-svm", "tfidf-nb", "textcnn")  # --head values that need no encoder
_ENCODER_HEADS = ["cnn", "cnn+pool", "linear"]    # heads over an encoder: modeling.heads.register_head adds more


def transformer_heads() -> tuple[str, ...]:
    """The heads over an encoder: the built-in ones, then any a module registered."""
    return tuple(_ENCODER_HEADS)


def all_heads() -> tuple[str, ...]:
    """What --head accepts: the heads over an encoder and the baselines."""
    return (*transformer_heads(), *BASELINES)


def add_head_name(name: str) -> None:
    """Make `name` a head over an encoder everywhere names are read (modeling.heads.register_head)."""
    if not isinstance(name, str) or not name.strip() or name in BASELINES or "," in name:
        raise ConvtuneError(f"a head name must be a non-empty string without commas, not a baseline's: {name!r}")
    if name not in _ENCODER_HEADS:
        _ENCODER_HEADS.append(name)


ADAPTER_MODES = ("lora", "adalora", "ia3")
MODES = ("finetune", "frozen", "contrastive", *ADAPTER_MODES)
FROZEN_ENCODER_MODES = ("frozen", "contrastive")  # the head trains on an encoder it does not change
# `convtune train` without --mode uses the small-data recipe (contrastive encoder, a logistic
# regression head, no dev split) when the smallest class has at most this many training texts:
# the largest size measured where it beat the default (docs/training.md, "Few labelled texts").
SMALL_DATA_PER_CLASS = 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LONG_TEXT_RULES = ("truncate", "head-tail", "windows")
BLENDS = ("auto", "tfidf", "none")  # a lexical model blended into the neural one (estimators.blend)
WINDOW_POOLS = ("mean", "max")
# long_text="auto" reads texts in windows once more than this share of the training texts is
# longer than max_length and no TF-IDF blend reads the whole text, and truncates otherwise
# (short-text sets train exactly as before). With the blend on, windows did not pay on 20
# Newsgroups: 83.66 against 84.15 for truncation, at several times the training time
# (docs/tuning.md, "Long documents").
AUTO_WINDOWS_SHARE = 0.10


def option(default, help: str, **cli) -> field:
    """A dataclass field with its CLI help (and argparse extras such as choices or flag); a list
    default is copied for each instance."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **cli})
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class LongText:
    """How a text longer than max_length is read: saved with the model, used by training and by
    every prediction path (Python, CLI, server, ONNX), so all see texts the same way.

    truncate: the first tokens; head-tail: the first quarter and the last three quarters of the
    room; windows: windows of max_length tokens starting every `stride` tokens of text, each
    through encoder and head, their logits pooled per text (`pool` mean or max), at most
    `max_windows` per text (0: all of them; prediction runs windows in batches either way).
    """

    rule: str = option("truncate", "texts over --max-length: keep the first tokens (truncate), the first quarter "
                                   "and the last three quarters (head-tail, Sun et al. 2019), or read the text in "
                                   "windows and pool their logits (windows); auto: windows once over "
                                   f"{AUTO_WINDOWS_SHARE:.0%} of the training texts are long and --blend is none "
                                   "(a TF-IDF blend reads the whole text), else truncate",
                       flag="--long-text", dest="long_text", choices=("auto", *LONG_TEXT_RULES), cli_default="auto")
    stride: int | None = option(None, "windows: tokens from one window's start to the next (default half a window)",
                                low=1)
    pool: str = option("mean", "windows: pool the window logits", flag="--window-pool", dest="window_pool",
                       choices=WINDOW_POOLS)
    max_windows: int = option(8, "windows: read at most this many per text (0: all)", low=0,
                              wants="0 (all) or a whole number of windows")

    def __post_init__(self):
        if self.rule not in LONG_TEXT_RULES:
            raise ConvtuneError(f"long_text must be one of {', '.join(LONG_TEXT_RULES)}, not {self.rule!r}")
        if self.pool not in WINDOW_POOLS:
            raise ConvtuneError(f"window pooling must be mean or max, not {self.pool!r}")
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise ConvtuneError(f"stride must be a whole number of tokens >= 1, not {self.stride!r}")
        if not isinstance(self.max_windows, int) or self.max_windows < 0:
            raise ConvtuneError(f"max_windows must be 0 (all) or a positive whole number, not {self.max_windows!r}")

    @classmethod
    def of(cls, rule: str | LongText | None, windows: dict | None = None) -> LongText:
        """From a rule name (and convtune.json's `windows` settings), or as given."""
        if isinstance(rule, LongText):
            return rule
        try:
            return cls(rule or "truncate", **(windows or {}))
        except TypeError as e:  # an unknown key in a hand-edited convtune.json
            raise ConvtuneError(f"bad windows settings {windows!r}: {e}") from None

    def settings(self) -> dict:
        """What convtune.json keeps beside the rule (empty unless windows)."""
        return {"stride": self.stride, "pool": self.pool, "max_windows": self.max_windows} if self.rule == "windows" else {}

    def step(self, room: int) -> int:
        return min(self.stride or max(1, room // 2), room)


def keywords(cls: type) -> dict[str, str]:
    """field name -> its keyword / command-line name (`dest` where a field declares one): the one
    mapping between a saved config's keys and the options that set them."""
    return {f.name: f.metadata.get("dest", f.name) for f in fields(cls) if "help" in f.metadata}


@dataclass
class TrainConfig:
    """Optimisation hyper-parameters (saved with the model)."""

    epochs: int = option(5, "training epochs", low=1)  # with patience 3: dev macro-F1 preferred it on SMS (docs/tuning.md)
    batch_size: int = option(32, "texts per training batch", low=1)
    lr: float | None = option(None, "encoder learning rate (default: the encoder's own, as `convtune encoders` "
                                    f"lists it; adapter modes: {ADAPTER_LR:g})")
    head_lr: float | None = option(None, f"head learning rate (default {HEAD_LR:g}; with --optimizer sgd "
                                         f"{SGD_HEAD_LR:g})")
    optimizer: str = option("adamw", "adamw, or sgd with momentum (then lr and head lr default to sgd's own)",
                            choices=("adamw", "sgd"))
    momentum: float = option(0.9, "sgd: momentum (Nesterov off)")
    weight_decay: float = option(0.01, "weight decay, decoupled for adamw (not on biases and norms)")
    warmup_ratio: float = option(0.1, "fraction of all steps spent warming up linearly")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    patience: int = option(3, "epochs without a dev macro-F1 gain before stopping", low=1)
    class_weight: str = option("none", "weight the loss by inverse class frequency", choices=("none", "balanced"))
    label_smoothing: float = option(0.0, "cross-entropy label smoothing in [0, 1]", metavar="X")
    ema: float = option(0.0, "dev checks and the saved model use an exponential moving average of the "
                             "weights with this decay, e.g. 0.99 (0: off)", metavar="DECAY")
    grad_accum: int = option(1, "micro-batches accumulated per optimizer step: a step sees batch-size x "
                                "processes x grad-accum texts (a large batch in little memory)", metavar="K", low=1)
    seed: int = option(42, "seed of the initial weights, batch order and dropout", low=0, high=2**32 - 1,
                       wants="a whole number from 0 to 4294967295")
    eval_batch_size: int = option(64, "texts per dev / prediction batch", low=1)
    calibrate: str = option("temperature", "after training, fit a temperature on dev that scales the logits (kept "
                                           "if it lowers dev NLL; predictions do not change)",
                            choices=("temperature", "none"))
    freeze_embeddings: bool = option(False, "fine-tuning: keep the token embeddings fixed (less memory with "
                                            "big vocabularies, e.g. me5-small)")
    # --mode contrastive: the encoder is first tuned on pairs drawn from the labels (SetFit's
    # recipe: 20 rounds, lr 2e-5, one pass), then the head trains on it as in frozen mode.
    pairs_per_text: int = option(20, "contrastive mode: rounds of pairs, each pairing every text with one text of "
                                      "its class and one of another (SetFit's num_iterations)", low=1, metavar="R")
    contrastive_lr: float = option(2e-5, "contrastive mode: the encoder's learning rate on the pairs")
    contrastive_epochs: int = option(1, "contrastive mode: passes over the pairs", low=1)

    def __post_init__(self):
        # Checked here so that every way in (CLI, Classifier(...), a saved run) fails in one line
        # before any data is read, instead of deep in torch or, worse, training nonsense.
        for name in ("epochs", "batch_size", "patience", "eval_batch_size", "grad_accum", "pairs_per_text",
                     "contrastive_epochs"):
            _whole(self, name, 1)
        if not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:  # numpy's range
            raise ConvtuneError(f"seed must be a whole number from 0 to {2**32 - 1}, not {self.seed!r}")
        self.seed = int(self.seed)
        for name in ("lr", "head_lr", "max_grad_norm", "contrastive_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConvtuneError(f"{name} must be > 0, not {value!r}")
        ranges = {"weight_decay": (0.0, math.inf), "warmup_ratio": (0.0, 1.0), "label_smoothing": (0.0, 1.0),
                  "ema": (0.0, 0.9999), "momentum": (0.0, 0.999)}
        for name, (low, high) in ranges.items():
            if not low <= getattr(self, name) <= high:
                raise ConvtuneError(f"{name} must be in [{low}, {high}], not {getattr(self, name)!r}")
        _choice(self, "class_weight")
        _choice(self, "optimizer")
        _choice(self, "calibrate")

    def with_learning_rates(self, encoder_lr: float) -> TrainConfig:
        """A copy with lr and head_lr filled in where unset: `encoder_lr` (the encoder's or the
        mode's AdamW default) and the head's, or SGD's own (plain SGD needs ~30x AdamW's steps)."""
        sgd = self.optimizer == "sgd"
        return replace(self, lr=self.lr or (SGD_LR if sgd else encoder_lr),
                       head_lr=self.head_lr or (SGD_HEAD_LR if sgd else HEAD_LR))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RuntimeConfig:
    """How this machine runs training and prediction (not saved with the model)."""

    precision: str = option("auto", "autocast precision (auto: bf16 on CPUs with native bf16 and on GPUs that "
                                    "support it, fp16 with loss scaling on other GPUs, else fp32)",
                            choices=PRECISIONS)
    cache: str = option("auto", "frozen mode: token-state cache directory (auto: $CONVTUNE_CACHE or "
                                "~/.cache/convtune; off: no cache)", flag="--cache-dir")
    device: str = option("auto", "where the model runs: auto (a CUDA GPU if torch sees one, else the CPU), "
                                 "cpu, cuda, cuda:N or mps", metavar="DEVICE")
    gradient_checkpointing: bool = option(False, "recompute each encoder layer's activations during the backward "
                                                 "pass instead of keeping them: far less memory for a slower step "
                                                 "(fine-tuning and adapter modes)")

    def __post_init__(self):
        _choice(self, "precision")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConvtuneError(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if not isinstance(self.gradient_checkpointing, bool):
            raise ConvtuneError(f"gradient_checkpointing must be true or false, not {self.gradient_checkpointing!r}")

    def to_dict(self) -> dict:
        return asdict(self)


TRAIN_OPTIONS = frozenset(f.name for f in fields(TrainConfig))
RUNTIME_OPTIONS = frozenset(f.name for f in fields(RuntimeConfig))


def split_options(options: dict) -> tuple[dict, dict]:
    """(TrainConfig options, RuntimeConfig options) of one keyword dict; TypeError for others."""
    unknown = sorted(set(options) - TRAIN_OPTIONS - RUNTIME_OPTIONS)
    if unknown:
        raise TypeError(f"unknown training options: {', '.join(unknown)}")
    return ({k: v for k, v in options.items() if k in TRAIN_OPTIONS},
            {k: v for k, v in options.items() if k in RUNTIME_OPTIONS})


def _whole(config, name: str, low: int) -> None:
    value = getattr(config, name)
    if not isinstance(value, numbers.Integral) or value < low:
        raise ConvtuneError(f"{name} must be a whole number >= {low}, not {value!r}")
    setattr(config, name, int(value))  # numpy ints (a search grid) stay JSON-able


def _choice(config, name: str) -> None:
    allowed = next(f for f in fields(config) if f.name == name).metadata["choices"]
    if getattr(config, name) not in allowed:
        raise ConvtuneError(f"{name} must be one of {', '.join(allowed)}, not {getattr(config, name)!r}")

