"""Frozen mode's token-state cache: filled once, reused, identical results, atomic shards."""

import numpy as np
import pytest

from convtune import Classifier
from convtune.training.state_cache import StateStore, cache_info, clear_cache, text_key

from ..conftest import toy_texts


def test_store_roundtrip_and_reload(tmp_path):
    store = StateStore(tmp_path, "enc-L8", hidden_size=4)
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((1, 4), np.float32)
    ka, kb = text_key([1, 2, 3]), text_key([5])
    assert store.missing([ka, kb, ka]) == [0, 1]
    store.write_shard([ka, kb], [a, b])
    store.close()
    again = StateStore(tmp_path, "enc-L8", hidden_size=4)
    assert again.missing([ka, kb]) == []
    np.testing.assert_array_equal(again.read(ka), a.astype(np.float16))
    h, mask = again.batch([kb, ka])
    assert h.shape == (2, 3, 4) and mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert float(h[0, 1:].abs().sum()) == 0.0
    again.close()
    info = cache_info(tmp_path)
    assert info[0]["texts"] == 2
    assert clear_cache(tmp_path) > 0 and not (tmp_path / "enc-L8").exists() and tmp_path.is_dir()


def test_clear_removes_only_what_stores_wrote(tmp_path, capsys):
    # `cache clear` used to shutil.rmtree the root: `--cache-dir .` (or "~", or "/") deleted
    # whatever was there. Now only store files go, and store folders once they are empty.
    from convtune.cli import main

    root = tmp_path / "home"
    store = StateStore(root, "enc-abc-L8", hidden_size=4)
    store.write_shard([text_key([1])], [np.ones((2, 4), np.float32)])
    store.close()
    other = StateStore(root, "enc-def-L16-k2", hidden_size=4).dir
    (other / "notes.txt").write_text("mine")                  # a user's file inside a store folder
    (root / "thesis.tex").write_text("do not delete")         # a user's files next to the stores
    (root / "project").mkdir()
    (root / "project" / "meta.json").write_text('{"hidden_size": 4, "dtype": "float16"}')
    (root / "project" / "shard-0123456789ab.f16").write_bytes(b"data")  # not a store name
    (root / "encoders").mkdir()                               # converted encoders are kept
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "cleared 2 store(s)" in capsys.readouterr().out
    assert not store.dir.exists()
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert (root / "thesis.tex").read_text() == "do not delete"
    assert sorted(p.name for p in (root / "project").iterdir()) == ["meta.json", "shard-0123456789ab.f16"]
    assert (root / "encoders").is_dir()
    assert cache_info(root) == []


def test_cache_info_on_a_file_or_missing_folder_lists_nothing(tmp_path):
    (tmp_path / "f").write_text("x")
    assert cache_info(tmp_path / "f") == [] and cache_info(tmp_path / "none") == []
    assert clear_cache(tmp_path / "f") == 0 and (tmp_path / "f").exists()


def test_unindexed_shard_is_ignored(tmp_path):
    store = StateStore(tmp_path, "s", hidden_size=2)
    (store.dir / "shard-dead.f16").write_bytes(b"\0" * 8)  # data without an index: a crash mid-fill
    (store.dir / ".shard-x.f16.tmp").write_bytes(b"\0" * 8)
    assert StateStore(tmp_path, "s", hidden_size=2).entries == {}


def test_frozen_training_fills_then_reuses_cache(tiny_encoder, tmp_path):
    texts, labels = toy_texts(120)
    dev = toy_texts(40, seed=1)
    common = dict(encoder=str(tiny_encoder), mode="frozen", epochs=3, batch_size=16, head_lr=1e-2,
                  max_length=16, precision="fp32", cache=str(tmp_path / "cache"))
    first = Classifier(**common).fit(texts, labels, *dev)
    stores = cache_info(tmp_path / "cache")
    assert len(stores) == 1 and stores[0]["texts"] == len(set(texts) | set(dev[0]))
    files = sorted(p.name for p in (tmp_path / "cache").rglob("shard-*"))
    second = Classifier(**common).fit(texts, labels, *dev)  # same seed, warm cache
    assert sorted(p.name for p in (tmp_path / "cache").rglob("shard-*")) == files  # nothing re-encoded
    probe = toy_texts(20, seed=3)[0]
    np.testing.assert_allclose(first.predict_proba(probe), second.predict_proba(probe), atol=1e-5)
    # The cached path trains the same head as the uncached one (states are stored as fp16).
    uncached = Classifier(**dict(common, cache="off")).fit(texts, labels, *dev)
    np.testing.assert_allclose(uncached.predict_proba(probe), first.predict_proba(probe), atol=2e-2)
    assert first.result_.history[-1]["dev_accuracy"] == pytest.approx(
        uncached.result_.history[-1]["dev_accuracy"], abs=0.05)


def test_last_k_layers_with_cache_and_roundtrip(tiny_encoder, tmp_path):
    texts, labels = toy_texts(80)
    clf = Classifier(encoder=str(tiny_encoder), head="cnn+pool", mode="frozen", layers=2, epochs=2,
                     batch_size=16, max_length=16, precision="fp32", cache=str(tmp_path / "cache"))
    clf.fit(texts, labels)
    assert [s["store"].endswith("-k2") for s in cache_info(tmp_path / "cache")] == [True]
    assert clf.model_.head_mix is not None
    clf.save(tmp_path / "m")
    again = Classifier.load(tmp_path / "m")
    assert again.layers == 2 and again.head == "cnn+pool"
    again.runtime.precision = "fp32"  # a runtime setting: not saved with the model
    probe = toy_texts(10, seed=4)[0]
    # The cached (fp16) path and the full model agree closely: same mix, same head.
    np.testing.assert_allclose(again.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)


def test_a_full_disk_while_filling_the_cache_is_one_line_and_leaves_no_temporary_file(tiny_encoder, small_disk):
    disk = small_disk(24)
    texts, labels = toy_texts(200)
    clf = Classifier(encoder=str(tiny_encoder), mode="frozen", epochs=1, max_length=16, precision="fp32",
                     cache=str(disk), head_config={"num_filters": 4})
    from convtune.errors import ConvtuneError

    with pytest.raises(ConvtuneError, match=r"no space left on the device holding .*it needs about [\d.]+ MB, "
                       r"[\d.]+ MB free") as e:
        clf.fit(texts, labels)
    assert "\n" not in str(e.value)
    leftovers = [p.name for p in disk.rglob("*") if p.is_file() and p.name != "meta.json"]
    assert leftovers == []  # the half-written shard is gone
    assert all(store["texts"] == 0 and store["bytes"] == 0 for store in cache_info(disk))
