"""The selection table for a mode's default recipe (issue 22, item 7): candidates x data sets.

    .venv/bin/python bench/issue21.py sst2 --mode frozen --seeds 42 --extra "--epochs 10" --out bench/defaults_frozen.jsonl
    ... (each candidate on each set) ...
    .venv/bin/python bench/defaults_report.py bench/defaults_frozen.jsonl [SEED, default 42]

Prints a markdown table: each candidate's dev macro-F1 on every set, their mean (the choice is
the highest mean), and test accuracy for the record only (never used to choose).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main() -> None:
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 42  # the selection seed; other seeds are checks
    rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r["seed"] == seed]
    sets = list(dict.fromkeys(r["data"] for r in rows))
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
