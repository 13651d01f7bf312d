"""What a model is, torch-free: the model's settings, its head's config and its adapter's.

    ModelConfig      encoder, head, mode, max length, layers (+ labels, long-text rule, adapter)
    CNNHeadConfig    widths, filters, pooling, dropout    (cnn; CNNPoolHeadConfig adds a sentence vector)
    LinearHeadConfig pooling, dropout                     (linear)
    AdapterConfig    method, rank, alpha, dropout, target modules   (lora, adalora, ia3)

Each setting a user may choose carries its help (`config.option`): the command line makes its
model options from these fields (`cli.fields.add_fields`), and `convtune search` its head and
adapter parameters from their `search` metadata (choices, or a low / high range; `modes` where
only some modes have the setting); `config.keywords()` maps a field to its
keyword / option name where they differ (`r` is `--lora-r`), so the name of a setting is declared
once from the command line to convtune.json and back. Nothing here imports torch: building the
parser stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from convtune.config import ADAPTER_MODES, BLENDS, MODES, SMALL_DATA_PER_CLASS, all_heads, option
from convtune.errors import ConvtuneError

DEFAULT_ENCODER = "minilm-l6"
DEFAULT_MAX_LENGTH = 128  # tokens per text when the user gives none (capped at the encoder's limit)
# A frozen encoder's head reads a learned mix of its last 4 layers unless told otherwise: over
# SST-2, TREC, SMS, AG News and chnsenticorp_htl (MiniLM-L6, seed 42) it raised mean dev
# macro-F1 from 86.96 (last layer) to 88.61, SST-2 dev by 3.8 points (docs/tuning.md). A trained
# encoder adapts its last layer to the task, so the other modes keep 1 (SMS: no gain).
FROZEN_LAYERS = 4

# Far past any useful head, and far below what would exhaust memory: `--filters 1000000000`
# or `num_filters: 1e9` in an edited convtune.json is refused before anything is allocated.
MAX_FILTERS = 4096
MAX_KERNEL = 64
MAX_WIDTHS = 16
CNN_POOLINGS = ("max", "mean", "both")
LOW_RANK = ("lora", "adalora")  # the adapter modes with a rank and an alpha (ia3 scales have neither)
LINEAR_POOLINGS = ("cls", "mean", "last")  # last real token: GPT-style decoders
SENTENCE_POOLINGS = ("mean", "cls", "last")


def default_layers(mode: str, depth: int | None) -> int:
    """How many last layers the head mixes when the user gives no --layers."""
    return min(FROZEN_LAYERS, depth or FROZEN_LAYERS) if mode == "frozen" else 1


def parse_layers(s: str | int | None) -> int | None:
    """--layers last-K (or K) -> K; None keeps the mode's default (`default_layers`)."""
    if s is None or isinstance(s, int):
        return s
    k = s.removeprefix("last-")
    if not k.isdigit() or int(k) < 1:
        raise ConvtuneError(f"--layers wants last-K with K >= 1 (e.g. last-4), not {s!r}")
    return int(k)


def parse_widths(s: str | list) -> list[int]:
    """--kernel-sizes 2,3,4 -> [2, 3, 4]."""
    if isinstance(s, list):
        return s
    try:
        return [int(k) for k in s.split(",") if k.strip()]
    except ValueError:
        raise ConvtuneError(f"--kernel-sizes wants comma-separated whole numbers, e.g. 2,3,4, not {s!r}") from None


def parse_names(s: str | list | None) -> list[str] | None:
    """--target-modules query,value -> ["query", "value"]."""
    if s is None or isinstance(s, list):
        return s
    return [m.strip() for m in s.split(",") if m.strip()] or None


def check_dropout(p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), not {p!r}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ModelConfig:
    """What a saved model needs to be rebuilt; written to convtune.json under "model"."""

    encoder: str = option(DEFAULT_ENCODER, "packaged encoder name or local HF directory")
    labels: list[str] = field(default_factory=list)
    head: str = option("cnn", "cnn / cnn+pool / linear: over the encoder; tfidf-svm, tfidf-nb, textcnn: baselines "
                              "without it", choices=all_heads)
    head_config: dict = field(default_factory=dict)
    mode: str = option("finetune", "finetune the encoder, keep it frozen, tune it on pairs drawn from the labels "
                                   "first and then keep it frozen (contrastive: few labelled texts), or train an "
                                   "adapter on it (lora, adalora, ia3; the head always trains in full). train "
                                   "without --mode: finetune, or the small-data recipe (contrastive, linear head) "
                                   f"when a class has at most {SMALL_DATA_PER_CLASS} training texts",
                       choices=(*MODES, "adapter"))
    max_length: int | None = option(None, "tokens per text, at most the encoder's limit", low=1,
                                    cli_default=DEFAULT_MAX_LENGTH)
    layers: int | None = option(None, f"last-k: the head sees a learned mix of the last k layers (default: "
                                      f"last-{FROZEN_LAYERS} in frozen mode, capped at the encoder's depth; last-1 "
                                      "otherwise)", type=parse_layers, metavar="last-K")
    blend: str = option("auto", "blend a TF-IDF model of the whole text into the neural one, its weight chosen on "
                                "dev: auto keeps it only when dev gains beyond noise; tfidf always; none", choices=BLENDS)
    long_text: str = "truncate"     # texts over max_length: config.LongText's rule (prediction does the same)
    windows: dict = field(default_factory=dict)  # windows: stride, pool, max_windows (config.LongText)
    adapter: dict = field(default_factory=dict)  # lora / adalora / ia3: AdapterConfig

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CNNHeadConfig:
    """Kim-style convolutions over token states."""

    kernel_sizes: list[int] = option([2, 3, 4], "CNN heads: comma-separated widths", type=parse_widths,
                                     search={"choices": ["1,2,3", "2,3,4", "3,4,5", "2,3,4,5"]})
    num_filters: int = option(128, "CNN heads: filters per width", flag="--filters", dest="filters",
                              search={"choices": [64, 128, 256]})
    pooling: str = option(CNN_POOLINGS[0], f"linear head: {'|'.join(LINEAR_POOLINGS)}, default {LINEAR_POOLINGS[0]}; "
                                           f"CNN heads: {'|'.join(CNN_POOLINGS)}", search={"choices": list(CNN_POOLINGS)})
    dropout: float = option(0.1, "dropout before the head's linear layer", search={"low": 0.0, "high": 0.5})

    def __post_init__(self):
        widths = list(self.kernel_sizes) if isinstance(self.kernel_sizes, (list, tuple)) else None
        if not widths or len(widths) > MAX_WIDTHS or not all(_whole(k) and 1 <= k <= MAX_KERNEL for k in widths):
            raise ValueError(f"kernel sizes must be 1 to {MAX_WIDTHS} whole numbers from 1 to {MAX_KERNEL}, "
                             f"not {str(self.kernel_sizes)[:60]}")
        if not _whole(self.num_filters) or not 1 <= self.num_filters <= MAX_FILTERS:
            raise ValueError(f"filters per width must be a whole number from 1 to {MAX_FILTERS}, "
                             f"not {self.num_filters!r}")
        if self.pooling not in CNN_POOLINGS:
            raise ValueError(f"pooling must be max, mean or both, not {self.pooling!r}")
        check_dropout(self.dropout)


