"""The argument parser: one sub-parser per verb; `train`'s optimisation and run options are
made from the config dataclasses' fields. Building it imports nothing heavy."""

from __future__ import annotations

import argparse

from convtune.cli.argtypes import port_arg, positive_int_arg, seed_arg, train_limit_arg, wait_ms_arg


# The verbs that run a model or train one: each takes --threads.
COMPUTING_VERBS = ("train", "search", "evaluate", "predict", "explain", "audit", "compare", "bench", "export", "serve")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convtune", description="convtune: fine-tune pretrained Transformers with convolutional classification heads")
    sub = p.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("train", help="train a classifier and save it with its report")
    _train_data_options(t.add_argument_group("data"))
    _train_model_options(t.add_argument_group("model"))
    _train_optim_options(t.add_argument_group("optimisation (unset: each model's own default)"))
    _train_run_options(t.add_argument_group("run"))
    from convtune.cli.explain import add_audit_parser as _audit_parser
    from convtune.cli.explain import add_parser as _explain_parser

    for add in (_search_parser, _evaluate_parser, _predict_parser, _explain_parser, _audit_parser, _cache_parser,
                _compare_parser,
                _bench_parser, _export_parser, _serve_parser):
        add(sub)
    for verb in COMPUTING_VERBS:
        sub.choices[verb].add_argument(
            "--threads", type=positive_int_arg, default=None, metavar="N",
            help="CPU threads for this command (default: CONVTUNE_THREADS, else OMP_NUM_THREADS, else every "
                 "core this process may use; under torchrun, its share)")
    sub.add_parser("datasets", help="list the built-in data sets and where they are read from")
    sub.add_parser("encoders", help="list the packaged encoders and whether each is installed")
    return p


def _train_data_options(g) -> None:
    """What to train on."""
    g.add_argument("--data", required=True, help="CSV / TSV / JSONL / Parquet / fastText file, or a built-in set name")
    g.add_argument("--dev", help="dev file (default: the set's own, else 10%% of train)")
    g.add_argument("--test", help="test file (default: the set's own, else 10%% of train)")
    g.add_argument("--text-col")
    g.add_argument("--label-col")
    _label_rule_options(g)
    g.add_argument("--encoding", default="utf-8", help="input file encoding (default utf-8)")
    g.add_argument("--train-limit", type=int, help="train on a stratified subset of this size")
    g.add_argument("--strict", action="store_true", help="refuse files with empty texts (default: skip them, warn)")


def _label_rule_options(g) -> None:
    """Multi-label data: several labels in one cell, or one 0/1 column per label."""
    g.add_argument("--label-sep", help="the label cell holds several labels cut at this (e.g. ,); "
                   "a JSON list in a JSONL label is always read as several")
    g.add_argument("--label-cols", help="comma-separated 0/1 columns, one per label (multi-label)")
    g.add_argument("--multi-label", action="store_true",
                   help="train a multi-label model (implied by --label-sep, --label-cols or list labels)")


