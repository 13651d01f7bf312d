"""Re-render a `convtune compare` report (report.md, report.html) from its results.json.

    python -m bench.defaults.report_compare docs/results/sst2

The summary is recomputed from the recorded runs with `metrics.mean_sd` (sample sd, ddof=1),
the pictures are the ones the report folder holds (redrawn only by `convtune compare`), and a
report first rendered with the population sd says so once under its table.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from convtune.experiments.compare import summarise
from convtune.experiments.report import render_html, render_markdown, write_pictures

DDOF_NOTE = ("This report was first rendered with the population sd (ddof=0); it is re-rendered from its "
             "recorded runs with the sample sd.")


def main(folder: str) -> None:
    out = Path(folder)
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    res["summary"] = summarise(res["runs"])
    with tempfile.TemporaryDirectory() as tmp:  # which pictures a report has, in its order
        pictures = [p for p in write_pictures(res["runs"], res["summary"], Path(tmp)) if (out / p).is_file()]
    md = render_markdown(res, pictures)
    if res.get("sd") != "ddof=1":
        md = md.replace("Mean ± sample standard deviation over seeds (ddof=1).",
                        f"Mean ± sample standard deviation over seeds (ddof=1). {DDOF_NOTE}", 1)
    (out / "report.md").write_text(md, encoding="utf-8")
    (out / "report.html").write_text(render_html(md, out), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