@dataclass
class CNNPoolHeadConfig(CNNHeadConfig):
    """CNN n-gram features concatenated with a sentence vector from the Transformer."""

    sentence_pooling: str = SENTENCE_POOLINGS[0]

    def __post_init__(self):
        super().__post_init__()
        if self.sentence_pooling not in SENTENCE_POOLINGS:
            raise ValueError(f"sentence_pooling must be mean, cls or last, not {self.sentence_pooling!r}")


@dataclass
class LinearHeadConfig:
    """A linear layer on one pooled vector, the usual fine-tuning baseline. Its options are
    CNNHeadConfig's --pooling and --dropout (one option each on the command line)."""

    pooling: str = LINEAR_POOLINGS[0]
    dropout: float = field(default=0.1, metadata={"search": {"low": 0.0, "high": 0.5}})

    def __post_init__(self):
        if self.pooling not in LINEAR_POOLINGS:
            raise ValueError(f"pooling must be cls, mean or last, not {self.pooling!r}")
        check_dropout(self.dropout)


# TextCNN's head (Kim 2014; Zhang & Wallace 2017's recommended widths and dropout).
TEXTCNN_HEAD = CNNHeadConfig([3, 4, 5], 100, "max", 0.5)
TEXTCNN_MAX_LENGTH = 128


@dataclass
class AdapterConfig:
    """What the adapter changes in the encoder; saved in convtune.json under "adapter"."""

    method: str = "lora"  # config.ADAPTER_MODES: the --mode that made it
    r: int = option(8, "lora / adalora: rank (adalora: the average it prunes to)", flag="--lora-r", dest="lora_r",
                    search={"choices": [4, 8, 16], "modes": LOW_RANK})
    alpha: float = option(16.0, "lora / adalora: scaling alpha (update = alpha / r * BA)", flag="--lora-alpha",
                          dest="lora_alpha", search={"choices": [8, 16, 32], "modes": LOW_RANK})
    # Dropout on the adapter's input: 0, as in peft, because on a CPU every adapted layer's extra
    # dropout pass made a MiniLM LoRA step 1.3x slower (docs/results/adapters.md).
    dropout: float = option(0.0, "lora / adalora: dropout on the adapter's input", flag="--lora-dropout",
                            dest="lora_dropout")
    target_modules: list[str] | None = option(None, "comma-separated names of the linear layers to adapt (default: "
                                                    "the encoder family's attention and feed-forward projections)",
                                              type=parse_names)
    init_r: int | None = None                 # AdaLoRA: the rank it starts from (default 1.5 r)
    rank_pattern: dict | None = field(default=None, repr=False)  # AdaLoRA: ranks it allocated (saved)

    def __post_init__(self):
        if self.method not in ADAPTER_MODES:
            raise ConvtuneError(f"adapter method must be one of {', '.join(ADAPTER_MODES)}, not {self.method!r}")
        if not isinstance(self.r, int) or isinstance(self.r, bool) or not 1 <= self.r <= 1024:
            raise ConvtuneError(f"--lora-r must be a whole number from 1 to 1024, not {self.r!r}")
        if not isinstance(self.alpha, int | float) or not 0 < self.alpha <= 1e4:
            raise ConvtuneError(f"--lora-alpha must be a number above 0, not {self.alpha!r}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConvtuneError(f"--lora-dropout must be in [0, 1), not {self.dropout!r}")
        if self.target_modules is not None and (
                not isinstance(self.target_modules, list) or not self.target_modules
                or not all(isinstance(m, str) and m.strip() for m in self.target_modules)):
            raise ConvtuneError(f"--target-modules wants module names, not {self.target_modules!r}")

    def to_dict(self) -> dict:
        return asdict(self)
