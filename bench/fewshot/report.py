"""The few-shot results page from bench/fewshot/run.py's rows, with the notes kept beside them.

    python -m bench.fewshot.report bench/fewshot/fewshot.jsonl docs/results/fewshot.md
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from bench.common import notes, pm, read_rows

NAMES = {"contrastive-lr": "contrastive, linear head by logistic regression (the small-data recipe)",
         "contrastive-linear": "contrastive, linear head on the mean, 50 epochs",
         "contrastive": "contrastive, CNN head, 50 epochs",
         "default": "fine-tune, CNN head, 5 epochs, dev carved from the texts (Classifier's defaults)",
         "tfidf": "TF-IDF + linear SVM"}


def main(source: str, page: str) -> None:
    groups = defaultdict(list)
    for r in read_rows(Path(source)):
        groups[(r["data"], r["n"], r["encoder"], r["recipe"])].append(r)
    lines = ["# A handful of labelled texts per class", "",
             "Each draw takes N training texts of every class at random (seeded by the draw); the whole official "
             "test split scores it. Test accuracy, mean ± sd over draws (%), each draw's figure, and fit seconds. "
             f"Rows: `bench/fewshot/fewshot.jsonl` (`python -m bench run fewshot.run`); this page: "
             f"`python -m bench.fewshot.report bench/fewshot/fewshot.jsonl docs/results/fewshot.md`.", "",
             "| data | N per class | encoder | recipe | draws | test accuracy | per draw | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    order = list(NAMES)
    for (data, n, encoder, recipe), rs in sorted(groups.items(), key=lambda kv: (kv[0][:3], order.index(kv[0][3]))):
        rs = sorted(rs, key=lambda r: r["draw"])
        each = " / ".join(f"{r['test_accuracy'] * 100:.1f}" for r in rs)
        lines.append(f"| {data} | {n} | {encoder} | {NAMES[recipe]} | {len(rs)} | {pm([r['test_accuracy'] for r in rs])} | "
                     f"{each} | {pm([r['train_seconds'] for r in rs], 1.0, 0)} |")
    Path(page).write_text("\n".join(lines) + "\n\n" + notes(Path(__file__).parent / "notes.md"), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
