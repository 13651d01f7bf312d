"""Multi-label and long-document figures, one JSON line per model and seed.

    python -m bench.long_and_multilabel.run goemotions --seeds 42 --epochs 3 --out bench/long_and_multilabel/goemotions.jsonl
    python -m bench.long_and_multilabel.run goemotions --tfidf --seeds 42 --out bench/long_and_multilabel/goemotions.jsonl
    python -m bench.long_and_multilabel.run 20news --mode frozen --long-text head-tail --seeds 42 --out bench/long_and_multilabel/20news.jsonl
    python -m bench.long_and_multilabel.run 20news --mode frozen --long-text windows --seeds 42 --out bench/long_and_multilabel/20news.jsonl

Trains on the set's official train split (dev: its own, else 10% of train by the split seed),
scores the official test split (multi-label: with the thresholds tuned on dev and with a
global 0.5, the peers' rule; single-label: accuracy and macro-F1), and appends the metrics (micro / macro / samples F1, subset accuracy, Hamming
loss, LRAP, train seconds) to --out. Run nothing else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import time

from convtune.data.builtin import load_splits
from convtune.estimators.tfidf import TfidfClassifier
from convtune.estimators.transformer import Classifier

KEYS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "lrap")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--mode", default="finetune", choices=["finetune", "frozen"])
    ap.add_argument("--long-text", default="truncate", choices=["auto", "truncate", "head-tail", "windows"])
    ap.add_argument("--stride", type=int, help="windows: default half a window")
    ap.add_argument("--window-pool", default="mean", choices=["mean", "max"])
    ap.add_argument("--max-windows", type=int, default=8)
    ap.add_argument("--max-length", type=int)
    ap.add_argument("--tfidf", action="store_true", help="the TF-IDF (one-vs-rest) baseline instead")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    splits = load_splits(a.data, seed=42)
    for seed in [int(s) for s in a.seeds.split(",")]:
        clf = (TfidfClassifier(seed=seed) if a.tfidf
               else Classifier(mode=a.mode, epochs=a.epochs, seed=seed, long_text=a.long_text,
                               max_length=a.max_length, stride=a.stride, window_pool=a.window_pool,
                               max_windows=a.max_windows))
        start = time.perf_counter()
        clf.fit(splits.train.texts, splits.train.labels, splits.dev.texts, splits.dev.labels)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        scored = clf.evaluate(splits.test.texts, splits.test.labels)
        row = {"data": a.data, "model": "tfidf-svm" if a.tfidf else f"minilm-l6 cnn {a.mode}", "seed": seed,
               "epochs": None if a.tfidf else a.epochs, "long_text": None if a.tfidf else clf.manifest_["model"]["long_text"],
               "max_length": None if a.tfidf else clf.max_length_, "train_seconds": round(seconds, 1),
               "test_seconds": round(time.perf_counter() - start, 1), "train": len(splits.train),
               "test": len(splits.test),
               "windows": None if a.tfidf else clf.manifest_["model"].get("windows") or None,
               "best_dev_macro_f1": None if a.tfidf else max(e["dev_macro_f1"] for e in clf.result_.history),
               "per_label_f1": {lab: v["f1"] for lab, v in scored["per_class"].items()}}
        if clf.multi_label_:
            global_half = clf.evaluate(splits.test.texts, splits.test.labels, threshold=0.5)
            row |= {"tuned": {k: scored[k] for k in KEYS}, "global_0.5": {k: global_half[k] for k in KEYS},
                    "thresholds": dict(zip(clf.labels_, scored["thresholds"]))}
        else:
            row |= {"accuracy": scored["accuracy"], "macro_f1": scored["macro_f1"]}
        with open(a.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k not in ("per_label_f1", "thresholds")}), flush=True)


if __name__ == "__main__":
    main()
