"""Tables of the long-document and multi-label runs (bench/long_and_multilabel/run.py's JSON lines) as docs/results/<set>.md.

    python -m bench.long_and_multilabel.report bench/long_and_multilabel/goemotions.jsonl docs/results/goemotions.md
    python -m bench.long_and_multilabel.report bench/long_and_multilabel/20news.jsonl docs/results/20news.md

The page's notes come from bench/long_and_multilabel/<set>_notes.md, so a regeneration keeps them.
Mean ± sd over the seeds of each model; multi-label sets also get tuned thresholds against a
global 0.5 (paired over seeds: the difference per seed and a paired t-test) and a per-label
F1 table; single-label sets get accuracy, macro-F1 and times per long-text rule.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.common import notes, read_rows
from bench.common import pm as _pm  # mean ± sd over seeds


def _rule(r: dict) -> str | None:
    """The long-text rule with its window settings (the stride None is half a window)."""
    w = r.get("windows")
    if r.get("long_text") != "windows" or not w:
        return r.get("long_text")
    stride = w["stride"] or "half"
    return f"windows (stride {stride}, {w['pool']}, at most {w['max_windows'] or 'all'})"


def _groups(rows: list[dict]) -> dict:
    out = defaultdict(list)
    for r in rows:
        out[(r["model"], _rule(r), r.get("max_length"), r.get("epochs"))].append(r)
    return out


def multilabel(rows: list[dict], name: str) -> list[str]:
    from scipy.stats import ttest_rel

    lines = [f"# {name}: multi-label results", "",
             f"Official splits ({rows[0]['train']} training texts after the dev split, {rows[0]['test']} test); thresholds "
             "tuned per label on dev (each label's best F1), against one global 0.5. Mean ± sd over seeds "
             "(%). Rows: `python -m bench.long_and_multilabel.run " + name + " [--tfidf] --seeds S --out bench/long_and_multilabel/" + name + ".jsonl`.",
             "", "| model | seeds | thresholds | micro-F1 | macro-F1 | samples-F1 | subset acc. | Hamming loss | LRAP | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    tests = []
    for (model, _, _, _), rs in _groups(rows).items():
        for rule in ("tuned", "global_0.5"):
            m = {k: [r[rule][k] for r in rs] for k in rs[0][rule]}
            lines.append(f"| {model} | {len(rs)} | {rule.replace('_', ' ')} | {_pm(m['micro_f1'])} | "
                         f"{_pm(m['macro_f1'])} | {_pm(m['samples_f1'])} | {_pm(m['subset_accuracy'])} | "
                         f"{_pm(m['hamming_loss'], 1, 4)} | {_pm(m['lrap'])} | {_pm([r['train_seconds'] for r in rs], 1, 0)} |")
        diff = [r["tuned"]["macro_f1"] - r["global_0.5"]["macro_f1"] for r in rs]
        if len(rs) > 1 and np.ptp(diff) > 0:
            p = ttest_rel([r["tuned"]["macro_f1"] for r in rs], [r["global_0.5"]["macro_f1"] for r in rs]).pvalue
            test = f"paired t-test over {len(rs)} seeds p = {p:.3g}"
        elif len(rs) == 1:
            test = "one seed: no test over seeds"
        else:  # TF-IDF is deterministic: every seed gives the same model, so there is nothing to test over seeds
            test = "the same for every seed: no test over seeds"
        tests.append(f"- {model}: tuned minus 0.5 macro-F1 per seed "
                     f"{', '.join(f'{d * 100:+.2f}' for d in diff)} points (mean {np.mean(diff) * 100:+.2f}; {test})")
    lines += ["", "Per-label thresholds against a global 0.5 (macro-F1):", "", *tests, ""]
    lines += per_label(rows)
    return lines


def per_label(rows: list[dict]) -> list[str]:
    groups = _groups(rows)
    models = list(groups)
    labels = sorted(rows[0]["per_label_f1"])
    lines = ["Per-label test F1 at the tuned thresholds (mean over seeds, %):", "",
             "| label | " + " | ".join(m[0] for m in models) + " |", "|---|" + "---|" * len(models)]
    for lab in labels:
        cells = [f"{np.mean([r['per_label_f1'][lab] for r in groups[m]]) * 100:.1f}" for m in models]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return lines + [""]


def single_label(rows: list[dict], name: str) -> list[str]:
    lines = [f"# {name}: long documents", "",
             f"Official train / test ({rows[0]['train']} training posts after de-duplication and a 10% dev split, "
             f"{rows[0]['test']} test). "
             "Mean ± sd over seeds (%); train s includes the token-state cache fill of a cold run (the first "
             "seed of a rule), test s is prediction over the test split.", "",
             "| model | long-text rule | max length | epochs | seeds | test accuracy | test macro-F1 | train s | test s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (model, rule, length, epochs), rs in _groups(rows).items():
        lines.append(f"| {model} | {rule or '-'} | {length or '-'} | {epochs or '-'} | {len(rs)} | "
                     f"{_pm([r['accuracy'] for r in rs])} | "
                     f"{_pm([r['macro_f1'] for r in rs])} | {_pm([r['train_seconds'] for r in rs], 1, 0)} | "
                     f"{_pm([r['test_seconds'] for r in rs], 1, 0)} |")
    return lines + [""]


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = read_rows(src)
    name = rows[0]["data"]
    lines = multilabel(rows, name) if "tuned" in rows[0] else single_label(rows, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + notes(Path(__file__).parent / f"{name}_notes.md"), encoding="utf-8")


if __name__ == "__main__":
    main()
