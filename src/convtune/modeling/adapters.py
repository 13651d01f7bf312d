"""Parameter-efficient fine-tuning of the encoder through `peft`: LoRA, AdaLoRA, IA3.

    encoder (frozen base weights) + adapter (low-rank A/B, or IA3 scales)  -> token states
    head (always trained in full)                                           -> logits

A run directory in these modes keeps only the adapter (adapter.safetensors) and the head, and
names its base encoder in convtune.json (name, package version, a content hash of the base
directory), so it is a few MB where a fine-tuned one copies the whole encoder; loading applies
the adapter to the installed base and refuses a missing or different one in one line.
`merged()` folds the adapter into the encoder's weights (a standalone model, one ONNX graph).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

from convtune.errors import ConvtuneError

from convtune.config import ADAPTER_MODES  # noqa: F401  (declared once there)
from convtune.modeling.settings import AdapterConfig

# The linear layers adapted by default, per encoder family (model_type): attention projections
# and the feed-forward pair, as the LoRA and AdaLoRA papers adapt for BERT-style encoders; for
# Llama-style decoders the attention projections q/k/v/o.
_BERT = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
_FAMILY_TARGETS = {
    "bert": _BERT, "roberta": _BERT, "xlm-roberta": _BERT, "electra": _BERT, "camembert": _BERT,
    "mpnet": ["q", "k", "v", "o", "intermediate.dense", "output.dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
# IA3 scales keys, values and the feed-forward output (Liu et al. 2022).
_IA3_TARGETS = {"bert": (["key", "value", "output.dense"], ["output.dense"]),
                "mpnet": (["k", "v", "output.dense"], ["output.dense"]),
                "llama": (["k_proj", "v_proj", "down_proj"], ["down_proj"])}


def targets(config: AdapterConfig, model_type: str) -> list[str]:
    """The module-name suffixes to adapt: the user's, or the family's default."""
    if config.target_modules:
        return list(config.target_modules)
    family = _FAMILY_TARGETS.get(model_type)
    if family is None:
        raise ConvtuneError(f"no default --target-modules for a {model_type!r} encoder; name its linear "
                            "layers, e.g. --target-modules q_proj,v_proj")
    return family


def _suffix_regex(names: list[str]) -> str:
    """A peft target regex matching modules whose name ends with one of `names` (dot-separated),
    inside the encoder's layers only (never the embeddings)."""
    alternatives = "|".join(n.replace(".", r"\.") for n in names)
    return rf"(.*\.)?(layer|layers|h)\.\d+\.(.*\.)?({alternatives})"


