"""Save / load a trained model directory: JSON + safetensors, never pickle.

    DIR/convtune.json      format version, labels in order, head config, encoder, max length,
                           training hyper-parameters
    DIR/encoder/           the encoder and tokenizer in Hugging Face format (safetensors)
    DIR/head.safetensors   the head's weights (and the layer mix, if any), keys head.* / head_mix.*
    DIR/adapter.safetensors  lora / adalora / ia3 instead of DIR/encoder/: the adapter only; the
                           base encoder is named (and hashed) in convtune.json, not copied

Writes go to a temporary sibling directory that is renamed into place at the end, so an
interrupted save never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from convtune._fs import CONFIG_NAME, require_space, write_json
from convtune.errors import ConvtuneError

FORMAT_VERSION = 1
HEAD_NAME = "head.safetensors"
ADAPTER_NAME = "adapter.safetensors"
ENCODER_DIR = "encoder"


def write_safetensors(state: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, with the permissions of any file the user creates: it writes
    0600 whatever the umask, so a model saved by one account could not be served by another."""
    save_file(state, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def require_finite(state: dict, where: str) -> None:
    """Refuse weights holding NaN or infinity: such a model answers NaN (invalid JSON) for every text."""
    import torch

    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ConvtuneError(f"{where}: weight {bad} holds NaN or infinite values")


def save_model(directory: Path, model, tokenizer, manifest: dict, adapter: dict | None = None) -> None:
    """Write encoder, tokenizer, head and manifest into an existing (temporary) directory; with
    `adapter` (an adapter's weights: modeling.adapters.adapter_state) those instead of the encoder."""
    state = model.state_dict()
    require_finite(state, "refusing to save the model")
    weights = [v for k, v in state.items() if adapter is None or not k.startswith("encoder.")] + list((adapter or {}).values())
    require_space(directory, sum(v.numel() * v.element_size() for v in weights))  # a full disk: one line, up front
    if adapter is not None:
        write_safetensors(adapter, directory / ADAPTER_NAME, metadata={"format": "pt"})
    else:
        enc_dir = directory / ENCODER_DIR
        model.encoder.save_pretrained(enc_dir)
        tokenizer.save_pretrained(enc_dir)
    # Everything that is not the encoder: the head, and the layer mix when there is one.
    head_state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
                  if not k.startswith("encoder.")}
    write_safetensors(head_state, directory / HEAD_NAME, metadata={"format": "pt"})
    write_json(directory / CONFIG_NAME, dict(manifest, format_version=FORMAT_VERSION))


def read_manifest(directory: str | Path) -> dict:
    """convtune.json of a saved model, checked for a readable format version."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConvtuneError(f"{directory}: not a convtune model directory (no {CONFIG_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ConvtuneError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(manifest, dict):
        raise ConvtuneError(f"{path}: unreadable (not a JSON object)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        what = f"{version!r} (a {type(version).__name__}, not a number)" if not isinstance(version, int) else version
        raise ConvtuneError(f"{path}: format version {what} is not supported (this convtune reads {FORMAT_VERSION})")
    return manifest


def check_weight_shapes(build, weights: Path) -> None:
    """Compare the tensors in a safetensors file with what `build()` makes, before allocating
    anything: `build` runs on the meta device, and the file's header gives its shapes. An
    edited config (num_filters: 1e9) is one line instead of an allocation of gigabytes."""
    import torch
    from safetensors import safe_open

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    with safe_open(str(weights), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if wrong or missing or unexpected:
        detail = "; ".join(f"{k}: file {found[k]}, config {expected[k]}" for k in wrong[:2])
        raise ConvtuneError(f"{weights}: weights do not match the config (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}{', ' + detail if detail else ''})")