def _train_model_options(g) -> None:
    """Encoder and head (CNN heads, linear head, or a baseline without an encoder)."""
    g.add_argument("--encoder", default="minilm-l6", help="packaged encoder name or local HF directory")
    g.add_argument("--head", default="cnn", choices=["cnn", "cnn+pool", "linear", "tfidf-svm", "tfidf-nb", "textcnn"],
                   help="cnn / cnn+pool / linear: over the encoder; tfidf-svm, tfidf-nb, textcnn: baselines without it")
    g.add_argument("--mode", default="finetune", choices=["finetune", "frozen", "lora", "adalora", "ia3", "adapter"],
                   help="finetune the encoder, keep it frozen, or train an adapter on it (lora, adalora, ia3; "
                   "the head always trains in full)")
    g.add_argument("--lora-r", type=int, help="lora / adalora: rank (adalora: the average it prunes to; default 8)")
    g.add_argument("--lora-alpha", type=float, help="lora / adalora: scaling alpha (update = alpha / r * BA; default 16)")
    g.add_argument("--lora-dropout", type=float, help="lora / adalora: dropout on the adapter's input (default 0)")
    g.add_argument("--target-modules", help="comma-separated names of the linear layers to adapt (default: the "
                   "encoder family's attention and feed-forward projections)")
    g.add_argument("--merge", action="store_true", help="adapter modes: save the model with the adapter merged "
                   "into the encoder (standalone, larger)")
    g.add_argument("--layers", help="last-k: the head sees a learned mix of the last k layers (default: last-4 "
                   "in frozen mode, capped at the encoder's depth; last-1 otherwise)")
    g.add_argument("--max-length", type=int,
                   help="tokens per text (default 128, or the encoder's limit if smaller; textcnn: 128)")
    g.add_argument("--long-text", choices=["auto", "truncate", "head-tail", "windows"],
                   help="texts over --max-length: keep the first tokens (truncate), the first quarter and the "
                   "last three quarters (head-tail, Sun et al. 2019), or read the text in windows and pool "
                   "their logits (windows); auto (the default): windows once over 10%% of the training "
                   "texts are long, else truncate")
    g.add_argument("--stride", type=int, help="windows: tokens from one window's start to the next "
                   "(default half a window)")
    g.add_argument("--window-pool", choices=["mean", "max"], help="windows: pool the window logits (default mean)")
    g.add_argument("--max-windows", type=int, help="windows: read at most this many per text (default 8; 0 = all)")
    g.add_argument("--kernel-sizes", help="CNN heads: comma-separated widths (default 2,3,4; textcnn 3,4,5)")
    g.add_argument("--filters", type=int, help="CNN heads: filters per width (default 128; textcnn 100)")
    g.add_argument("--pooling", default=None,
                   help="CNN head: max|mean|both (default max); linear head: cls|mean|last (default cls)")
    g.add_argument("--dropout", type=float, help="default 0.1 (textcnn: 0.5)")
    g.add_argument("--stop-words", nargs="?", const="english", default=False, metavar="english|FILE",
                   help="tfidf heads: drop stop words: scikit-learn's English list, or a file's (one a line)")


def _train_optim_options(g) -> None:
    """Optimisation: one option per TrainConfig field (unset: each model's own default)."""
    from convtune.config import TrainConfig

    _config_options(g, TrainConfig)


def _train_run_options(g) -> None:
    """Precision, cache, device (RuntimeConfig: not saved with the model) and output."""
    from convtune.config import RuntimeConfig

    _config_options(g, RuntimeConfig)
    _track_option(g)
    _nproc_option(g)
    g.add_argument("--out", required=True, help="run directory to create")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _track_option(g) -> None:
    g.add_argument("--track", choices=["none", "tensorboard", "mlflow", "wandb"], default="none",
                   help="log to TensorBoard (event files in the run directory), MLflow (sqlite:///mlflow.db beside "
                        "it, or $MLFLOW_TRACKING_URI) or W&B (offline); default none")


def _nproc_option(g) -> None:
    g.add_argument("--nproc", type=positive_int_arg, default=None, metavar="N",
                   help="processes on this machine: starts torchrun --standalone --nproc-per-node N (several "
                        "machines: run torchrun yourself, see docs/training.md)")


