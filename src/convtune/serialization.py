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
import glob
import hashlib
import json
import os
import re
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_partials(final: Path) -> None:
    """Delete what killed writers of `final` left: `.NAME.partial-PID-*` / `.NAME.old-PID`
    folders whose process is gone (kill -9 and power cuts skip every clean-up)."""
    for p in final.parent.glob(f".{glob.escape(final.name)}.*"):
        m = re.fullmatch(rf"\.{re.escape(final.name)}\.(?:partial-(\d+)-\w+|old-(\d+))", p.name)
        if m and p.is_dir() and not _pid_alive(int(m.group(1) or m.group(2))):
            shutil.rmtree(p, ignore_errors=True)


def fsync_tree(directory: Path) -> None:
    """Flush every file under `directory`, then the folders themselves, to the disk: a rename is
    only as durable as what it renames (without this a power cut can leave empty files)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False):
    """Yield a temporary directory that becomes `final` only if the block succeeds.

    Without `overwrite`, a `final` that another process filled while the block ran is left
    alone (ConvtuneError); whatever fails, the temporary directory does not stay behind. The
    result is flushed to disk before it is renamed into place, and partial directories that
    killed runs left beside `final` are removed first.
    """
    final = Path(final)
    _refuse_existing(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a saved model should read like any directory
    old = None
    try:
        yield tmp
        _refuse_existing(final, overwrite)
        fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
        tmp.rename(final)
        fsync_dir(final.parent)
    except BaseException:
        if old is not None and not final.exists():
            old.rename(final)               # put the previous directory back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_safetensors(state: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors' save_file, with the permissions of any file the user creates: it writes
    0600 whatever the umask, so a model saved by one account could not be served by another."""
    save_file(state, str(path), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def require_finite(state: dict, where: str) -> None:
    """Refuse weights holding NaN or infinity: such a model answers NaN (invalid JSON) for every text."""
    import torch

    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ConvtuneError(f"{where}: weight {bad} holds NaN or infinite values")


def save_model(directory: Path, model, tokenizer, manifest: dict) -> None:
    """Write encoder, tokenizer, head and manifest into an existing (temporary) directory."""
    require_finite(model.state_dict(), "refusing to save the model")
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


def inside(directory: str | Path, name: str) -> Path:
    """`directory / name`, refused unless it stays inside `directory` (a manifest names files
    by relative path; `../x` or an absolute path would read files from anywhere)."""
    base = Path(directory).resolve()
    path = (base / name).resolve() if isinstance(name, str) and name.strip() else base
    if not path.is_relative_to(base) or path == base:
        raise ConvtuneError(f"{directory}: {CONFIG_NAME} names {name!r}, which is not a file inside the model directory")
    return path


def model_fingerprint(directory: str | Path) -> str:
    """A hash of a saved model's content (every file but evaluate's eval-*.json): it changes
    when the model is retrained or re-exported into the same directory."""
    h = hashlib.sha256()
    base = Path(directory)
    for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("eval-")):
        h.update(str(path.relative_to(base)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


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


def load_model(directory: str | Path, manifest: dict | None = None):
    """(model, tokenizer, manifest) rebuilt from a saved directory, training data not needed."""
    from .models import ModelConfig, build_model

    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    config = ModelConfig(**manifest["model"])
    model, tokenizer = build_model(config, directory / ENCODER_DIR, head_weights=directory / HEAD_NAME)
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
