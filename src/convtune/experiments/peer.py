"""What the bench jobs share: the data they all read, the learning rate, the device, and the
peer's model (Hugging Face's AutoModelForSequenceClassification on the same encoder)."""

from __future__ import annotations


def bench_splits(a: dict):
    from convtune.data.builtin import load_splits
    from convtune.data.splits import subsample

    s = load_splits(a["data"], a.get("dev"), a.get("test"), seed=a["seed"])
    s.train = subsample(s.train, a.get("train_limit"), a["seed"])
    return s


def bench_lr(a: dict) -> float:
    from convtune.modeling.encoders import default_lr

    return a["lr"] if a.get("lr") is not None else default_lr(a["encoder"])


def bench_device(a: dict):
    from convtune.runtime import resolve_device

    return resolve_device(a.get("device") or "auto")


def peer_model(enc_dir, labels: list[str], seed: int):
    """The peer's AutoModelForSequenceClassification, its new linear layer initialised from `seed`.

    Trainer seeds only when it starts, after this layer exists; unseeded, the layer followed
    whatever had used torch's generator earlier in the process.
    """
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(
        enc_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)})
