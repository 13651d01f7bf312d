"""Peak memory and time of a frozen-mode run on a large set (default: THUCNews, 180,000 titles).

    .venv/bin/python -m bench.memory.frozen_memory [--data thucnews] [--epochs 2] [--out bench/memory]

Runs `convtune train --mode frozen` in a child process with a fresh token-state cache, twice
(cold cache, then warm), and reports each child's peak resident memory (ru_maxrss), wall
time, cache size on disk and test accuracy. Writes OUT/frozen_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import run_child


def _measured(cmd: list[str]) -> dict:
    child = run_child(cmd)
    return {"wall_seconds": child["seconds"], "peak_rss_mb": child["peak_rss_mb"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="thucnews")
    p.add_argument("--encoder", default="minilm-l6")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--out", default="bench/memory")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="convtune-mem-"))
    convtune = str(Path(sys.executable).with_name("convtune"))
    base = [convtune, "train", "--data", a.data, "--encoder", a.encoder, "--mode", "frozen",
            "--epochs", str(a.epochs), "--max-length", str(a.max_length), "--cache-dir", str(work / "cache")]
    try:
        cold = _measured(base + ["--out", str(work / "cold")])
        cache_bytes = sum(f.stat().st_size for f in (work / "cache").rglob("shard-*"))
        warm = _measured(base + ["--out", str(work / "warm")])
        metrics = json.loads((work / "warm" / "metrics.json").read_text())
        cold_metrics = json.loads((work / "cold" / "metrics.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"data": a.data, "encoder": a.encoder, "epochs": a.epochs, "max_length": a.max_length,
           "train_size": metrics["train_size"], "cache_mb": cache_bytes / 1e6, "cold": cold, "warm": warm,
           "cold_train_seconds": cold_metrics["train_seconds"], "warm_train_seconds": metrics["train_seconds"],
           "test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"]}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frozen_memory.json").write_text(json.dumps(res, indent=2) + "\n")
    md = (f"# Frozen mode on {a.data} ({res['train_size']} training texts, {a.encoder}, max length "
          f"{a.max_length}, {a.epochs} epochs)\n\n"
          "| run | wall s | train s | peak RSS MB |\n|---|---|---|---|\n"
          f"| cold cache (encoder runs once per text) | {cold['wall_seconds']:.0f} | {res['cold_train_seconds']:.0f} | "
          f"{cold['peak_rss_mb']:.0f} |\n"
          f"| warm cache | {warm['wall_seconds']:.0f} | {res['warm_train_seconds']:.0f} | {warm['peak_rss_mb']:.0f} |\n\n"
          f"Cache on disk: {res['cache_mb']:.0f} MB (fp16). Test accuracy {res['test_accuracy']:.4f}, "
          f"macro-F1 {res['test_macro_f1']:.4f}.\n")
    (out / "frozen_memory.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
