"""Which fine-tuning recipe for SMS spam? Every recipe on several seeded splits.

SMS spam has no official split, and its test split holds 64 spam messages, so one split
cannot rank recipes (one error moves macro-F1 by ~0.004). This runs each recipe on each
split seed (the seed makes the 80/10/10 split and seeds training, as `convtune train --seed S`
does) and ranks recipes by mean **dev** macro-F1; test figures are reported, not used.

    python -m bench.sms.recipes --seeds 1 2 3 4 42 --out bench/sms/recipes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from convtune.data.builtin import load_splits
from convtune.estimators.transformer import Classifier
from convtune.metrics import mean_sd

RECIPES = {
    "3 epochs,patience 2 (old default)": {"epochs": 3, "patience": 2},
    "lr5e-5,head2e-4": {"lr": 5e-5, "head_lr": 2e-4},
    "pool both": {"head_config": {"pooling": "both"}},
    "5 epochs,patience 3 (default)": {},  # the TrainConfig default
    "5 epochs,patience 3,balanced": {"epochs": 5, "patience": 3, "class_weight": "balanced"},
    "8 epochs,patience 3": {"epochs": 8, "patience": 3},
    "last-4 layers": {"layers": 4},  # the head sees a learned mix of the last 4 layers
    "lr 2e-4": {"lr": 2e-4},  # twice the MiniLM default encoder lr
    "batch 16": {"batch_size": 16},  # twice the updates per epoch on a small set
    "label smoothing 0.1": {"label_smoothing": 0.1},  # train loss fell to 4e-5 by epoch 5
    "bf16 off": {"precision": "fp32"},  # does the bf16 autocast speed-up cost accuracy?
    "ema 0.99": {"ema": 0.99},  # dev and the saved model use the weight average
    # The peer of `convtune bench`: HF Trainer + linear head on [CLS], 3 epochs, last epoch kept.
    "peer: Trainer, linear": {"peer": True, "epochs": 3},
}


def run_peer(recipe: dict, seed: int, data: str, dev: str | None = None, test: str | None = None) -> dict:
    """The Trainer peer on the same split (no dev selection: it keeps its last epoch)."""
    from bench.speed.vs_trainer import job_peer_train

    with tempfile.TemporaryDirectory(prefix="sms-peer-") as work:
        r = job_peer_train({"data": data, "dev": dev, "test": test, "seed": seed, "encoder": "minilm-l6", "lr": None,
                            "max_length": 128, "batch_size": 32, "epochs": recipe["epochs"], "workdir": work})
    return {"seed": seed, "best_epoch": recipe["epochs"], "seconds": round(r["train_seconds"], 1),
            "dev_macro_f1": None, "test_macro_f1": r["test_macro_f1"], "test_accuracy": r["test_accuracy"]}


def run(recipe: dict, seed: int, data: str, dev: str | None = None, test: str | None = None) -> dict:
    """One recipe on one split: `data` split by `seed`, or the given dev / test files."""
    if recipe.get("peer"):
        return run_peer(recipe, seed, data, dev, test)
    splits = load_splits(data, dev, test, seed=seed)
    clf = Classifier(seed=seed, **recipe)
    start = time.perf_counter()
    clf.fit(splits.train.texts, splits.train.labels, splits.dev.texts, splits.dev.labels)
    dev = clf.evaluate(splits.dev.texts, splits.dev.labels)
    test = clf.evaluate(splits.test.texts, splits.test.labels)
    return {"seed": seed, "best_epoch": clf.result_.best_epoch, "seconds": round(time.perf_counter() - start, 1),
            "dev_macro_f1": dev["macro_f1"], "test_macro_f1": test["macro_f1"], "test_accuracy": test["accuracy"]}


def table(results: dict[str, list[dict]], seeds: list[int]) -> str:
    head = ("| recipe | mean dev macro-F1 | mean ± sd test macro-F1 | "
            + " | ".join(f"test, split {s}" for s in seeds) + " | mean train s |")
    lines = [head, "|" + "---|" * (4 + len(seeds))]
    for name, rows in results.items():
        by = {r["seed"]: r for r in rows}
        cells = [f"{by[s]['test_macro_f1']:.4f}" if s in by else "–" for s in seeds]
        devs = [r["dev_macro_f1"] for r in rows if r["dev_macro_f1"] is not None]
        tests = [r["test_macro_f1"] for r in rows]
        mean, sd = mean_sd(tests)
        dev = f"{statistics.mean(devs):.4f}" if devs else "–"  # the peer has no dev selection
        lines.append(f"| {name} | {dev} | {mean:.4f} ± {sd:.4f} | " + " | ".join(cells)
                     + f" | {statistics.mean(r['seconds'] for r in rows):.0f} |")
    return "\n".join(lines)


def dev_choice(results: dict[str, list[dict]], seeds: list[int]) -> str:
    """What a search over these recipes would give: on each split the recipe with the best dev
    macro-F1 (ties: the default, else the first listed), scored on that split's test part."""
    default = "5 epochs,patience 3 (default)"
    lines = ["## Choosing the recipe on each split's dev set", "",
             "| split | chosen on dev | dev macro-F1 | recipes tied on dev | test macro-F1 |", "|---|---|---|---|---|"]
    tests = []
    for seed in seeds:
        by = {name: next(r for r in rows if r["seed"] == seed) for name, rows in results.items()
              if rows[0]["dev_macro_f1"] is not None}
        best = max(r["dev_macro_f1"] for r in by.values())
        tied = [name for name, r in by.items() if r["dev_macro_f1"] == best]
        name = default if default in tied else tied[0]
        tests.append(by[name]["test_macro_f1"])
        lines.append(f"| {seed} | {name} | {best:.4f} | {len(tied)} | {tests[-1]:.4f} |")
    summary = "{:.4f} ± {:.4f}".format(*mean_sd(tests)) + f" over {len(seeds)} splits"
    lines += ["", f"Test macro-F1 of the dev choice: {summary}."]
    return "\n".join(lines)


