"""Adapter modes against full fine-tuning, one JSON line per run.

    .venv/bin/python -m bench.adapters.run sst2 --mode lora --seeds 42,43,44 --out bench/adapters/adapters.jsonl
    .venv/bin/python -m bench.adapters.run sst2 --mode finetune --seeds 42 --out bench/adapters/adapters.jsonl

Each run is `convtune train --data SET --mode MODE --seed S` in a child process, so its peak
resident memory (ru_maxrss from os.wait4) is the run's own; the line records test accuracy,
train seconds, peak RSS, the share of parameters trained (head included), the size of the
run directory's model files and the test ECE before / after calibration; the run directory is
kept under runs/kept/. Run nothing else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import append_row, run_child

MODEL_FILES = ("convtune.json", "head.safetensors", "adapter.safetensors", "encoder")


def size_mb(run: Path) -> float:
    """Bytes of the model itself (not metrics, plots): what a user copies to serve it."""
    total = 0
    for name in MODEL_FILES:
        p = run / name
        files = [p] if p.is_file() else list(p.rglob("*")) if p.is_dir() else []
        total += sum(f.stat().st_size for f in files if f.is_file())
    return round(total / 1e6, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--mode", default="lora")
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--extra", default="", help="more train options, e.g. '--lora-r 8 --epochs 3'")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    convtune = str(Path(sys.executable).with_name("convtune"))
    for seed in [int(s) for s in a.seeds.split(",")]:
        work = Path(tempfile.mkdtemp(prefix="convtune-adapters-"))
        cmd = [convtune, "train", "--data", a.data, "--encoder", a.encoder, "--mode", a.mode, "--seed", str(seed),
               *a.extra.split(), "--out", str(work / "run")]
        child = run_child(cmd, quiet=True)
        m = json.loads((work / "run" / "metrics.json").read_text())
        manifest = json.loads((work / "run" / "convtune.json").read_text())
        row = {"data": a.data, "encoder": a.encoder, "mode": a.mode, "seed": seed, "extra": a.extra,
               "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
               "dev_accuracy": m["dev"]["accuracy"], "dev_macro_f1": m["dev"]["macro_f1"],
               "train_seconds": m["train_seconds"],
               "wall_seconds": round(child["seconds"], 1), "peak_rss_mb": child["peak_rss_mb"],
               "parameters": manifest["training"].get("parameters"), "model_mb": size_mb(work / "run"),
               "best_epoch": m["best_epoch"], "command": " ".join(cmd[1:-2]),
               "date": time.strftime("%Y-%m-%d")}
        cal = m["test"].get("calibration")
        if cal:  # test ECE with and without the temperature fitted on dev
            row |= {"test_ece": cal["ece"], "test_ece_uncalibrated": cal.get("uncalibrated", cal)["ece"],
                    "temperature": cal.get("temperature")}
        keep = Path("runs/kept") / re.sub(r"[^A-Za-z0-9.]+", "_", f"{a.data}-{a.mode}-s{seed}-{a.extra}").strip("_")
        shutil.rmtree(keep, ignore_errors=True)  # the last run of a cell is kept (runs/ is not in git)
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work / "run"), keep)
        shutil.rmtree(work, ignore_errors=True)
        append_row(Path(a.out), row)


if __name__ == "__main__":
    main()
