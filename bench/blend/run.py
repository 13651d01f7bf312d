"""The lexical blend against each of its parts, one JSON line per data set, model and seed.

    python -m bench.blend.run 20news --mode frozen --long-text truncate --seeds 42,43,44 --out bench/blend/blend.jsonl
    python -m bench.blend.report bench/blend/blend.jsonl docs/results/blend.md

Trains the neural model with `blend="tfidf"` (the lexical part always fitted), then scores on
the official test split: the neural model alone, the TF-IDF model alone, the blend at its dev
weight, and **the default** (`blend="auto"`): the blend when auto's dev rule keeps it, else the
neural model alone. Auto's rule reads only dev quantities that this run computes, so the default
row is what `convtune train` with `--blend auto` gives for the same seed, without a second
training. Multi-label sets: micro-F1 (the blend's with its thresholds tuned on dev; each part's
at 0.5); single-label: accuracy and macro-F1. Prediction speed over the test split: the neural
part alone against the blend (both parts), one after the other in this process. Run nothing
else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import time

from convtune.data.builtin import load_splits
from convtune.estimators.transformer import Classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--mode", default="finetune", choices=["finetune", "frozen", "lora"])
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--long-text", default="auto", choices=["auto", "truncate", "head-tail", "windows"])
    ap.add_argument("--max-windows", type=int, default=8)
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--train-limit", type=int, help="the first N training texts of a seeded shuffle")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    splits = load_splits(a.data, seed=42)
    train = splits.train
    if a.train_limit:
        from convtune.data.splits import subsample

        train = subsample(train, a.train_limit, 42)
    for seed in [int(s) for s in a.seeds.split(",")]:
        options = {"epochs": a.epochs} if a.epochs else {}
        clf = Classifier(encoder=a.encoder, mode=a.mode, seed=seed, long_text=a.long_text, max_length=a.max_length,
                         max_windows=a.max_windows, blend="tfidf", **options)
        start = time.perf_counter()
        clf.fit(train.texts, train.labels, splits.dev.texts, splits.dev.labels)
        seconds = time.perf_counter() - start
        # One pass of the neural part over test (the encoder is the cost), timed; the TF-IDF part
        # timed on its own; the blend's texts/s is the two together.
        start = time.perf_counter()
        neural = clf.neural_decision_function(splits.test.texts)
        neural_seconds = time.perf_counter() - start
        start = time.perf_counter()
        lexical = clf.lexical_proba(list(splits.test.texts))
        lexical_seconds = time.perf_counter() - start
        blend = clf.score_logits(clf.blended_logits(neural, lexical), splits.test)
        parts = clf.blend_scores(splits.test, neural, lexical)
        key = "micro_f1" if clf.multi_label_ else "accuracy"
        parts["blend"] = {k: blend[k] for k in (key, "macro_f1")}
        n = len(splits.test)
        speed = {"neural_texts_per_s": round(n / neural_seconds, 1),
                 "blend_texts_per_s": round(n / (neural_seconds + lexical_seconds), 1)}
        b = clf.blend_
        row = {"data": a.data, "encoder": a.encoder, "mode": a.mode, "seed": seed,
               "long_text": clf.manifest_["model"]["long_text"], "max_length": clf.max_length_,
               "train": len(train), "test": len(splits.test), "weight": b["weight"], "auto_keeps": b["auto_keeps"],
               "cross_fitted": b["cross_fitted"], **parts,
               "default": parts["blend"] if b["auto_keeps"] else parts["neural"],
               "train_seconds": round(seconds, 1), "lexical_seconds": b["seconds"],
               "test_seconds": round(neural_seconds + lexical_seconds, 1), **speed}
        with open(a.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row))


if __name__ == "__main__":
    main()
