"""Classification heads over token states: pure nn.Modules, no I/O.

Every head takes token states ``h`` of shape (B, T, H) and the attention mask (B, T) with
1 for real tokens and 0 for padding, and returns logits (B, C). Padding never influences the
result: a text gives the same logits whatever length its batch was padded to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convtune.config import add_head_name
from convtune.errors import ConvtuneError
from convtune.modeling.settings import CNNHeadConfig, CNNPoolHeadConfig, LinearHeadConfig


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: (B, T, H), (B, T) -> (B, H)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def last_token(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """State of the last real token (right padding): (B, T, H) -> (B, H)."""
    idx = mask.long().sum(1).clamp(min=1) - 1
    return h[torch.arange(h.size(0), device=h.device), idx]


class CNNHead(nn.Module):
    """Parallel 1-D convolutions of several widths, masked pooling, dropout, linear."""

    def __init__(self, hidden_size: int, num_classes: int, config: CNNHeadConfig | None = None):
        super().__init__()
        self.config = config or CNNHeadConfig()
        c = self.config
        # "Same" padding, done by hand in `features` (k - 1 zeros split left / right): output
        # position t is centred on token t, so the token mask also masks the conv outputs,
        # and a text may be shorter than the kernel.
        self.convs = nn.ModuleList(nn.Conv1d(hidden_size, c.num_filters, k) for k in c.kernel_sizes)
        self.dropout = nn.Dropout(c.dropout)
        per_width = 2 if c.pooling == "both" else 1
        self.out_features = c.num_filters * len(c.kernel_sizes) * per_width
        self.classifier = nn.Linear(self.out_features, num_classes)

    def features(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled n-gram features: (B, T, H), (B, T) -> (B, F)."""
        m = mask.unsqueeze(1).to(h.dtype)                # (B, 1, T)
        x = h.transpose(1, 2) * m                        # (B, H, T), pads zeroed: they look like conv padding
        pooled = []
        for conv in self.convs:
            k = conv.kernel_size[0]
            a = F.relu(conv(F.pad(x, ((k - 1) // 2, k // 2))))  # (B, F, T)
            if self.config.pooling in ("max", "both"):
                # ReLU output is >= 0, so filling pads with 0 keeps them out of the max.
                pooled.append((a * m).amax(dim=2))
            if self.config.pooling in ("mean", "both"):
                pooled.append((a * m).sum(2) / m.sum(2).clamp(min=1.0))
        return torch.cat(pooled, dim=1)                  # (B, F)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(h, mask)))


class LinearHead(nn.Module):
    """Dropout + linear on the [CLS], masked-mean or last-token vector."""

    def __init__(self, hidden_size: int, num_classes: int, config: LinearHeadConfig | None = None):
        super().__init__()
        self.config = config or LinearHeadConfig()
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        p = self.config.pooling
        v = h[:, 0] if p == "cls" else masked_mean(h, mask) if p == "mean" else last_token(h, mask)
        return self.classifier(self.dropout(v))


class CNNPoolHead(CNNHead):
    """[CNN features ; sentence vector] -> dropout -> linear: local n-grams + global meaning."""

    def __init__(self, hidden_size: int, num_classes: int, config: CNNPoolHeadConfig | None = None):
        super().__init__(hidden_size, num_classes, config or CNNPoolHeadConfig())
        self.out_features += hidden_size
        self.classifier = nn.Linear(self.out_features, num_classes)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        p = self.config.sentence_pooling
        v = h[:, 0] if p == "cls" else masked_mean(h, mask) if p == "mean" else last_token(h, mask)
        return self.classifier(self.dropout(torch.cat([self.features(h, mask), v.to(h.dtype)], dim=1)))


class ScalarMix(nn.Module):
    """Learned softmax-weighted sum of k layers (ELMo's scalar mix): (B, T, k, H) -> (B, T, H)."""

    def __init__(self, k: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(k))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        # A sum of k scaled slices rather than einsum("btkh,k->bth"): under bf16 autocast einsum
        # copies the whole (B, T, k, H) block to bf16 and its backward is slow; a frozen SST-2
        # training step with k = 4 went from 22.6 to 14.8 ms (k = 1: 9.3 ms).
        w = torch.softmax(self.weights, 0).to(layers.dtype)
        out = layers[:, :, 0] * w[0]
        for i in range(1, layers.shape[2]):
            out = out + layers[:, :, i] * w[i]
        return self.gamma.to(layers.dtype) * out


# The heads over an encoder: name -> (module class, config dataclass). A head is a module built as
# `Head(hidden_size, num_classes, config)`, whose `forward(h (B, T, H), mask (B, T))` gives logits
# (B, C) and whose `config` attribute is its dataclass (saved in convtune.json as a dict).
HEADS = {"cnn": (CNNHead, CNNHeadConfig), "cnn+pool": (CNNPoolHead, CNNPoolHeadConfig),
         "linear": (LinearHead, LinearHeadConfig)}


def register_head(name: str, module: type[nn.Module], config: type) -> None:
    """Add a head of your own: after this call `--head NAME` (with the module named in
    CONVTUNE_PLUGINS for the command line) and `Classifier(head=NAME)` train, save, load and predict
    with it, as with the built-in heads. `config` is a dataclass whose fields have defaults; a
    head whose logits do not split over token windows gets one line from `explain`."""
    import dataclasses

    if not (isinstance(module, type) and issubclass(module, nn.Module)) or not dataclasses.is_dataclass(config):
        raise ConvtuneError(f"register_head({name!r}): wants an nn.Module class and a dataclass")
    add_head_name(name)
    HEADS[name] = (module, config)


def head_config(kind: str, config: dict | None = None):
    """The config dataclass for a head name and a plain dict; ValueError / TypeError if invalid."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose from {', '.join(HEADS)}")
    return HEADS[kind][1](**(config or {}))


def check_head_config(kind: str, options: dict, name: str | None = None):
    """`head_config`, with a bad option as one ConvtuneError line (raised before any data or model
    is read). `name` is the head as the user called it (default: `kind`)."""
    try:
        return head_config(kind, options)
    except (TypeError, ValueError) as e:
        raise ConvtuneError(f"{name or kind} head: {e}") from None


def build_head(kind: str, hidden_size: int, num_classes: int, config: dict | None = None) -> nn.Module:
    """A head from its name and a plain config dict (as saved in convtune.json)."""
    cfg = head_config(kind, config)  # checks `kind` first
    return head_from_config(kind, hidden_size, num_classes, cfg)


def head_from_config(kind: str, hidden_size: int, num_classes: int, config) -> nn.Module:
    """A head from its name and an already checked config dataclass."""
    return HEADS[kind][0](hidden_size, num_classes, config)
