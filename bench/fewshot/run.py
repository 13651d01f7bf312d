"""A handful of labelled texts per class: each recipe on several random draws, one JSON line per run.

    python -m bench run fewshot.run sst2 --n 8 --draws 5 --recipes default,contrastive --out bench/fewshot/fewshot.jsonl

Each draw takes N texts of every class from the set's training split (seeded by the draw); the
model trains on those alone and is scored on the whole official test split. `default` is
`convtune train`'s recipe as it stands (it carves its dev split from the N x C texts);
`contrastive` is `--mode contrastive` with the CNN head trained for 50 epochs on all N x C
texts, also given as its dev split (the first epoch that fits them is kept);
`contrastive-linear` the same with a linear head on the mean of the token states;
`contrastive-lr` that head fitted as SetFit fits it, by logistic regression on the tuned
encoder's mean embeddings of all N x C texts. The TF-IDF baseline runs on
the same draws. Seconds are wall time of fit.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from bench.common import append_row
from convtune.data.builtin import load_splits

# recipe -> Classifier keywords (and whether fit gets the training texts as its dev split)
RECIPES = {
    "default": ({}, False),
    "contrastive": ({"mode": "contrastive", "epochs": 50, "patience": 50, "batch_size": 16}, True),
    "contrastive-linear": ({"mode": "contrastive", "head": "linear", "head_config": {"pooling": "mean"}, "epochs": 50,
                            "patience": 50, "batch_size": 16}, True),
    # SetFit's recipe: contrastive stage, then a logistic regression on the mean embeddings as the head
    "contrastive-lr": ({"mode": "contrastive", "head": "linear", "head_config": {"pooling": "mean"}}, True),
    "tfidf": (None, False),
}


def draw(texts: list[str], labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """n texts of every class, chosen at random (seeded), in a shuffled order."""
    rng = random.Random(seed)
    by = {}
    for t, y in zip(texts, labels):
        by.setdefault(y, []).append(t)
    rows = [(t, y) for y in sorted(by) for t in rng.sample(by[y], n)]
    rng.shuffle(rows)
    return [t for t, _ in rows], [y for _, y in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=8, help="texts per class")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--recipes", default="default,contrastive,tfidf")
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    splits = load_splits(a.data, seed=42)
    for d in range(a.draws):
        texts, labels = draw(splits.train.texts, splits.train.labels, a.n, seed=d)
        for recipe in a.recipes.split(","):
            options, dev_is_train = RECIPES[recipe]
            if options is None:
                from convtune.estimators.tfidf import TfidfClassifier

                clf = TfidfClassifier()
            else:
                from convtune import Classifier

                clf = Classifier(encoder=a.encoder, seed=d, blend="none", **options)
            start = time.perf_counter()
            clf.fit(texts, labels, *((texts, labels) if dev_is_train else ()))
            seconds = time.perf_counter() - start
            m = clf.evaluate(splits.test.texts, splits.test.labels)
            append_row(Path(a.out), {"data": a.data, "n": a.n, "draw": d, "recipe": recipe, "encoder": a.encoder,
                                     "test_accuracy": m["accuracy"], "test_macro_f1": m["macro_f1"],
                                     "train_seconds": round(seconds, 1)})


if __name__ == "__main__":
    main()
