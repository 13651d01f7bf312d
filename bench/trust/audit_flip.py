"""Does `convtune audit` find labels flipped on purpose?

    .venv/bin/python -m bench.trust.audit_flip --data sst2 --rate 0.05 --seeds 0 1 2 --method tfidf --out bench/trust/audit_flip_tfidf

A copy of the set's training split with `rate` of its labels flipped to another label at random
(seeded; the flip seed is also the audit's fold seed), audited like `convtune audit`: precision
and recall of the top-ranked `rate` share of texts (the most suspect, by self-confidence) and of
cleanlab's flagged set, against the flipped texts. Nothing is written but the results.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from convtune.data.builtin import load_splits
from convtune.data.texts import TextSet
from convtune.experiments.audit import audit


def flipped(data: TextSet, rate: float, seed: int) -> tuple[TextSet, set[int]]:
    rng = random.Random(seed)
    labels = sorted(set(data.labels))
    chosen = set(rng.sample(range(len(data)), round(rate * len(data))))
    noisy = [rng.choice([x for x in labels if x != y]) if i in chosen else y for i, y in enumerate(data.labels)]
    return TextSet(list(data.texts), noisy), chosen


def pr(found: set[int], truth: set[int]) -> dict:
    hit = len(found & truth)
    return {"found": len(found), "precision": hit / max(1, len(found)), "recall": hit / max(1, len(truth))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="sst2")
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--method", default="tfidf")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    train = load_splits(a.data).train
    rows = []
    for seed in a.seeds:
        noisy, truth = flipped(train, a.rate, seed)
        start = time.perf_counter()
        r = audit(noisy, a.method, seed=seed)
        top = set(r.ranked[: len(truth)].tolist())
        rows.append({"seed": seed, "flipped": len(truth), "seconds": round(time.perf_counter() - start, 1),
                     "top": pr(top, truth), "flagged": pr(set(np.flatnonzero(r.flagged).tolist()), truth)})
        print(json.dumps(rows[-1]), flush=True)
    mean = lambda part, k: float(np.mean([r[part][k] for r in rows]))
    res = {"data": a.data, "train": len(train), "rate": a.rate, "method": a.method, "rows": rows,
           "mean": {p: {k: mean(p, k) for k in ("found", "precision", "recall")} for p in ("top", "flagged")},
           "date": time.strftime("%Y-%m-%d")}
    Path(a.out).with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    m = res["mean"]
    print(f"{a.data} train ({len(train)}), {a.rate:.0%} flipped, {a.method}, seeds {a.seeds}: top {a.rate:.0%} "
          f"precision {m['top']['precision']:.3f} recall {m['top']['recall']:.3f}; cleanlab's flagged set "
          f"({m['flagged']['found']:.0f} texts) precision {m['flagged']['precision']:.3f} recall {m['flagged']['recall']:.3f}")


if __name__ == "__main__":
    main()