def merge(runs: list[str], out: Path) -> None:
    """One table over several runs of this script (different split seeds), for the recipes
    that were run on every one of their splits."""
    parts = [json.loads(Path(r).with_suffix(".json").read_text())["results"] for r in runs]
    seeds = sorted({row["seed"] for part in parts for rows in part.values() for row in rows})
    merged = {name: [row for part in parts for row in part[name]] for name in parts[0]
              if all(name in part for part in parts)}
    merged = {name: rows for name, rows in merged.items() if sorted(r["seed"] for r in rows) == seeds}
    md = (f"# SMS recipes over {len(seeds)} split seeds\n\n`python {' '.join(sys.argv)}` (no training: "
          f"merges {', '.join(f'`{r}.json`' for r in runs)}; recipes run on every split)\n\n"
          f"{table(merged, seeds)}\n\n{dev_choice(merged, seeds)}\n")
    out.with_suffix(".md").write_text(md)
    print(md)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sms_spam")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 42])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--out", default="bench/sms/recipes")
    p.add_argument("--merge", nargs="+", metavar="RUN", help="no training: one table over these runs' "
                   "JSON files (e.g. bench/sms/recipes bench/sms/recipes_more), recipes run on every split")
    a = p.parse_args(argv)
    if a.merge:
        return merge(a.merge, Path(a.out))
    out = Path(a.out)
    results: dict[str, list[dict]] = {}
    if out.with_suffix(".json").exists():  # resume: keep finished cells
        results = json.loads(out.with_suffix(".json").read_text())["results"]
    for name in a.recipes:
        for seed in a.seeds:
            if any(r["seed"] == seed for r in results.get(name, [])):
                continue
            row = run(RECIPES[name], seed, a.data)
            print(name, row, flush=True)
            results.setdefault(name, []).append(row)
            out.with_suffix(".json").write_text(json.dumps(
                {"command": "python " + " ".join(sys.argv), "data": a.data, "recipes": RECIPES,
                 "results": results}, indent=1))
    md = (f"# SMS recipes over split seeds\n\nAll rows: `python -m bench.sms.recipes --seeds {' '.join(map(str, a.seeds))} "
          f"--out {a.out}` (finished cells are kept; rows were added over several runs). "
          f"Last run: `python {' '.join(sys.argv)}`\n\n{table(results, a.seeds)}\n")
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
