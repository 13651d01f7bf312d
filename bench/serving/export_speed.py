"""Prediction speed and accuracy of one model through each runtime, side by side in one process.

    python -m bench.serving.export_speed --model runs/sst2 --data sst2 --out bench/serving/export_speed

Exports MODEL to fp32 and int8 ONNX (with the built-in parity check) unless --onnx / --int8
point at existing exports, then predicts the data set's test split with: PyTorch fp32,
PyTorch bf16 autocast (convtune's default where the CPU has bf16), ONNX Runtime fp32 and
ONNX Runtime int8. Each runtime gets a warm-up call, then one timed pass over all texts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def timed(clf, texts: list[str], labels: list[str]) -> dict:
    clf.predict_proba(texts[:64])                       # warm-up: allocations, kernel choice
    t = time.perf_counter()
    pred = clf.predict(texts)
    s = time.perf_counter() - t
    return {"seconds": round(s, 2), "texts_per_second": round(len(texts) / s, 1),
            "accuracy": round(float(np.mean([p == y for p, y in zip(pred, labels)])), 4), "pred": pred}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="sst2")
    ap.add_argument("--onnx", help="existing fp32 export (default: export to MODEL-onnx)")
    ap.add_argument("--int8", help="existing int8 export (default: export to MODEL-onnx-int8)")
    ap.add_argument("--out", default="bench/serving/export_speed")
    a = ap.parse_args()

    from convtune import Classifier, load
    from convtune.data.builtin import model_splits
    from convtune.deploy.export import export_onnx, parity_data

    model = a.model.rstrip("/")
    paths = {"fp32": a.onnx or f"{model}-onnx", "int8": a.int8 or f"{model}-onnx-int8"}
    for kind, path in paths.items():
        if not Path(path).exists():
            export_onnx(model, path, parity_data(model, a.data), int8=kind == "int8")
    test = model_splits(model, a.data).test
    rows = {}
    torch_clf = Classifier.load(model)
    for name, bf16 in (("PyTorch fp32", "fp32"), ("PyTorch bf16 autocast", "auto")):
        torch_clf.runtime.precision = bf16
        rows[name] = timed(torch_clf, test.texts, test.labels)
    rows["ONNX Runtime fp32"] = timed(load(paths["fp32"]), test.texts, test.labels)
    rows["ONNX Runtime int8"] = timed(load(paths["int8"]), test.texts, test.labels)
    ref = rows["PyTorch fp32"]["pred"]
    for r in rows.values():
        r["label_agreement_with_fp32"] = round(float(np.mean([p == q for p, q in zip(r.pop("pred"), ref)])), 4)
        r["speedup_vs_pytorch_fp32"] = round(r["texts_per_second"] / rows["PyTorch fp32"]["texts_per_second"], 2)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"model": model, "data": a.data, "texts": len(test.texts),
                                                    "runtimes": rows}, indent=2) + "\n")
    lines = [f"# Prediction runtimes: {model} on the {a.data} test set ({len(test.texts)} texts, 2 CPU cores)", "",
             "| runtime | seconds | texts/s | vs PyTorch fp32 | test accuracy | labels = fp32 |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {r['seconds']} | {r['texts_per_second']} | {r['speedup_vs_pytorch_fp32']}x "
              f"| {r['accuracy']:.4f} | {r['label_agreement_with_fp32']:.2%} |" for k, r in rows.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
