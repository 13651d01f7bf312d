"""Save / load a trained model directory: JSON + safetensors, never pickle.

    DIR/convtune.json      format version, labels in order, head config, encoder, max length,
                           training hyper-parameters
    DIR/encoder/           the encoder and tokenizer in Hugging Face format (safetensors)
    DIR/head.safetensors   the head's weights (and the layer mix, if any), keys head.* / head_mix.*

Writes go to a temporary sibling directory that is renamed into place at the end, so an
interrupted save never leaves a directory that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from .errors import ConvtuneError

FORMAT_VERSION = 1
CONFIG_NAME = "convtune.json"
# What marks a directory convtune wrote, so that --overwrite may delete it: a saved model (or
# an export), or a compare report (both of its files: a bench folder also holds results.json).
OWN_OUTPUT_MARKS = ((CONFIG_NAME,), ("report.md", "results.json"))
HEAD_NAME = "head.safetensors"
ENCODER_DIR = "encoder"


def _refuse_existing(final: Path, overwrite: bool) -> None:
    if final.exists() and not final.is_dir():  # --overwrite replaces run directories, never files
        raise ConvtuneError(f"{final} is a file; the output must be a directory (choose another --out)")
    if final.exists() and any(final.iterdir()):
        if not overwrite:
            raise ConvtuneError(f"{final} already exists and is not empty; pass --overwrite or another --out")
        # --overwrite deletes the old directory: only ever one convtune wrote (`--out .` or a
        # home directory with --overwrite would otherwise be deleted after training).
        if not any(all((final / name).is_file() for name in mark) for mark in OWN_OUTPUT_MARKS):
            raise ConvtuneError(f"{final} is not a convtune output (no {CONFIG_NAME}, no compare report); "
                                "--overwrite replaces only those; choose another --out")


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False):
    """Yield a temporary directory that becomes `final` only if the block succeeds.

    Without `overwrite`, a `final` that another process filled while the block ran is left
    alone (ConvtuneError); whatever fails, the temporary directory does not stay behind.
    """
    final = Path(final)
    _refuse_existing(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a saved model should read like any directory
    old = None
    try:
        yield tmp
        _refuse_existing(final, overwrite)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
        tmp.rename(final)
    except BaseException:
        if old is not None and not final.exists():
            old.rename(final)               # put the previous directory back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_model(directory: Path, model, tokenizer, manifest: dict) -> None:
    """Write encoder, tokenizer, head and manifest into an existing (temporary) directory."""
    enc_dir = directory / ENCODER_DIR
    model.encoder.save_pretrained(enc_dir)
    tokenizer.save_pretrained(enc_dir)
    # Everything that is not the encoder: the head, and the layer mix when there is one.
    head_state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
                  if not k.startswith("encoder.")}
    save_file(head_state, str(directory / HEAD_NAME), metadata={"format": "pt"})
    write_json(directory / CONFIG_NAME, dict(manifest, format_version=FORMAT_VERSION))


def read_manifest(directory: str | Path) -> dict:
    """convtune.json of a saved model, checked for a readable format version."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConvtuneError(f"{directory}: not a convtune model directory (no {CONFIG_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConvtuneError(f"{path}: unreadable ({e})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ConvtuneError(f"{path}: format version {version} is not supported (this convtune reads {FORMAT_VERSION})")
    return manifest


def load_model(directory: str | Path, manifest: dict | None = None):
    """(model, tokenizer, manifest) rebuilt from a saved directory, training data not needed."""
    from .models import ModelConfig, build_model

    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    config = ModelConfig(**manifest["model"])
    model, tokenizer = build_model(config, directory / ENCODER_DIR)
    try:
        result = model.load_state_dict(load_file(str(directory / HEAD_NAME)), strict=False)
    except (OSError, RuntimeError) as e:
        # torch's message starts "Error(s) in loading state_dict ...:"; the next line says what.
        detail = " ".join(line.strip() for line in str(e).splitlines()[:2])
        raise ConvtuneError(f"{directory / HEAD_NAME}: cannot load head weights ({detail[:300]})") from None
    missing = [k for k in result.missing_keys if not k.startswith("encoder.")]
    if missing or result.unexpected_keys:
        raise ConvtuneError(f"{directory / HEAD_NAME}: weights do not match the config "
                            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    model.eval()
    return model, tokenizer, manifest
