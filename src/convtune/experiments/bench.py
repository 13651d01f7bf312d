"""`convtune bench`: convtune's speed on this machine, each job in its own process.

Fine-tuning (one process, then two under torchrun with the same global batch), frozen mode
with a cold and then a warm token-state cache, prediction over the test split, and how close
each comes to the machine's matrix-multiply peak (MFU). Every job runs in its own child process
(`python -m convtune.experiments.bench JOB ARGS_JSON`), one after the other, so each one's peak
memory (ru_maxrss) is its own and no job warms another's caches in memory. Results go to
`OUT/results.json` and `OUT/results.md`. The side-by-side comparison with Hugging Face's
Trainer and pipeline builds on these jobs and lives in the repository's benchmarks
(`python -m bench run speed.vs_trainer`), so the package does not carry the peer.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from convtune.distributed import current
from convtune.errors import ConvtuneError
from convtune.experiments import mfu

# --------------------------------------------------------------------------- jobs (child side)

def bench_splits(a: dict):
    """The splits every job reads: given dev / test files, or the data set's own split."""
    from convtune.data.builtin import load_splits
    from convtune.data.splits import subsample

    s = load_splits(a["data"], a.get("dev"), a.get("test"), seed=a["seed"])
    s.train = subsample(s.train, a.get("train_limit"), a["seed"])
    return s


def bench_lr(a: dict) -> float:
    from convtune.modeling.encoders import default_lr

    return a["lr"] if a.get("lr") is not None else default_lr(a["encoder"])


def bench_device(a: dict):
    from convtune.runtime import resolve_device

    return resolve_device(a.get("device") or "auto")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def accuracy_scores(y_true: list[str], y_pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"test_accuracy": float(accuracy_score(y_true, y_pred)),
            "test_macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


def job_convtune_train(a: dict) -> dict:
    """convtune fit (fine-tune or frozen with the state cache), then the test report."""
    from convtune.estimators.registry import make_estimator

    s = bench_splits(a)
    clf = make_estimator(a["head"], encoder=a["encoder"], mode=a["mode"], max_length=a["max_length"],
                         epochs=a["epochs"], batch_size=a["batch_size"], lr=bench_lr(a), seed=a["seed"],
                         precision=a.get("precision"), cache=a.get("cache"),
                         device=a.get("device"))
    start = time.perf_counter()
    clf.fit(s.train.texts, s.train.labels, s.dev.texts, s.dev.labels)
    fit_seconds = time.perf_counter() - start
    pred = clf.predict(s.test.texts)
    wall = time.perf_counter() - start
    if a.get("save"):
        clf.save(a["save"], overwrite=True)
    r = clf.result_
    epochs_run = len(r.history)
    first_epoch = (r.cache_seconds or 0.0) + r.history[0]["seconds"]
    return {"train_seconds": fit_seconds, "wall_seconds": wall, "cache_seconds": r.cache_seconds,
            "first_epoch_seconds": first_epoch,
            "mean_epoch_seconds": float(np.mean([h["seconds"] for h in r.history])), "epochs_run": epochs_run, "best_epoch": r.best_epoch,
            "samples_per_s": epochs_run * len(s.train) / fit_seconds, "train_size": len(s.train),
            "precision": r.precision, "processes": current().world_size, **accuracy_scores(s.test.labels, pred)}


def timed_predict(fn, texts: list[str]) -> dict:
    fn(texts[:64])  # warm-up: first-call allocations and kernel selection
    start = time.perf_counter()
    fn(texts)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "texts_per_s": len(texts) / seconds, "texts": len(texts)}


def job_convtune_predict(a: dict) -> dict:
    from convtune.estimators.registry import load

    clf = load(a["model"], a.get("device"))
    return timed_predict(lambda t: clf.predict(t), bench_splits(a).test.texts)


def job_flops(a: dict) -> dict:
    """FLOPs per text of convtune's CNN model, training and prediction."""
    from convtune.modeling.encoders import resolve_encoder
    from convtune.modeling.model import ModelConfig, build_model
    from convtune.runtime import set_threads

    set_threads()
    s = bench_splits(a)
    labels = sorted(set(s.train.labels))
    ours, tokenizer, _ = build_model(ModelConfig(encoder=a["encoder"], labels=labels, head="cnn",
                                                 max_length=a["max_length"]), resolve_encoder(a["encoder"]))
    train_b, test_b = mfu.flop_batches(tokenizer, s, a)
    ours.train()
    out = {"convtune_train": mfu.flops_per_text(ours, train_b, True)}
    ours.eval()
    return out | {"convtune_predict": mfu.flops_per_text(ours, test_b, False)}


JOBS = {"convtune_train": job_convtune_train, "convtune_predict": job_convtune_predict,
        "peak": mfu.job_peak, "flops": job_flops}


