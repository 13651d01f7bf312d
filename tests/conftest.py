"""Shared fixtures: a tiny random BERT built from a config (no download) and toy data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("CONVTUNE_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))

POSITIVE = ["good", "great", "fine", "nice", "love", "happy", "superb", "best"]
NEGATIVE = ["bad", "awful", "poor", "hate", "sad", "worst", "ugly", "boring"]
NEUTRAL = ["the", "a", "film", "movie", "was", "is", "it", "plot", "and", "very", "this"]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a word-level vocabulary."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + NEUTRAL
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(d)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(d)
    return d


def toy_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Sentences whose label is given by a sentiment word hidden among neutral words."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        pos = i % 2 == 0
        words = rng.choices(NEUTRAL, k=rng.randint(2, 9))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if pos else NEGATIVE))
        texts.append(" ".join(words))
        labels.append("pos" if pos else "neg")
    return texts, labels


@pytest.fixture
def toy_csv(tmp_path) -> Path:
    import csv

    texts, labels = toy_texts(200)
    path = tmp_path / "toy.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
    return path


def require_shared_data(*names: str) -> Path:
    """Skip the calling test, with the reason, when the shared data sets are absent."""
    for name in names:
        if not (SHARED_DATA / name).exists():
            pytest.skip(f"shared data set {name!r} not found under {SHARED_DATA} (set CONVTUNE_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide Llama-style decoder with random weights and no pad token (like GPT)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-llama")
    vocab = ["<unk>", "</s>"] + POSITIVE + NEGATIVE + NEUTRAL
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>").save_pretrained(d)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         eos_token_id=1, bos_token_id=1)
    LlamaModel(config).save_pretrained(d)
    return d


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Token-state caches and converted encoders go to a temporary folder, not the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CONVTUNE_CACHE", str(tmp_path_factory.mktemp("convtune-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_encoder, tmp_path_factory) -> Path:
    """A saved CNN-head classifier on the tiny BERT, trained on toy sentiment (a few seconds)."""
    from convtune import Classifier

    texts, labels = toy_texts(240)
    dev_texts, dev_labels = toy_texts(60, seed=1)
    clf = Classifier(encoder=str(tiny_encoder), head="cnn", epochs=4, batch_size=16, lr=3e-3,
                     head_lr=1e-2, max_length=16, precision="fp32", seed=0,
                     head_config={"kernel_sizes": [2, 3], "num_filters": 16})
    clf.fit(texts, labels, dev_texts, dev_labels)
    d = tmp_path_factory.mktemp("tiny-model") / "model"
    clf.save(d)
    return d


@pytest.fixture(scope="session")
def toy_labelled_csv(tmp_path_factory) -> Path:
    """100 labelled toy sentences (seed 2) as text,label CSV."""
    import csv

    texts, labels = toy_texts(100, seed=2)
    path = tmp_path_factory.mktemp("toy") / "parity.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels))
    return path


def toy_multilabel(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Texts holding any of "pos" (a positive word) and "neg" (a negative word): 0, 1 or 2 labels."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        chosen = [["pos"], ["neg"], ["neg", "pos"], []][i % 4]
        words = rng.choices(NEUTRAL, k=rng.randint(2, 8))
        for lab in chosen:
            words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if lab == "pos" else NEGATIVE))
        texts.append(" ".join(words))
        labels.append(chosen)
    return texts, labels


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of a few kilobytes (tmpfs): writes past it fail with ENOSPC, as on a
    full disk. Needs root (mount); skipped with the reason elsewhere. Returns a function
    `size_kb -> mounted folder`."""
    import subprocess

    mounted = []

    def mount(size_kb: int) -> Path:
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill ({r.stderr.strip()[:120] or 'not root'})")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
