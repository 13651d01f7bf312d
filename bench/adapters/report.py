"""The adapter runs (bench/adapters/run.py's JSON lines) as a markdown table, mean ± sd over seeds.

    python -m bench.adapters.report bench/adapters/adapters.jsonl docs/results/adapters.md
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from bench.common import notes, read_rows
from bench.common import pm as _pm  # mean ± sd over seeds


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    groups = defaultdict(list)
    for r in read_rows(src):
        groups[(r["data"], r["encoder"], r["mode"], r["extra"], r.get("date", "-"), r.get("note"))].append(r)
    lines = ["# Adapters against full fine-tuning", "",
             "Each row: `python -m bench.adapters.run DATA --mode MODE --extra 'EXTRA' --seeds S --out bench/adapters/adapters.jsonl` "
             "(`convtune train` in a child process; peak RSS is the child's own). Mean ± sd over seeds.", "",
             "| date | data | encoder | mode | options | seeds | dev accuracy (%) | test accuracy (%) | trained params (share) | model MB | "
             "train s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (data, encoder, mode, extra, date, note), rs in groups.items():
        p = rs[0]["parameters"] or {"trained": 0, "trained_share": 0.0}  # TF-IDF: no network
        options = (extra or "-") + (f" ({note})" if note else "")
        lines.append(f"| {date} | {data} | {encoder} | {mode} | {options} | {len(rs)} | "
                     f"{_pm([r['dev_accuracy'] for r in rs])} | {_pm([r['test_accuracy'] for r in rs])} | {p['trained']:,} ({p['trained_share']:.2%}) | "
                     f"{rs[0]['model_mb']:.1f} | {_pm([r['train_seconds'] for r in rs], 1.0, 0)} | "
                     f"{_pm([r['peak_rss_mb'] for r in rs], 1.0, 0)} |")
    out.write_text("\n".join(lines) + "\n\n" + notes(Path(__file__).parent / "notes.md"), encoding="utf-8")


if __name__ == "__main__":
    main()
