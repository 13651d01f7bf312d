"""Adapter modes (LoRA, AdaLoRA, IA3 through peft) on the tiny random BERT: what trains, what a
run directory holds, round trips through save / load / merge / ONNX, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import convtune
from convtune import Classifier
from convtune.errors import ConvtuneError
from tests.conftest import toy_texts

OPTIONS = dict(epochs=4, batch_size=16, max_length=16, precision="fp32", seed=0, lr=3e-3, head_lr=1e-2)


@pytest.fixture(scope="module")
def lora(tiny_encoder):
    texts, labels = toy_texts(240)
    return Classifier(encoder=str(tiny_encoder), mode="lora", lora_r=4, **OPTIONS).fit(texts, labels)


def test_lora_trains_only_the_adapter_and_the_head(lora, tiny_encoder):
    import torch

    names = [n for n, p in lora.model_.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("head.") for n in names)
    assert any(n.startswith("head.") for n in names) and any("lora_" in n for n in names)
    p = lora.manifest_["training"]["parameters"]
    assert p["trained"] == sum(lora.model_.get_parameter(n).numel() for n in names) and p["trained"] < p["total"]
    base = Classifier(encoder=str(tiny_encoder), **OPTIONS).fit(*toy_texts(40))  # the base stays as loaded
    frozen_base = dict(lora.model_.encoder.base_model.model.named_parameters())
    weight = "embeddings.word_embeddings.weight"
    assert not frozen_base[weight].requires_grad
    assert not torch.equal(frozen_base[weight], base.model_.encoder.get_parameter(weight))  # fine-tuning moved it


def test_round_trip_keeps_only_adapter_and_head(lora, tmp_path):
    texts, _ = toy_texts(30, seed=3)
    lora.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    # no encoder/ copy (lexical/: the TF-IDF part, when the blend kept it)
    assert [f for f in files if f != "lexical"] == ["adapter.safetensors", "convtune.json", "head.safetensors"]
    manifest = json.loads((tmp_path / "m" / "convtune.json").read_text())
    assert manifest["model"]["adapter"]["r"] == 4 and len(manifest["base_encoder"]["content_hash"]) == 32
    back = convtune.load(tmp_path / "m", precision="fp32")
    assert back.mode == "lora" and back.lora_r == 4
    np.testing.assert_array_equal(back.predict_proba(texts), lora.predict_proba(texts))


def test_merged_directory_and_its_onnx_export_agree_with_the_adapter(lora, tmp_path):
    from convtune.deploy.export import ParityData, export_onnx

    texts, _ = toy_texts(30, seed=4)
    want = lora.predict_proba(texts)
    lora.save(tmp_path / "merged", merge=True)
    merged = convtune.load(tmp_path / "merged", precision="fp32")
    assert (tmp_path / "merged" / "encoder" / "config.json").is_file() and merged.mode == "finetune"
    assert merged.manifest_["merged_from"]["mode"] == "lora"
    np.testing.assert_allclose(merged.predict_proba(texts), want, atol=1e-4)
    lora.save(tmp_path / "m")
    export_onnx(tmp_path / "m", tmp_path / "onnx", ParityData(texts, None, "toy"))  # merges first: one graph
    np.testing.assert_allclose(convtune.load(tmp_path / "onnx").predict_proba(texts), want, atol=1e-4)


def test_adalora_reallocates_ranks_during_training(tiny_encoder, tmp_path):
    from convtune.modeling.adapters import rank_pattern

    texts, labels = toy_texts(320)
    clf = Classifier(encoder=str(tiny_encoder), mode="adalora", lora_r=2, **{**OPTIONS, "epochs": 3})
    from convtune.modeling.adapters import AdapterConfig, apply_adapter
    from convtune.modeling.encoders import load_encoder

    fresh = apply_adapter(load_encoder(tiny_encoder)[0], AdapterConfig("adalora", r=2), total_steps=60)
    assert rank_pattern(fresh) is None  # before training: every module at its initial rank (3)
    clf.fit(texts, labels)
    pattern = clf.manifest_["model"]["adapter"]["rank_pattern"]
    kept = [sum(v) for v in pattern.values()]
    assert len(kept) == 12 and all(len(v) == 3 for v in pattern.values())  # 2 layers x 6 projections, init r 3
    assert sum(kept) <= 2 * len(kept) and len(set(kept)) > 1  # pruned to the budget, unevenly: allocated
    clf.save(tmp_path / "m")
    back = convtune.load(tmp_path / "m", precision="fp32")
    np.testing.assert_allclose(back.predict_proba(texts[:20]), clf.predict_proba(texts[:20]), atol=1e-6)


def test_ia3_round_trip(tiny_encoder, tmp_path):
    texts, labels = toy_texts(120)
    clf = Classifier(encoder=str(tiny_encoder), mode="ia3", **{**OPTIONS, "epochs": 1}).fit(texts, labels)
    assert all("ia3_" in n or n.startswith("head.") for n, p in clf.model_.named_parameters() if p.requires_grad)
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(convtune.load(tmp_path / "m", precision="fp32").predict_proba(texts[:10]),
                               clf.predict_proba(texts[:10]), atol=1e-6)


def test_a_different_or_missing_base_is_one_line(lora, tmp_path):
    lora.save(tmp_path / "m")
    path = tmp_path / "m" / "convtune.json"
    manifest = json.loads(path.read_text())
    manifest["base_encoder"]["content_hash"] = "0" * 32
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="the installed one differs"):
        convtune.load(tmp_path / "m")
    manifest["base_encoder"]["path"] = str(tmp_path / "gone")
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="is not here"):
        convtune.load(tmp_path / "m")
    del manifest["base_encoder"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="does not name the base encoder"):
        convtune.load(tmp_path / "m")


@pytest.mark.parametrize("options, message", [
    ({"mode": "adapter"}, "needs the `adapters` library"),
    ({"mode": "lora", "lora_r": 0}, "--lora-r must be"),
    ({"mode": "lora", "lora_dropout": 1.5}, "--lora-dropout must be"),
    ({"mode": "lora", "target_modules": []}, "--target-modules wants"),
])
def test_bad_adapter_options_are_one_line(options, message):
    with pytest.raises(ConvtuneError, match=message):
        Classifier(**options)


def test_unknown_target_module_is_one_line(tiny_encoder):
    with pytest.raises(ConvtuneError, match="--target-modules q_proj"):
        Classifier(encoder=str(tiny_encoder), mode="lora", target_modules=["q_proj"], epochs=1).fit(*toy_texts(20))


def test_cli_trains_lora_and_merges(tiny_encoder, toy_csv, tmp_path):
    from convtune.cli import main

    common = ["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--epochs", "1",
              "--max-length", "16", "--mode", "lora", "--lora-r", "2", "--target-modules", "query,value"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "convtune.json").read_text())
    assert manifest["model"]["adapter"]["target_modules"] == ["query", "value"]
    assert not (tmp_path / "a" / "encoder").exists()
    assert main([*common, "--merge", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "encoder" / "model.safetensors").is_file()
    assert main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--merge",
                 "--out", str(tmp_path / "c")]) == 2
