"""convtune against what a user would run instead, side by side in one process tree.

    python -m bench run speed.vs_trainer --data sst2 --out bench/speed/vs_trainer
    python -m bench run speed.vs_trainer --data sms_spam --out bench/sms/vs_trainer

The peer: Hugging Face `Trainer` + `AutoModelForSequenceClassification` (linear head on the
pooled [CLS]) on the same encoder, data, epochs, batch size, learning rate, max length and seed,
with dynamic padding; for inference, `transformers.pipeline("text-classification")` over the
peer's fine-tuned model. convtune's side is `convtune bench`'s jobs (fine-tune, 2 processes,
frozen cold / warm, predict, MFU); each job runs in its own child process, one after the other,
so its peak memory is its own. Needs the `bench` extra (accelerate). Writes OUT.json, OUT.md.
Run nothing else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from convtune.experiments import bench as core
from convtune.experiments import mfu

MODULE = "bench.speed.vs_trainer"
ROOT = Path(__file__).resolve().parents[2]  # the repository: where `python -m bench...` finds this module


def peer_model(enc_dir, labels: list[str], seed: int):
    """The peer's AutoModelForSequenceClassification, its new linear layer initialised from `seed`.

    Trainer seeds only when it starts, after this layer exists; unseeded, the layer followed
    whatever had used torch's generator earlier in the process.
    """
    from transformers import AutoModelForSequenceClassification, set_seed

    set_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(
        enc_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)})


def _dataset(tok, part, labels: list[str], max_length: int):
    import torch

    class DS(torch.utils.data.Dataset):
        def __init__(self):
            self.enc = tok(part.texts, truncation=True, max_length=max_length)
            self.y = [labels.index(x) for x in part.labels]

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"input_ids": self.enc["input_ids"][i], "attention_mask": self.enc["attention_mask"][i],
                    "labels": self.y[i]}

    return DS()


def job_peer_train(a: dict) -> dict:
    """Trainer + AutoModelForSequenceClassification, then save it for the pipeline job."""
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from convtune.modeling.encoders import resolve_encoder
    from convtune.runtime import set_threads

    set_threads()
    s = core.bench_splits(a)
    labels = sorted(set(s.train.labels))
    enc_dir = resolve_encoder(a["encoder"])
    tok = AutoTokenizer.from_pretrained(enc_dir)
    model = peer_model(enc_dir, labels, a["seed"])
    args = TrainingArguments(output_dir=a["workdir"] + "/peer-tmp", num_train_epochs=a["epochs"],
                             per_device_train_batch_size=a["batch_size"], per_device_eval_batch_size=64,
                             learning_rate=core.bench_lr(a), warmup_steps=0.1,  # a float < 1 is a ratio in transformers 5
                             weight_decay=0.01, seed=a["seed"],
                             eval_strategy="no", save_strategy="no", report_to=[],
                             use_cpu=core.bench_device(a).type == "cpu", disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(tok, s.train, labels, a["max_length"]),
                      data_collator=DataCollatorWithPadding(tok))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    pred = trainer.predict(_dataset(tok, s.test, labels, a["max_length"])).predictions.argmax(-1)
    trainer.save_model(a["workdir"] + "/peer-model")
    tok.save_pretrained(a["workdir"] + "/peer-model")
    return {"train_seconds": seconds, "samples_per_s": a["epochs"] * len(s.train) / seconds,
            **core.accuracy_scores(s.test.labels, [labels[i] for i in pred])}


def job_pipeline_predict(a: dict) -> dict:
    from transformers import pipeline

    from convtune.runtime import set_threads

    set_threads()
    pipe = pipeline("text-classification", model=a["model"], device=core.bench_device(a))
    return core.timed_predict(lambda t: pipe(t, batch_size=a["pipeline_batch_size"], truncation=True,
                                              max_length=a["max_length"]), core.bench_splits(a).test.texts)


def job_peer_flops(a: dict) -> dict:
    """FLOPs per text of the peer's model (same encoder, linear head), training and prediction."""
    from transformers import AutoTokenizer

    from convtune.modeling.encoders import resolve_encoder
    from convtune.runtime import set_threads

    set_threads()
    s = core.bench_splits(a)
    enc_dir = resolve_encoder(a["encoder"])
    peer = peer_model(enc_dir, sorted(set(s.train.labels)), a["seed"])
    train_b, test_b = mfu.flop_batches(AutoTokenizer.from_pretrained(enc_dir), s, a)
    forward = lambda ids, mask: peer(input_ids=ids, attention_mask=mask).logits  # noqa: E731
    peer.train()
    out = {"peer_train": mfu.flops_per_text(forward, train_b, True)}
    peer.eval()
    return out | {"peer_predict": mfu.flops_per_text(forward, test_b, False)}


