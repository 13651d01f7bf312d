"""The selection table for a mode's default recipe: candidates x data sets.

    .venv/bin/python -m bench.adapters.run sst2 --mode frozen --seeds 42 --extra "--epochs 10" --out bench/defaults/frozen.jsonl
    ... (each candidate on each set) ...
    .venv/bin/python -m bench.defaults.report bench/defaults/frozen.jsonl [bench/defaults/baseline.jsonl] [--seed 42]

Prints a markdown table: each candidate's dev macro-F1 on every set, their mean (the choice is
the highest mean), and test accuracy for the record only (never used to choose). Rows of all
files are pooled, so the TF-IDF baseline's cells (`--extra "--head tfidf-svm"`) can sit beside
the candidates; the sets are those of the first file.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--seed", type=int, default=42, help="the selection seed; other seeds are checks")
    a = ap.parse_args()
    rows = []
    for i, name in enumerate(a.files):
        rows += [json.loads(line) | {"first": i == 0} for line in open(name, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r["seed"] == a.seed]
    sets = list(dict.fromkeys(r["data"] for r in rows if r["first"]))
    by = defaultdict(dict)
    for r in rows:  # the last run of a (candidate, set) pair wins
        by[r["extra"]][r["data"]] = r
    scored = []
    for extra, runs in by.items():
        if set(runs) >= set(sets):
            mean = sum(runs[s]["dev_macro_f1"] for s in sets) / len(sets)
            scored.append((mean, extra, runs))
    scored.sort(reverse=True)
    print("| candidate (train options) | " + " | ".join(f"{s} dev macro-F1" for s in sets)
          + " | mean dev macro-F1 | " + " | ".join(f"{s} test acc." for s in sets) + " |")
    print("|---|" + "---|" * (2 * len(sets) + 1))
    for i, (mean, extra, runs) in enumerate(scored):
        mark = "**" if i == 0 else ""
        print(f"| {mark}`{extra}`{mark} | " + " | ".join(f"{runs[s]['dev_macro_f1'] * 100:.2f}" for s in sets)
              + f" | {mark}{mean * 100:.2f}{mark} | " + " | ".join(f"{runs[s]['test_accuracy'] * 100:.2f}" for s in sets)
              + " |")


if __name__ == "__main__":
    main()
