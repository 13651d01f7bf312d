"""Encoder + head, and the one place where a saved config becomes modules.

    input_ids, attention_mask (B, T)
        -> encoder (BERT family or GPT-style decoder) -> token states (B, T, H)
        -> head (CNN or linear)                       -> logits (B, C)
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from convtune.config import FROZEN_ENCODER_MODES
from convtune.errors import ConvtuneError
from convtune.modeling.checkpoint import (
    ADAPTER_NAME,
    ENCODER_DIR,
    HEAD_NAME,
    check_weight_shapes,
    read_manifest,
    require_finite,
)
from convtune.modeling.adapters import (
    ADAPTER_MODES,
    AdapterConfig,
    apply_adapter,
    base_encoder_dir,
    load_adapter_state,
)
from convtune.modeling.encoders import is_decoder, load_encoder, token_limit
from convtune.modeling.heads import ScalarMix, check_head_config, head_from_config
from convtune.modeling.settings import DEFAULT_MAX_LENGTH, ModelConfig, default_layers  # noqa: F401

class TransformerClassifier(nn.Module):
    """A pretrained encoder with a classification head on its last hidden states."""

    def __init__(self, encoder: nn.Module, head: nn.Module, frozen: bool = False, layers: int = 1):
        super().__init__()
        self.encoder = encoder
        # The mix is trained with the head (its parameters are named head_mix.*, head lr).
        self.head_mix = ScalarMix(layers) if layers > 1 else None
        self.head = head
        self.frozen = frozen
        self.layers = layers
        if frozen:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # a frozen encoder is a fixed feature extractor: no dropout
        return self

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B, T, H) last-layer states, or (B, T, k, H) with k layers."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                               output_hidden_states=self.layers > 1)
        if self.layers == 1:
            return out.last_hidden_state
        return torch.stack(out.hidden_states[-self.layers:], dim=2)

    def classify(self, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Head over token states as `token_states` returns them (also the cached path)."""
        if self.head_mix is not None:
            h = self.head_mix(h)
        return self.head(h, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.token_states(input_ids, attention_mask)
        return self.classify(h.float() if self.frozen else h, attention_mask)


def build_model(config: ModelConfig, encoder_dir: str | Path, head_weights: Path | None = None,
                total_steps: int | None = None):
    """(model, tokenizer, resolved config) for a config, with the encoder read from a local
    directory. `config` is not changed: the copy returned has max_length and the head's full
    config filled in (what is saved with the model). In an adapter mode the encoder comes back
    wrapped by peft, its base weights frozen (`total_steps`: AdaLoRA's budget schedule).

    `head_weights` (a saved head.safetensors) is checked against the config's shapes before
    the head is allocated, so an edited config fails in one line instead of in the allocator.
    """
    encoder, tokenizer = load_encoder(encoder_dir)
    limit = token_limit(encoder.config, tokenizer)
    if config.max_length is None:  # the default adapts to small encoders; an explicit value must fit
        config = replace(config, max_length=min(DEFAULT_MAX_LENGTH, limit or DEFAULT_MAX_LENGTH))
    elif limit is not None and config.max_length > limit:  # longer inputs would index past the position table
        raise ConvtuneError(f"max_length {config.max_length} is more than encoder {config.encoder!r} "
                            f"can read ({limit} tokens); use --max-length {limit} or less")
    depth = getattr(encoder.config, "num_hidden_layers", None)
    if config.layers is None:
        config = replace(config, layers=default_layers(config.mode, depth))
    elif depth is not None and config.layers > depth:  # hidden_states[-k:] would silently give fewer
        raise ConvtuneError(f"layers: last-{config.layers} asked, but encoder {config.encoder!r} has "
                            f"{depth} layers; use --layers last-{depth} or less")
    head_cfg = dict(config.head_config)
    if config.head == "linear" and "pooling" not in head_cfg and is_decoder(encoder.config):
        head_cfg["pooling"] = "last"  # a decoder's [CLS] equivalent is its last real token
    head_cfg = check_head_config(config.head, head_cfg)

    def make_head() -> nn.Module:
        return head_from_config(config.head, encoder.config.hidden_size, len(config.labels), head_cfg)

    def trainable_part() -> nn.Module:  # what head.safetensors holds: head.* and head_mix.*
        part = nn.Module()
        part.head, part.head_mix = make_head(), ScalarMix(config.layers) if config.layers > 1 else None
        return part

    if head_weights is not None:
        check_weight_shapes(trainable_part, head_weights)
    head = make_head()
    if config.mode in ADAPTER_MODES:
        adapter = AdapterConfig(**{"method": config.mode, **config.adapter})
        encoder = apply_adapter(encoder, adapter, total_steps)
        config = replace(config, adapter=adapter.to_dict())
    model = TransformerClassifier(encoder, head, frozen=config.mode in FROZEN_ENCODER_MODES, layers=config.layers)
    return model, tokenizer, replace(config, head_config=asdict(head.config))


def load_model(directory: str | Path, manifest: dict | None = None):
    """(model, tokenizer, manifest) rebuilt from a saved directory, training data not needed."""
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    # A saved model states its layers (older ones, written before the mix existed, used 1); a
    # default must never be filled in here, or a frozen model would be rebuilt with another head.
    config = ModelConfig(**{"layers": 1, **manifest["model"], "labels": manifest["model"]["labels"]})  # labels required
    if not isinstance(config.layers, int) or isinstance(config.layers, bool) or config.layers < 1:
        raise ConvtuneError(f"{directory}: convtune.json: layers must be a whole number >= 1, not {config.layers!r}")
    adapted = config.mode in ADAPTER_MODES
    encoder_dir = base_encoder_dir(directory, manifest.get("base_encoder")) if adapted else directory / ENCODER_DIR
    model, tokenizer, _ = build_model(config, encoder_dir, head_weights=directory / HEAD_NAME)
    if adapted:
        adapter_file = directory / ADAPTER_NAME
        if not adapter_file.is_file():
            raise ConvtuneError(f"{directory}: a {config.mode} model without its {ADAPTER_NAME}")
        state = load_file(str(adapter_file))
        require_finite(state, str(adapter_file))
        load_adapter_state(model.encoder, state, str(adapter_file))
    try:
        state = load_file(str(directory / HEAD_NAME))
        require_finite(state, str(directory / HEAD_NAME))
        # strict=False: the file holds the head only; build_model has checked its keys and shapes.
        model.load_state_dict(state, strict=False)
    except (OSError, RuntimeError) as e:
        # torch's message starts "Error(s) in loading state_dict ...:"; the next line says what.
        detail = " ".join(line.strip() for line in str(e).splitlines()[:2])
        raise ConvtuneError(f"{directory / HEAD_NAME}: cannot load head weights ({detail[:300]})") from None
    require_finite(model.encoder.state_dict(), str(directory / ENCODER_DIR))
    model.eval()
    return model, tokenizer, manifest