JOBS = {"peer_train": job_peer_train, "pipeline_predict": job_pipeline_predict, "peer_flops": job_peer_flops}

MFU_ROWS = [*core.MFU_ROWS, ("peer fine-tune (Trainer)", "peer_train", "peer_train", "samples_per_s"),
            ("peer predict (pipeline)", "peer_predict", "pipeline_predict", "texts_per_s")]


def run(out: Path, pipeline_batch_size: int = 32, log=print, **options) -> dict:
    """`convtune bench`'s jobs, then the peer's; OUT.json and OUT.md side by side."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="convtune-vs-trainer-") as work:
        res = core.run_bench(out_dir=work + "/convtune", log=log, keep_model=work + "/ct-model", **options)
        c = res["config"]
        common = {k: c[k] for k in ("data", "encoder", "batch_size", "lr", "max_length", "seed", "train_limit", "device")}
        res["config"]["pipeline_batch_size"] = pipeline_batch_size
        res["peer_train"] = core.run_job("peer_train", dict(common, epochs=c["epochs"], workdir=work), log, module=MODULE)
        res["pipeline_predict"] = core.run_job("pipeline_predict", dict(
            common, model=work + "/peer-model", pipeline_batch_size=pipeline_batch_size), log, module=MODULE)
        res["flops"] |= core.run_job("peer_flops", common, log, module=MODULE)
    res["ratios"] |= ratios(res)
    res["mfu"] = mfu.mfu_table(res, MFU_ROWS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(render(res), encoding="utf-8")
    return res


def ratios(r: dict) -> dict:
    peer, ft = r["peer_train"], r["convtune_finetune"]
    return {"finetune_samples_per_s_vs_peer": ft["samples_per_s"] / peer["samples_per_s"],
            "finetune_accuracy_minus_peer": ft["test_accuracy"] - peer["test_accuracy"],
            "frozen_cold_wall_over_peer_train": r["convtune_frozen_cold"]["wall_seconds"] / peer["train_seconds"],
            "predict_texts_per_s_vs_pipeline": r["convtune_predict"]["texts_per_s"] / r["pipeline_predict"]["texts_per_s"]}


def render(r: dict) -> str:
    c, q = r["config"], r["ratios"]
    rows = [("peer: Trainer + AutoModelForSequenceClassification (linear)", r["peer_train"], c["epochs"]),
            *core.training_rows(r)]
    lines = [*core.header(r, "convtune against Trainer + pipeline"), "## Training", "", *core.training_table(rows),
             "", "## Prediction (test set)", "", "| predictor | texts | seconds | texts/s | peak RSS MB |", "|---|---|---|---|---|",
             core.predict_row(f"transformers.pipeline (batch {c['pipeline_batch_size']})", r["pipeline_predict"]),
             core.predict_row("convtune predict", r["convtune_predict"]),
             "", "## Ratios (same run)", "",
             f"- fine-tune training samples/s vs peer: **{q['finetune_samples_per_s_vs_peer']:.2f}x**; "
             f"test accuracy vs peer: {q['finetune_accuracy_minus_peer'] * 100:+.2f} points",
             f"- frozen, cold cache: total wall time (cache fill + training + test) = "
             f"**{q['frozen_cold_wall_over_peer_train']:.3f}** of the peer's training time",
             *core.convtune_ratio_lines(q),
             f"- prediction: **{q['predict_texts_per_s_vs_pipeline']:.2f}x** the pipeline's texts/s", ""]
    return "\n".join(lines + core.mfu_lines(r))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="sst2")
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--frozen-epochs", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--pipeline-batch-size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="bench/speed/vs_trainer", help="OUT.json and OUT.md")
    a = vars(ap.parse_args(argv))
    out = Path(a.pop("out"))
    run(out, log=lambda m: print(m, file=sys.stderr), **a)
    print(out.with_suffix(".md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in JOBS:  # a child: python -m bench.speed.vs_trainer JOB ARGS_JSON
        core.child_main(JOBS, sys.argv[1], sys.argv[2])
    else:
        main()