def _config_options(g, config: type) -> None:
    """`--field-name` for each field of a config dataclass: type from its annotation, help and
    choices from its metadata, the default (and TextCNN's, where its recipe differs) in the help.
    Every option defaults to None, so that a model's own defaults apply to what is not given."""
    from dataclasses import fields

    from convtune.config import TEXTCNN_RUNTIME_DEFAULTS, TEXTCNN_TRAIN_DEFAULTS

    textcnn = TEXTCNN_TRAIN_DEFAULTS | TEXTCNN_RUNTIME_DEFAULTS
    for f in fields(config):
        meta = dict(f.metadata)
        flag, text = meta.pop("flag", "--" + f.name.replace("_", "-")), meta.pop("help")
        if f.type == "bool":
            g.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=text)
            continue
        if f.default is not None:
            text += f" (default {_shown(f.default)}" + (f"; textcnn: {_shown(textcnn[f.name])})"
                                                         if textcnn.get(f.name, f.default) != f.default else ")")
        kind = seed_arg if f.name == "seed" else {"int": int, "float": float, "float | None": float, "str": str}[f.type]
        g.add_argument(flag, dest=f.name, type=kind, default=None, help=text.replace("%", "%%"), **meta)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _search_parser(sub) -> None:
    """`convtune search`: train's options (a given one is fixed, not searched) plus the search's."""
    from convtune.config import RuntimeConfig

    s = sub.add_parser("search", help="hyper-parameter search (Optuna): the best trial's model and a report")
    _train_data_options(s.add_argument_group("data"))
    _train_model_options(s.add_argument_group("model (an option given here is fixed, not searched)"))
    _train_optim_options(s.add_argument_group("optimisation (an option given here is fixed, not searched)"))
    _config_options(s.add_argument_group("run"), RuntimeConfig)
    g = s.add_argument_group("search")
    _track_option(g)
    g.add_argument("--space", help="YAML search space (default: the mode's own; docs/search.md)")
    g.add_argument("--trials", type=positive_int_arg, default=20,
                   help="finished trials the study should have (default 20; rerunning the command continues it)")
    g.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    g.add_argument("--storage", help="sqlite:///PATH, postgresql+psycopg://..., or journal (default: OUT/study.db; "
                   "OUT/journal.log with --workers)")
    g.add_argument("--study", help="study name (default DATA-HEAD-MODE)")
    g.add_argument("--workers", type=positive_int_arg, default=1, help="processes on this machine sharing the "
                   "trials and the cores (default 1)")
    g.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median",
                   help="stop poor trials early on their per-epoch dev macro-F1 (default median)")
    g.add_argument("--search-seed", type=seed_arg, default=42, help="the sampler's seed (default 42)")
    g.add_argument("--worker-quota", type=positive_int_arg, help=argparse.SUPPRESS)  # a --workers child
    g.add_argument("--out", required=True, help="search directory: study, report, best/ (the best model)")
    g.add_argument("--overwrite", action="store_true", help="let the search write into a non-empty folder that "
                   "is not a search folder (its best/, trials/, results.json and reports are replaced)")


def _device_options(p) -> None:
    """--device / --precision for the verbs that run a model (train takes them from RuntimeConfig)."""
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto (a CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast precision (default auto: bf16 where the device has it, fp16 on other GPUs, "
                        "else fp32; TextCNN: fp32)")


def _evaluate_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="evaluate a saved model on labelled data")
    _device_options(e)
    e.add_argument("model_dir")
    e.add_argument("--data", required=True, help="file, or built-in set name (its test split)")
    e.add_argument("--text-col")
    e.add_argument("--label-col")
    _label_rule_options(e)
    e.add_argument("--encoding", default="utf-8")
    e.add_argument("--strict", action="store_true", help="refuse a file with empty texts (default: skip them, warn)")