def apply_adapter(encoder, config: AdapterConfig, total_steps: int | None = None):
    """`encoder` wrapped by peft with the adapter added and its base weights frozen.
    `total_steps` drives AdaLoRA's budget schedule (warm-up, pruning, final phase)."""
    import peft

    model_type = encoder.config.model_type
    names = targets(config, model_type)
    regex = _suffix_regex(names)
    if config.method == "lora":
        pc = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=regex)
    elif config.method == "adalora":
        steps = max(10, total_steps or 1000)
        pc = peft.AdaLoraConfig(
            init_r=config.init_r or max(config.r + 1, math.ceil(1.5 * config.r)), target_r=config.r,
            lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=regex, total_step=steps,
            tinit=steps // 10, tfinal=steps // 5, deltaT=max(1, steps // 50))
    else:
        family = _IA3_TARGETS.get("bert" if _FAMILY_TARGETS.get(model_type) is _BERT else model_type)
        if family is None and not config.target_modules:
            raise ConvtuneError(f"no default IA3 targets for a {model_type!r} encoder; give --target-modules")
        mods, ff = family if not config.target_modules else (names, [])
        pc = peft.IA3Config(target_modules=_suffix_regex(mods), feedforward_modules=_suffix_regex(ff) if ff else None)
    try:
        with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            wrapped = peft.get_peft_model(encoder, pc)
    except ValueError as e:  # peft: "Target modules ... not found in the base model"
        raise ConvtuneError(f"--target-modules {','.join(names)}: {str(e).splitlines()[0][:200]}") from None
    if config.rank_pattern:  # a saved AdaLoRA: loading its weights resizes each module to its ranks
        wrapped.peft_config["default"].rank_pattern = dict(config.rank_pattern)
    return wrapped


def is_adapted(encoder) -> bool:
    return hasattr(encoder, "peft_config")


def adapter_state(encoder) -> dict:
    """The adapter's weights only (what adapter.safetensors holds)."""
    from peft import get_peft_model_state_dict

    with warnings.catch_warnings():  # AdaLoRA modules pruned to rank 0 save (0, H) tensors on purpose
        warnings.filterwarnings("ignore", message=".*invalid shape")
        state = get_peft_model_state_dict(encoder)
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_adapter_state(encoder, state: dict, where: str) -> None:
    """Put saved adapter weights into an adapted encoder; every weight must find its place."""
    from peft import set_peft_model_state_dict

    try:
        result = set_peft_model_state_dict(encoder, state)
    except (RuntimeError, KeyError, IndexError) as e:  # shapes edited in convtune.json, or a damaged file
        raise ConvtuneError(f"{where}: adapter weights do not fit the encoder ({str(e).splitlines()[0][:200]})") from None
    unexpected = [k for k in getattr(result, "unexpected_keys", []) or [] if "lora_" in k or "ia3_" in k]
    if unexpected:
        raise ConvtuneError(f"{where}: adapter weights do not fit the encoder (unexpected {unexpected[:2]})")


def rank_pattern(encoder) -> dict | None:
    """AdaLoRA's allocated ranks (module -> kept singular values), once it has allocated."""
    pattern = getattr(encoder.peft_config["default"], "rank_pattern", None)
    return {k: [bool(x) for x in v] for k, v in pattern.items()} if pattern else None


def allocate(encoder, step: int) -> None:
    """AdaLoRA's budget step (after the optimizer step, before gradients are cleared); peft
    trains a fixed rank unless the loop calls this (peft #1327, #1801)."""
    base = encoder.base_model
    if hasattr(base, "update_and_allocate"):
        base.update_and_allocate(step)


def merged(encoder):
    """A plain encoder with the adapter folded into its weights."""
    return encoder.merge_and_unload()


def content_hash(directory: str | Path) -> str:
    """sha256 over the base encoder's config, weights and tokenizer files (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(Path(directory).iterdir()):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".txt", ".model"):
            h.update(p.name.encode())
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:32]


def trainable_share(model) -> tuple[int, int]:
    """(trained parameters, all parameters) of a model (head included)."""
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trained, sum(p.numel() for p in model.parameters())


def base_identity(identity: dict, encoder_dir: Path) -> dict:
    """What an adapter directory records of its base: the encoder's identity, its content hash,
    and for a local directory (no package to name) its absolute path."""
    out = dict(identity, content_hash=content_hash(encoder_dir))
    if identity.get("source") == "local directory":
        out["path"] = str(Path(encoder_dir).resolve())
    return out


def base_encoder_dir(directory: Path, base: dict | None) -> Path:
    """The installed base encoder an adapter directory was trained on, checked by content hash."""
    from convtune.modeling.encoders import resolve_encoder

    if not isinstance(base, dict) or not isinstance(base.get("name"), str) or not base.get("content_hash"):
        raise ConvtuneError(f"{directory}: convtune.json does not name the base encoder of its adapter")
    where = base.get("path") or base["name"]
    try:
        encoder_dir = resolve_encoder(where)
    except ConvtuneError as e:
        raise ConvtuneError(f"{directory}: its base encoder {base['name']!r} is not here ({e})") from None
    found = content_hash(encoder_dir)
    if found != base["content_hash"]:
        version = f" {base.get('package')} {base.get('version')}" if base.get("version") else ""
        raise ConvtuneError(f"{directory}: the adapter was trained on {base['name']}{version} (content "
                            f"{base['content_hash'][:12]}), but the installed one differs ({found[:12]}): "
                            "install the encoder it was trained on")
    return encoder_dir


def finish_allocation(encoder) -> dict | None:
    """AdaLoRA after training: the allocated rank pattern (None before its first allocation),
    with the pruned singular values zeroed again (restoring the best epoch may have refilled them)."""
    pattern = rank_pattern(encoder)
    if pattern:
        encoder.base_model.rankallocator.mask_using_rank_pattern(encoder.base_model.model, pattern)
    return pattern