def child_main(jobs: dict, job: str, args_json: str) -> None:
    """A child's side of `run_job`: run `jobs[job]`, print its result (or its one-line error)."""
    from convtune import distributed

    try:
        distributed.init("cpu")  # under torchrun (the 2-process job): join the group
        out = jobs[job](json.loads(args_json))
    except ConvtuneError as e:  # the parent repeats it as one line, not as a child's traceback
        print(f"BENCH-ERROR {e}")
        sys.exit(2)
    out["peak_rss_mb"] = _peak_mb()  # rank 0's, under torchrun
    if distributed.current().is_main:
        print("BENCH-RESULT " + json.dumps(out))
    distributed.shutdown()


# --------------------------------------------------------------------------- orchestration (parent)

def run_job(job: str, args: dict, log, nproc: int = 1, module: str = "convtune.experiments.bench") -> dict:
    """Run one job of `module` (whose main calls `child_main`) in a child process (nproc > 1:
    torchrun's); return its result dict (plus its wall time)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    cmd = [sys.executable, *launcher, "-m", module, job, json.dumps(args)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    log(f"[{job}] {time.perf_counter() - start:.0f} s")
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT ")]
    errors = [x.removeprefix("BENCH-ERROR ") for x in proc.stdout.splitlines() if x.startswith("BENCH-ERROR ")]
    if errors:
        raise ConvtuneError(f"bench job {job}: {errors[-1]}")
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"bench job {job} failed (exit {proc.returncode}): " + " | ".join(tail))
    result = json.loads(lines[-1][len("BENCH-RESULT "):])
    result["process_seconds"] = time.perf_counter() - start
    return result


def run_bench(data: str = "sst2", encoder: str = "minilm-l6", epochs: int | None = None,
              frozen_epochs: int | None = None, batch_size: int = 32, lr: float | None = None, max_length: int = 128,
              seed: int = 42, train_limit: int | None = None, out_dir: str = "bench-results", device: str = "auto",
              log=print, keep_model: str | None = None) -> dict:
    """Run every job, write `out_dir/results.json` and `results.md`; return the results. Epochs
    default to `convtune train`'s, so the bench's rows are what train gives. `keep_model`: where
    to keep the fine-tuned model (a comparison predicts with it afterwards)."""
    from convtune.config import TrainConfig

    epochs, frozen_epochs = epochs or TrainConfig().epochs, frozen_epochs or TrainConfig().epochs
    common = {"data": data, "encoder": encoder, "batch_size": batch_size, "lr": lr if lr is not None else bench_lr({"encoder": encoder}),
              "max_length": max_length, "seed": seed, "train_limit": train_limit, "device": device}
    with tempfile.TemporaryDirectory(prefix="convtune-bench-") as work:
        model = keep_model or work + "/ct-model"
        res: dict = {"config": dict(common, epochs=epochs, frozen_epochs=frozen_epochs), "machine": _machine()}
        res["convtune_finetune"] = run_job("convtune_train", dict(
            common, epochs=epochs, head="cnn", mode="finetune", save=model), log)
        # The same global batch on 2 processes (torchrun, gloo): half the batch each.
        res["convtune_ddp"] = run_job("convtune_train", dict(
            common, epochs=epochs, head="cnn", mode="finetune", batch_size=max(1, batch_size // 2)), log, nproc=2)
        frozen = dict(common, epochs=frozen_epochs, head="cnn", mode="frozen", cache=work + "/cache")
        res["convtune_frozen_cold"] = run_job("convtune_train", frozen, log)
        res["convtune_frozen_warm"] = run_job("convtune_train", frozen, log)
        res["convtune_predict"] = run_job("convtune_predict", dict(common, model=model), log)
        res["peak"] = run_job("peak", {"device": device}, log)
        res["flops"] = run_job("flops", common, log)
    res["ratios"] = _ratios(res)
    res["mfu"] = mfu.mfu_table(res, MFU_ROWS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(render_markdown(res), encoding="utf-8")
    return res


# MFU rows: (name, FLOPs key, result key, rate key); the precision is the fine-tune's.
MFU_ROWS = [("convtune fine-tune", "convtune_train", "convtune_finetune", "samples_per_s"),
            ("convtune predict", "convtune_predict", "convtune_predict", "texts_per_s")]


def _machine() -> dict:
    import platform

    import torch

    from convtune.runtime import cpu_has_bf16

    return {"cpus": len(os.sched_getaffinity(0)), "torch": torch.__version__, "python": platform.python_version(),
            "bf16_cpu": cpu_has_bf16(), "date": time.strftime("%Y-%m-%d")}


def _ratios(r: dict) -> dict:
    ft, cold, warm = r["convtune_finetune"], r["convtune_frozen_cold"], r["convtune_frozen_warm"]
    return {
        "frozen_warm_epoch_speedup_vs_cold_first_epoch": cold["first_epoch_seconds"] / warm["mean_epoch_seconds"],
        "frozen_warm_fit_speedup_vs_cold_fit": cold["train_seconds"] / warm["train_seconds"],
        "ddp_samples_per_s_vs_one_process": r["convtune_ddp"]["samples_per_s"] / ft["samples_per_s"],
        "ddp_accuracy_minus_one_process": r["convtune_ddp"]["test_accuracy"] - ft["test_accuracy"],
    }


def training_rows(r: dict) -> list[tuple[str, dict, int]]:
    """(name, result, epochs asked) of each training run, for the table."""
    c = r["config"]
    return [("convtune fine-tune, CNN head", r["convtune_finetune"], c["epochs"]),
            (f"convtune fine-tune, 2 processes (torchrun), batch {max(1, c['batch_size'] // 2)} each",
             r["convtune_ddp"], c["epochs"]),
            ("convtune frozen, CNN head, cold cache", r["convtune_frozen_cold"], c["frozen_epochs"]),
            ("convtune frozen, CNN head, warm cache", r["convtune_frozen_warm"], c["frozen_epochs"])]


def header(r: dict, title: str) -> list[str]:
    c, m = r["config"], r["machine"]
    return [f"# {title}: {c['data']}, encoder {c['encoder']}", "",
            f"{m['cpus']} CPU cores, torch {m['torch']}, bf16 CPU: {m['bf16_cpu']}, {m['date']}. Batch "
            f"{c['batch_size']}, lr {c['lr']}, max length {c['max_length']}, seed {c['seed']}"
            + (f", train limit {c['train_limit']}" if c.get("train_limit") else "") + ".", ""]


def training_table(rows: list[tuple[str, dict, int]]) -> list[str]:
    lines = ["| run | epochs | train s | wall s (with test) | samples/s | peak RSS MB | test acc | test macro-F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, x, ep in rows:
        lines.append(f"| {name} | {x.get('epochs_run', ep)} | {x['train_seconds']:.1f} | "
                     f"{x.get('wall_seconds', x['process_seconds']):.1f} | {x['samples_per_s']:.1f} | "
                     f"{x['peak_rss_mb']:.0f} | {x['test_accuracy']:.4f} | {x['test_macro_f1']:.4f} |")
    return lines


def predict_row(name: str, x: dict) -> str:
    return f"| {name} | {x['texts']} | {x['seconds']:.2f} | {x['texts_per_s']:.1f} | {x['peak_rss_mb']:.0f} |"


def convtune_ratio_lines(q: dict) -> list[str]:
    return [f"- frozen, warm cache: one epoch is **{q['frozen_warm_epoch_speedup_vs_cold_first_epoch']:.1f}x** "
            f"faster than the cold run's first epoch (cache fill + epoch 1); the whole warm fit is "
            f"{q['frozen_warm_fit_speedup_vs_cold_fit']:.1f}x faster than the cold fit",
            f"- 2 processes (torchrun, same global batch) vs 1: **{q['ddp_samples_per_s_vs_one_process']:.2f}x** "
            f"samples/s, test accuracy {q['ddp_accuracy_minus_one_process'] * 100:+.2f} points"]


def render_markdown(r: dict) -> str:
    lines = [*header(r, "convtune bench"), "## Training", "", *training_table(training_rows(r)),
             "", "## Prediction (test set)", "", "| predictor | texts | seconds | texts/s | peak RSS MB |",
             "|---|---|---|---|---|", predict_row("convtune predict", r["convtune_predict"]),
             "", "## Ratios (same run)", "", *convtune_ratio_lines(r["ratios"]), ""]
    return "\n".join(lines + mfu_lines(r))


def mfu_lines(r: dict) -> list[str]:
    p = r["peak"]
    lines = ["## How close to the limit (MFU)", "",
             f"Matrix-multiply peak on {p['device']} (1024 x 1024 products, torch.nn.functional.linear): fp32 {p['fp32'] / 1e9:.0f} GFLOP/s, "
             f"bf16 {p['bf16'] / 1e9:.0f} GFLOP/s. Model FLOPs per text counted with torch.utils.flop_counter on "
             "length-bucketed batches (training: forward + backward).", "",
             "| side | precision | GFLOP per text | texts/s | GFLOP/s reached | MFU |", "|---|---|---|---|---|---|"]
    for name, m in r["mfu"].items():
        lines.append(f"| {name} | {m['precision']} | {m['gflops_per_text']:.3f} | {m['texts_per_s']:.1f} | "
                     f"{m['achieved_gflops']:.1f} | {m['mfu'] * 100:.1f}% |")
    return lines + [""]


if __name__ == "__main__":
    child_main(JOBS, sys.argv[1], sys.argv[2])
