"""The adapter runs (bench/adapters.py's JSON lines) as a markdown table, mean ± sd over seeds.

    python bench/report_adapters.py bench/adapters.jsonl docs/results/adapters.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from report_long_and_multilabel import _pm, notes  # bench/ is the script's own directory


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    groups = defaultdict(list)
    for line in src.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            groups[(r["data"], r["encoder"], r["mode"], r["extra"], r.get("date", "-"), r.get("note"))].append(r)
    lines = ["# Adapters against full fine-tuning", "",
             "Each row: `python bench/adapters.py DATA --mode MODE --extra 'EXTRA' --seeds S --out bench/adapters.jsonl` "
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
    out.write_text("\n".join(lines) + "\n\n" + notes(out), encoding="utf-8")


if __name__ == "__main__":
    main()
