"""Multi-label and long-document figures of issue 20, one JSON line per model and seed.

    python bench/multilabel_sets.py goemotions --seeds 42 --epochs 3 --out bench/goemotions.jsonl
    python bench/multilabel_sets.py goemotions --tfidf --seeds 42 --out bench/goemotions.jsonl

Trains on the set's official train split (dev: its own, else 10% of train by the split seed),
scores the official test split with the thresholds tuned on dev and with a global 0.5 (the
peers' rule), and appends the metrics (micro / macro / samples F1, subset accuracy, Hamming
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
    ap.add_argument("--tfidf", action="store_true", help="the TF-IDF one-vs-rest baseline instead")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    splits = load_splits(a.data, seed=42)
    for seed in [int(s) for s in a.seeds.split(",")]:
        clf = (TfidfClassifier(seed=seed) if a.tfidf
               else Classifier(mode=a.mode, epochs=a.epochs, seed=seed))
        start = time.perf_counter()
        clf.fit(splits.train.texts, splits.train.labels, splits.dev.texts, splits.dev.labels)
        seconds = time.perf_counter() - start
        tuned = clf.evaluate(splits.test.texts, splits.test.labels)
        global_half = clf.evaluate(splits.test.texts, splits.test.labels, threshold=0.5)
        row = {"data": a.data, "model": "tfidf-svm one-vs-rest" if a.tfidf else f"minilm-l6 cnn {a.mode}",
               "seed": seed, "epochs": None if a.tfidf else a.epochs, "train_seconds": round(seconds, 1),
               "train": len(splits.train), "test": len(splits.test),
               "tuned": {k: tuned[k] for k in KEYS}, "global_0.5": {k: global_half[k] for k in KEYS},
               "thresholds": dict(zip(clf.labels_, tuned["thresholds"])),
               "per_label_f1": {lab: v["f1"] for lab, v in tuned["per_class"].items()}}
        with open(a.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("model", "seed", "train_seconds", "tuned", "global_0.5")}), flush=True)


if __name__ == "__main__":
    main()
