"""Temperature scaling on trained models: test ECE / Brier / NLL before and
after, the predicted labels compared one by one, a reliability diagram per model.

    .venv/bin/python -m bench.trust.calibration --models runs/kept/sst2-finetune-s42-epochs_5:sst2 \
        runs/search-trec/best:trec --out docs/results/calibration

Each model is refitted from scratch: its temperature is removed (`calibrate(method="none")`), the
uncalibrated test probabilities are scored, a temperature is fitted on the model's own dev split
(as `convtune train` does after training) and the test split is scored again. The TF-IDF + SVM
baseline on the same split is scored beside it (its probabilities come from a logistic
regression on its dev scores: calibrated by construction). The run directories are not changed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import convtune
from convtune.data.builtin import model_splits
from convtune.estimators.tfidf import TfidfClassifier
from convtune.experiments.plots import plot_reliability


def one(model: str, data: str, out: Path) -> dict:
    clf = convtune.load(model)
    s = model_splits(model, data)
    clf.calibrate(s.dev.texts, s.dev.labels, method="none")
    before = clf.evaluate(s.test.texts, s.test.labels)
    pred_before = clf.predict(s.test.texts)
    clf.calibrate(s.dev.texts, s.dev.labels)
    after = clf.evaluate(s.test.texts, s.test.labels)
    unchanged = clf.predict(s.test.texts) == pred_before
    if not unchanged:
        raise SystemExit(f"{model}: temperature scaling changed a predicted label")
    cal = after["calibration"]
    name = Path(model).name
    plot_reliability(cal, out / f"reliability-{data}.png", f"{data} test, {name}: T = {cal['temperature']:.3f}")
    tfidf = TfidfClassifier(seed=42).fit(s.train.texts, s.train.labels, s.dev.texts, s.dev.labels)
    base = tfidf.evaluate(s.test.texts, s.test.labels)
    row = {"model": model, "data": data, "test_size": len(s.test.texts), "temperature": cal["temperature"],
           "accuracy": after["accuracy"], "labels_unchanged": unchanged,
           "before": {k: cal["uncalibrated"][k] for k in ("ece", "brier", "nll")},
           "after": {k: cal[k] for k in ("ece", "brier", "nll")},
           "tfidf_svm": {"accuracy": base["accuracy"], **{k: base["calibration"][k] for k in ("ece", "brier", "nll")}}}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", help="DIR:DATASET pairs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", action="store_true", help="only rewrite OUT/results.md from OUT/results.json")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.report:
        rows = json.loads((out / "results.json").read_text())["rows"]
    else:
        if not a.models:
            ap.error("--models is required unless --report")
        rows = [one(*m.rsplit(":", 1), out) for m in a.models]
        (out / "results.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")
    lines = ["| data (test texts) | model | T | accuracy | ECE % before -> after | Brier before -> after | "
             "NLL before -> after | labels unchanged | TF-IDF + SVM: accuracy, ECE %, NLL |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, f, t = r["before"], r["after"], r["tfidf_svm"]
        lines.append(f"| {r['data']} ({r['test_size']}) | `{r['model']}` | {r['temperature']:.3f} | {r['accuracy']:.4f} | "
                     f"{b['ece'] * 100:.2f} -> {f['ece'] * 100:.2f} | {b['brier']:.4f} -> {f['brier']:.4f} | "
                     f"{b['nll']:.4f} -> {f['nll']:.4f} | {r['labels_unchanged']} | "
                     f"{t['accuracy']:.4f}, {t['ece'] * 100:.2f}, {t['nll']:.4f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
