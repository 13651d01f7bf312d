"""Kim (2014) TextCNN trained from scratch: the no-pretraining baseline.

    words (English) or characters (Chinese) -> random 300-d embeddings (B, T, 300)
        -> the same CNNHead the transformer uses: widths 3, 4, 5 x 100 filters, max pool,
           dropout 0.5 -> logits (B, C)

It trains with the same loop (`training.loop.fit`), so early stopping, bucketed batches and the
report are identical to the transformer's. Saved as vocabulary.json + safetensors.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from convtune._fs import write_json
from convtune.config import (
    TEXTCNN_RUNTIME_DEFAULTS,
    TEXTCNN_TRAIN_DEFAULTS,
    RuntimeConfig,
    TrainConfig,
    split_options,
)
from convtune.data.texts import looks_chinese
from convtune.errors import ConvtuneError
from convtune.estimators.base import TokenClassifier, TokenPath
from convtune.modeling.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    check_weight_shapes,
    require_finite,
    write_safetensors,
)
from convtune.modeling.heads import CNNHead, check_head_config
from convtune.modeling.settings import TEXTCNN_HEAD, TEXTCNN_MAX_LENGTH, CNNHeadConfig
from convtune.runtime import resolve_device, resolve_precision, set_threads
from convtune.training.loop import fit, seed_everything

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"\w+|[^\w\s]")


class SimpleTokenizer:
    """Words (lower-cased) or characters -> ids; called like a Hugging Face tokenizer."""

    pad_token_id = 0

    def __init__(self, vocab: list[str], chars: bool):
        self.vocab, self.chars = vocab, chars
        self.index = {w: i for i, w in enumerate(vocab)}

    def split(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()] if self.chars else WORD.findall(text.lower())

    @classmethod
    def build(cls, texts: Sequence[str], chars: bool, min_count: int) -> SimpleTokenizer:
        tmp = cls([PAD, UNK], chars)
        counts = Counter(t for text in texts for t in tmp.split(text))
        return cls([PAD, UNK] + sorted(w for w, n in counts.items() if n >= min_count), chars)

    def __call__(self, texts: Sequence[str], max_length: int = 128, **_ignored) -> dict:
        # An empty text still gets one token, so every row has something to convolve.
        ids = [[self.index.get(t, 1) for t in self.split(x)][:max_length] or [1] for x in texts]
        return {"input_ids": ids}


class TextCNN(nn.Module):
    """Embedding + CNN head; forward(input_ids, mask) -> logits like the transformer model."""

    frozen = False

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 300,
                 head_config: CNNHeadConfig | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)  # Kim's initialisation for unknown words
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.head = CNNHead(embed_dim, num_classes, head_config or TEXTCNN_HEAD)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(input_ids), attention_mask)


class TextCNNClassifier(TokenClassifier):
    """TextCNN from scratch with the convtune surface (fit / predict_proba / save / load)."""

    kind = "textcnn"

    def __init__(self, embed_dim: int = 300, min_count: int = 1, max_length: int = TEXTCNN_MAX_LENGTH,
                 analyzer: str = "auto", head_config: dict | CNNHeadConfig | None = None, **options):
        self.embed_dim, self.min_count, self.max_length, self.analyzer = embed_dim, min_count, max_length, analyzer
        self.head_config = head_config  # as given (scikit-learn's clone checks identity); resolved:
        given = asdict(head_config) if is_dataclass(head_config) else dict(head_config or {})
        self.cnn_config = check_head_config("cnn", asdict(TEXTCNN_HEAD) | given, "textcnn")
        train_options, runtime_options = split_options(options)
        self.train_config = TrainConfig(**(TEXTCNN_TRAIN_DEFAULTS | train_options))
        self.runtime = RuntimeConfig(**(TEXTCNN_RUNTIME_DEFAULTS | runtime_options))
        self.model_: TextCNN | None = None
        self.tokenizer_: SimpleTokenizer | None = None
        self.labels_, self.result_, self.manifest_ = None, None, None

    def fit(self, texts, labels, dev_texts=None, dev_labels=None, callbacks=()) -> TextCNNClassifier:
        set_threads()
        train, dev = self._fit_data(texts, labels, dev_texts, dev_labels, self.train_config.seed)
        chars = self.analyzer == "char" or (self.analyzer == "auto" and looks_chinese(train.texts))
        self.tokenizer_ = SimpleTokenizer.build(train.texts, chars, self.min_count)
        seed_everything(self.train_config.seed)
        self.model_ = TextCNN(len(self.tokenizer_.vocab), len(self.labels_), self.embed_dim, self.cnn_config)
        self.result_ = fit(self.model_, self.tokenizer_, train, dev, self.labels_, self.train_config,
                           self.max_length, self.runtime, callbacks=callbacks)
        self._remember_dev(dev.texts, self.result_.dev_logits)
        self._tune_thresholds(dev)
        self._fit_temperature(dev, self.train_config.calibrate)
        self.manifest_ = {**self._manifest_head(),
                          "model": {"head": "textcnn", "labels": self.labels_, "embed_dim": self.embed_dim,
                                    "max_length": self.max_length, "chars": chars,
                                    "head_config": asdict(self.cnn_config)},
                          "train": self.train_config.to_dict(),
                          "training": {"best_epoch": self.result_.best_epoch,
                                       "train_seconds": self.result_.train_seconds,
                                       "history": self.result_.history}}
        return self

    def _token_path(self) -> TokenPath:
        self.model_.eval()
        device = resolve_device(self.runtime.device)
        self.model_.to(device)
        return TokenPath(self.tokenizer_, self.model_, self.max_length, self.train_config.eval_batch_size,
                         resolve_precision(self.runtime.precision, device), device)

    def save_into(self, directory: Path) -> None:
        self._check_fitted()
        d = Path(directory)
        require_finite(self.model_.state_dict(), "refusing to save the model")
        (d / "vocabulary.json").write_text(json.dumps(self.tokenizer_.vocab, ensure_ascii=False), encoding="utf-8")
        write_safetensors({k: v.contiguous() for k, v in self.model_.state_dict().items()}, d / "textcnn.safetensors")
        write_json(d / CONFIG_NAME, dict(self.manifest_, format_version=FORMAT_VERSION))

    @classmethod
    def _load_from(cls, directory: Path, manifest: dict) -> TextCNNClassifier:
        m = manifest["model"]
        vocab = json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
        clf = cls(embed_dim=m["embed_dim"], max_length=m["max_length"], head_config=m["head_config"])
        clf.tokenizer_ = SimpleTokenizer(vocab, m["chars"])
        weights = directory / "textcnn.safetensors"
        def build() -> TextCNN:
            return TextCNN(len(vocab), len(m["labels"]), m["embed_dim"], clf.cnn_config)

        check_weight_shapes(build, weights)  # on the meta device: an absurd embed_dim allocates nothing
        clf.model_ = build()
        try:
            state = load_file(str(weights))
            require_finite(state, str(weights))
            clf.model_.load_state_dict(state)
        except (OSError, RuntimeError) as e:
            raise ConvtuneError(f"{directory}: cannot load TextCNN weights ({str(e).splitlines()[0]})") from None
        clf.model_.eval()
        clf.labels_, clf.manifest_ = list(m["labels"]), manifest
        return clf

    def get_params(self, deep: bool = True) -> dict:
        return {"embed_dim": self.embed_dim, "min_count": self.min_count, "max_length": self.max_length,
                "analyzer": self.analyzer, "head_config": self.head_config, **self.train_config.to_dict(), **self.runtime.to_dict()}

    def hyperparameters(self) -> dict:
        return {"head": "textcnn", **self.get_params(), "head_config": asdict(self.cnn_config)}
