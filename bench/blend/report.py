"""The blend's results page from the rows of bench/blend/run.py, with the notes kept beside it.

    python -m bench.blend.report bench/blend/blend.jsonl docs/results/blend.md

One row per data set, encoder, mode and long-text rule: mean ± sd over seeds (sample sd) of the
test score of the neural model alone, the TF-IDF model alone, the blend at its dev weight and the
default (`--blend auto`), the weights, how many seeds auto kept the blend, and seconds. The
page's notes live in bench/blend/notes.md and are appended unchanged: regenerating the table
never loses them.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from bench.common import notes, read_rows
from bench.common import pm as cell  # mean ± sd over seeds

NOTES = Path(__file__).parent / "notes.md"  # appended unchanged


def table(rows: list[dict]) -> list[str]:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["data"], r["encoder"], r["mode"], r["long_text"], r["max_length"], r["train"])].append(r)
    out = ["| data | encoder | mode | long text | train | seeds | metric | neural alone | TF-IDF alone | blend | "
           "default (auto) | weight | auto kept | train s | TF-IDF s | predict: blend / neural texts/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (data, encoder, mode, rule, length, train), rs in sorted(groups.items()):
        key = "micro_f1" if "micro_f1" in rs[0]["blend"] else "accuracy"
        weights = [r["weight"] if not isinstance(r["weight"], list) else sum(r["weight"]) / len(r["weight"])
                   for r in rs]
        out.append(" | ".join([
            f"| {data}", encoder, mode, f"{rule} ({length})", str(train), str(len(rs)), key.replace("_", "-"),
            *(cell([r[p][key] for r in rs]) for p in ("neural", "lexical", "blend", "default")),
            cell(weights, 1.0), f"{sum(r['auto_keeps'] for r in rs)}/{len(rs)}",
            cell([r["train_seconds"] for r in rs], 1.0, 0), cell([r["lexical_seconds"] for r in rs], 1.0, 1),
            _speed(rs)]) + " |")
    return out


def _speed(rs: list[dict]) -> str:
    timed = [r["blend_texts_per_s"] / r["neural_texts_per_s"] for r in rs if "blend_texts_per_s" in r]
    return cell(timed, 1.0) if timed else "–"


def main(source: str, page: str) -> None:
    rows = read_rows(Path(source))
    text = ["# A lexical model blended into the neural one", "",
            "Test split, mean ± sd over seeds (%; sample sd). `default (auto)` is what `convtune train` gives: the "
            "blend where auto's dev rule keeps it, else the neural model alone. Rows: `bench/blend/blend.jsonl`, "
            "made by `python -m bench.blend.run`; this page by `python -m bench.blend.report bench/blend/blend.jsonl "
            "docs/results/blend.md`.", "", *table(rows), ""]
    text.append(notes(NOTES))
    Path(page).write_text("\n".join(text), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
