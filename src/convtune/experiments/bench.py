"""`convtune bench`: convtune and its peer, side by side, in one process tree.

The peer is what a user would run instead: Hugging Face `Trainer` +
`AutoModelForSequenceClassification` (linear head on the pooled [CLS]) on the same encoder,
data, epochs, batch size, learning rate, max length and seed, with dynamic padding; for
inference, `transformers.pipeline("text-classification")` over the peer's fine-tuned model.

Every job runs in its own child process (`python -m convtune.experiments.bench JOB ARGS_JSON`), one after
the other, so each one's peak memory (ru_maxrss) is its own and no job warms another's caches
in memory. Results go to `bench/results.json` and `bench/results.md`.
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
from convtune.experiments.peer import bench_device, bench_lr, bench_splits, peer_model

# --------------------------------------------------------------------------- jobs (child side)

def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _scores(y_true: list[str], y_pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"test_accuracy": float(accuracy_score(y_true, y_pred)),
            "test_macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


def job_peer_train(a: dict) -> dict:
    """Trainer + AutoModelForSequenceClassification, then save it for the pipeline job."""
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from convtune.modeling.encoders import resolve_encoder
    from convtune.runtime import set_threads

    set_threads()
    s = bench_splits(a)
    labels = sorted(set(s.train.labels))
    enc_dir = resolve_encoder(a["encoder"])
    tok = AutoTokenizer.from_pretrained(enc_dir)
    model = peer_model(enc_dir, labels, a["seed"])

    class DS(torch.utils.data.Dataset):
        def __init__(self, part):
            self.enc = tok(part.texts, truncation=True, max_length=a["max_length"])
            self.y = [labels.index(x) for x in part.labels]

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                    "labels": self.y[i]}

    args = TrainingArguments(output_dir=a["workdir"] + "/peer-tmp", num_train_epochs=a["epochs"],
                             per_device_train_batch_size=a["batch_size"], per_device_eval_batch_size=64,
                             learning_rate=bench_lr(a), warmup_steps=0.1,  # a float < 1 is a ratio in transformers 5
                             weight_decay=0.01, seed=a["seed"],
                             eval_strategy="no", save_strategy="no", report_to=[], use_cpu=bench_device(a).type == "cpu",
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=DS(s.train),
                      data_collator=DataCollatorWithPadding(tok))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    pred = trainer.predict(DS(s.test)).predictions.argmax(-1)
    trainer.save_model(a["workdir"] + "/peer-model")
    tok.save_pretrained(a["workdir"] + "/peer-model")
    return {"train_seconds": seconds, "samples_per_s": a["epochs"] * len(s.train) / seconds,
            **_scores(s.test.labels, [labels[i] for i in pred])}


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
            "precision": r.precision, "processes": current().world_size, **_scores(s.test.labels, pred)}


def _timed_predict(fn, texts: list[str]) -> dict:
    fn(texts[:64])  # warm-up: first-call allocations and kernel selection
    start = time.perf_counter()
    fn(texts)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "texts_per_s": len(texts) / seconds, "texts": len(texts)}


def job_convtune_predict(a: dict) -> dict:
    from convtune.estimators.registry import load

    clf = load(a["model"], a.get("device"))
    return _timed_predict(lambda t: clf.predict(t), bench_splits(a).test.texts)


def job_pipeline_predict(a: dict) -> dict:
    from transformers import pipeline

    from convtune.runtime import set_threads

    set_threads()
    pipe = pipeline("text-classification", model=a["model"], device=bench_device(a))
    return _timed_predict(lambda t: pipe(t, batch_size=a["pipeline_batch_size"], truncation=True,
                                         max_length=a["max_length"]), bench_splits(a).test.texts)


JOBS = {"peer_train": job_peer_train, "convtune_train": job_convtune_train,
        "convtune_predict": job_convtune_predict, "pipeline_predict": job_pipeline_predict,
        "peak": mfu.job_peak, "flops": mfu.job_flops}


def _child_main(job: str, args_json: str) -> None:
    from convtune import distributed

    try:
        distributed.init("cpu")  # under torchrun (the 2-process job): join the group
        out = JOBS[job](json.loads(args_json))
    except ConvtuneError as e:  # the parent repeats it as one line, not as a child's traceback
        print(f"BENCH-ERROR {e}")
        sys.exit(2)
    out["peak_rss_mb"] = _peak_mb()  # rank 0's, under torchrun
    if distributed.current().is_main:
        print("BENCH-RESULT " + json.dumps(out))
    distributed.shutdown()


# --------------------------------------------------------------------------- orchestration (parent)

def run_job(job: str, args: dict, log, nproc: int = 1) -> dict:
    """Run one job in a child process (nproc > 1: torchrun's); return its result dict (plus its wall time)."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    cmd = [sys.executable, *launcher, "-m", "convtune.experiments.bench", job, json.dumps(args)]
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
              seed: int = 42, train_limit: int | None = None, pipeline_batch_size: int = 32, out_dir: str = "bench",
              device: str = "auto", log=print) -> dict:
    """Run every job, write `out_dir/results.json` and `results.md`; return the results. Epochs
    default to `convtune train`'s (the peer runs as many), so the bench's convtune rows are
    what train gives."""
    from convtune.config import TrainConfig

    epochs, frozen_epochs = epochs or TrainConfig().epochs, frozen_epochs or TrainConfig().epochs
    common = {"data": data, "encoder": encoder, "batch_size": batch_size, "lr": lr if lr is not None else bench_lr({"encoder": encoder}),
              "max_length": max_length, "seed": seed, "train_limit": train_limit, "device": device}
    with tempfile.TemporaryDirectory(prefix="convtune-bench-") as work:
        res: dict = {"config": dict(common, epochs=epochs, frozen_epochs=frozen_epochs,
                                    pipeline_batch_size=pipeline_batch_size),
                     "machine": _machine()}
        res["peer_train"] = run_job("peer_train", dict(common, epochs=epochs, workdir=work), log)
        res["convtune_finetune"] = run_job("convtune_train", dict(
            common, epochs=epochs, head="cnn", mode="finetune", save=work + "/ct-model"), log)
        # The same global batch on 2 processes (torchrun, gloo): half the batch each.
        res["convtune_ddp"] = run_job("convtune_train", dict(
            common, epochs=epochs, head="cnn", mode="finetune", batch_size=max(1, batch_size // 2)), log, nproc=2)
        frozen = dict(common, epochs=frozen_epochs, head="cnn", mode="frozen", cache=work + "/cache")
        res["convtune_frozen_cold"] = run_job("convtune_train", frozen, log)
        res["convtune_frozen_warm"] = run_job("convtune_train", frozen, log)
        res["pipeline_predict"] = run_job("pipeline_predict", dict(
            common, model=work + "/peer-model", pipeline_batch_size=pipeline_batch_size), log)
        res["convtune_predict"] = run_job("convtune_predict", dict(common, model=work + "/ct-model"), log)
        res["peak"] = run_job("peak", {"device": device}, log)
        res["flops"] = run_job("flops", common, log)
    res["ratios"] = _ratios(res)
    res["mfu"] = mfu.mfu_table(res)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(render_markdown(res), encoding="utf-8")
    return res


def _machine() -> dict:
    import platform

    import torch

    from convtune.runtime import cpu_has_bf16

    return {"cpus": len(os.sched_getaffinity(0)), "torch": torch.__version__, "python": platform.python_version(),
            "bf16_cpu": cpu_has_bf16(), "date": time.strftime("%Y-%m-%d")}


def _ratios(r: dict) -> dict:
    peer, ft = r["peer_train"], r["convtune_finetune"]
    cold, warm = r["convtune_frozen_cold"], r["convtune_frozen_warm"]
    return {
        "finetune_samples_per_s_vs_peer": ft["samples_per_s"] / peer["samples_per_s"],
        "finetune_accuracy_minus_peer": ft["test_accuracy"] - peer["test_accuracy"],
        "frozen_cold_wall_over_peer_train": cold["wall_seconds"] / peer["train_seconds"],
        "frozen_warm_epoch_speedup_vs_cold_first_epoch": cold["first_epoch_seconds"] / warm["mean_epoch_seconds"],
        "frozen_warm_fit_speedup_vs_cold_fit": cold["train_seconds"] / warm["train_seconds"],
        "predict_texts_per_s_vs_pipeline": r["convtune_predict"]["texts_per_s"] / r["pipeline_predict"]["texts_per_s"],
        "ddp_samples_per_s_vs_one_process": r["convtune_ddp"]["samples_per_s"] / ft["samples_per_s"],
        "ddp_accuracy_minus_one_process": r["convtune_ddp"]["test_accuracy"] - ft["test_accuracy"],
    }


def render_markdown(r: dict) -> str:
    c, q = r["config"], r["ratios"]
    rows = [("peer: Trainer + AutoModelForSequenceClassification (linear)", r["peer_train"], c["epochs"]),
            ("convtune fine-tune, CNN head", r["convtune_finetune"], c["epochs"]),
            (f"convtune fine-tune, 2 processes (torchrun), batch {max(1, c['batch_size'] // 2)} each",
             r["convtune_ddp"], c["epochs"]),
            ("convtune frozen, CNN head, cold cache", r["convtune_frozen_cold"], c["frozen_epochs"]),
            ("convtune frozen, CNN head, warm cache", r["convtune_frozen_warm"], c["frozen_epochs"])]
    lines = [f"# convtune bench: {c['data']}, encoder {c['encoder']}",
             "",
             f"{r['machine']['cpus']} CPU cores, torch {r['machine']['torch']}, bf16 CPU: "
             f"{r['machine']['bf16_cpu']}, {r['machine']['date']}. Batch {c['batch_size']}, lr {c['lr']}, "
             f"max length {c['max_length']}, seed {c['seed']}"
             + (f", train limit {c['train_limit']}" if c.get("train_limit") else "") + ".",
             "",
             "## Training",
             "",
             "| run | epochs | train s | wall s (with test) | samples/s | peak RSS MB | test acc | test macro-F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, x, ep in rows:
        lines.append(f"| {name} | {x.get('epochs_run', ep)} | {x['train_seconds']:.1f} | "
                     f"{x.get('wall_seconds', x['process_seconds']):.1f} | {x['samples_per_s']:.1f} | "
                     f"{x['peak_rss_mb']:.0f} | {x['test_accuracy']:.4f} | {x['test_macro_f1']:.4f} |")
    pp, cp = r["pipeline_predict"], r["convtune_predict"]
    lines += ["", "## Prediction (test set)", "",
              "| predictor | texts | seconds | texts/s | peak RSS MB |", "|---|---|---|---|---|",
              f"| transformers.pipeline (batch {c['pipeline_batch_size']}) | {pp['texts']} | {pp['seconds']:.2f} | "
              f"{pp['texts_per_s']:.1f} | {pp['peak_rss_mb']:.0f} |",
              f"| convtune predict | {cp['texts']} | {cp['seconds']:.2f} | {cp['texts_per_s']:.1f} | "
              f"{cp['peak_rss_mb']:.0f} |",
              "", "## Ratios (same run)", "",
              f"- fine-tune training samples/s vs peer: **{q['finetune_samples_per_s_vs_peer']:.2f}x**; "
              f"test accuracy vs peer: {q['finetune_accuracy_minus_peer'] * 100:+.2f} points",
              f"- frozen, cold cache: total wall time (cache fill + training + test) = "
              f"**{q['frozen_cold_wall_over_peer_train']:.3f}** of the peer's training time",
              f"- frozen, warm cache: one epoch is **{q['frozen_warm_epoch_speedup_vs_cold_first_epoch']:.1f}x** "
              f"faster than the cold run's first epoch (cache fill + epoch 1); the whole warm fit is "
              f"{q['frozen_warm_fit_speedup_vs_cold_fit']:.1f}x faster than the cold fit",
              f"- prediction: **{q['predict_texts_per_s_vs_pipeline']:.2f}x** the pipeline's texts/s",
              f"- 2 processes (torchrun, same global batch) vs 1: **{q['ddp_samples_per_s_vs_one_process']:.2f}x** "
              f"samples/s, test accuracy {q['ddp_accuracy_minus_one_process'] * 100:+.2f} points", ""]
    return "\n".join(lines + _mfu_lines(r))


def _mfu_lines(r: dict) -> list[str]:
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
    _child_main(sys.argv[1], sys.argv[2])