def _predict_parser(sub) -> None:
    r = sub.add_parser("predict", help="label texts with a saved model")
    _device_options(r)
    _nproc_option(r)
    r.add_argument("model_dir")
    r.add_argument("texts", nargs="*", help="texts to classify")
    r.add_argument("--input", help="CSV / TSV / JSONL / Parquet (text column) or plain .txt (one text a line; "
                   "fastText lines lose their __label__s); "
                   "- reads one text a line from standard input")
    r.add_argument("--output", help="CSV / JSONL / Parquet file for the predictions (default: stdout, JSONL)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    r.add_argument("--text-col")
    r.add_argument("--encoding", default="utf-8")
    r.add_argument("--batch-size", type=positive_int_arg, default=64)
    r.add_argument("--threshold", type=float, help="multi-label: one threshold for every label "
                   "instead of the ones tuned on dev")
    r.add_argument("--at-least-one", action="store_true",
                   help="multi-label: a text with no label over its threshold gets its most probable one")


def _cache_parser(sub) -> None:
    c = sub.add_parser("cache", help="show or clear the frozen-mode token-state cache")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--cache-dir", help="cache root (default: $CONVTUNE_CACHE or ~/.cache/convtune)")


def _compare_parser(sub) -> None:
    g = sub.add_parser("compare", help="heads x modes x seeds on one split: report.md / report.html")
    _device_options(g)
    g.add_argument("--data", required=True, help="built-in set name or file")
    g.add_argument("--heads", default="cnn,cnn+pool,linear,textcnn,tfidf-svm",
                   help="comma-separated: cnn, cnn+pool, linear, textcnn, tfidf-svm, tfidf-nb")
    g.add_argument("--modes", default="finetune,frozen", help="for the transformer heads: finetune, frozen, lora, adalora, ia3")
    g.add_argument("--seeds", type=positive_int_arg, default=3)
    g.add_argument("--split-seed", type=seed_arg, default=42)
    g.add_argument("--encoder", default="minilm-l6")
    g.add_argument("--epochs", type=positive_int_arg, default=None,
                   help="fine-tuning / adapter epochs (default: train's, so a cell is what `convtune train` gives)")
    g.add_argument("--frozen-epochs", type=positive_int_arg, default=None, help="frozen mode epochs (default: train's)")
    g.add_argument("--patience", type=positive_int_arg, default=None, help="default: train's")
    g.add_argument("--max-length", type=positive_int_arg, default=128)
    g.add_argument("--train-limit", type=train_limit_arg)
    _track_option(g)
    g.add_argument("--out", required=True)
    g.add_argument("--overwrite", action="store_true")


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="convtune vs Trainer + pipeline, side by side (needs accelerate)")
    b.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (a CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N or mps: both sides")
    b.add_argument("--data", default="sst2")
    b.add_argument("--encoder", default="minilm-l6")
    b.add_argument("--epochs", type=positive_int_arg, default=None, help="default: train's (the peer runs as many)")
    b.add_argument("--frozen-epochs", type=positive_int_arg, default=None, help="default: train's")
    b.add_argument("--batch-size", type=positive_int_arg, default=32)
    b.add_argument("--lr", type=float, default=None, help="default: the encoder's own (see train --lr)")
    b.add_argument("--max-length", type=positive_int_arg, default=128)
    b.add_argument("--seed", type=seed_arg, default=42)
    b.add_argument("--train-limit", type=train_limit_arg)
    b.add_argument("--pipeline-batch-size", type=positive_int_arg, default=32)
    b.add_argument("--out", default="bench", help="where results.md / results.json go")


def _export_parser(sub) -> None:
    x = sub.add_parser("export", help="ONNX (optionally int8) export with a built-in parity check")
    x.add_argument("model_dir")
    x.add_argument("--format", choices=["onnx"], default="onnx")
    x.add_argument("--int8", action="store_true", help="ONNX Runtime dynamic int8 quantisation")
    x.add_argument("--data", help="parity texts: built-in set (its dev split) or labelled file; "
                                  "default: the set the model was trained on")
    x.add_argument("--text-col")
    x.add_argument("--label-col")
    x.add_argument("--out", help="default: MODEL_DIR-onnx or MODEL_DIR-onnx-int8")
    x.add_argument("--overwrite", action="store_true")


def _serve_parser(sub) -> None:
    v = sub.add_parser("serve", help="REST server: a page to try the model at /, POST /predict (and TEI's body), "
                                     "/explain, GET /health, /info, /metrics")
    _device_options(v)
    v.add_argument("model_dir")
    v.add_argument("--host", default="127.0.0.1", help="default loopback only; 0.0.0.0 exposes it")
    v.add_argument("--port", type=port_arg, default=8000)
    v.add_argument("--workers", type=positive_int_arg, default=1, help="processes, each with its own model copy")
    v.add_argument("--max-texts", type=positive_int_arg, default=256, help="texts per request")
    v.add_argument("--max-chars", type=positive_int_arg, default=10000, help="characters per text")
    v.add_argument("--max-body", type=positive_int_arg, default=1_000_000, help="request body bytes")
    v.add_argument("--batch-wait-ms", type=wait_ms_arg, default=5.0,
                   help="how long to gather requests into one batch")
    v.add_argument("--max-batch", type=positive_int_arg, default=64, help="texts per model call")
    v.add_argument("--no-ui", action="store_true", help="no page at GET / (the API only)")
