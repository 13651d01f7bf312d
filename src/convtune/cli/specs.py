"""The command line's own options, each declared once as a dataclass field (`config.option`)
and read by every verb that takes it (`cli.fields.add_fields`): data, model, output, and the
options of single verbs. Optimisation and run settings come from `config.TrainConfig` /
`RuntimeConfig`, the model's from `modeling.settings` and `config.LongText`, the server's limits from `deploy.serve_body.ServeConfig`, the search's from
`experiments.search_study.SearchSettings`. Torch-free: building the parser stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from convtune.config import MODES, option
from convtune.experiments.search_study import WORKERS_HELP

TRACKERS = ("none", "tensorboard", "mlflow", "wandb")


@dataclass
class DataOptions:
    """What to read: a file or a built-in set, its columns, its labels."""

    data: str | None = option(None, "a CSV / TSV / JSONL / Parquet / fastText file, or a built-in set name "
                                    "(evaluate, explain: its test split; export: its dev split, for the parity check)")
    dev: str | None = option(None, "dev file (default: the set's own, else 10% of train)")
    test: str | None = option(None, "test file (default: the set's own, else 10% of train)")
    text_col: str | None = option(None, "the text column (default: text, sentence, review, content, message or title)")
    label_col: str | None = option(None, "the label column (default: label, labels, class, category, target or tags)")
    label_sep: str | None = option(None, "the label cell holds several labels cut at this (e.g. ,); a JSON list in a "
                                         "JSONL label is always read as several")
    label_cols: str | None = option(None, "comma-separated 0/1 columns, one per label (multi-label)")
    multi_label: bool = option(False, "train a multi-label model (implied by --label-sep, --label-cols or list labels)")
    encoding: str = option("utf-8", "input file encoding")
    train_limit: int | None = option(None, "train on a stratified subset of this size", low=2, wants="at least 2 texts")
    strict: bool = option(False, "refuse files with empty texts (default: skip them, warn)")


@dataclass
class ModelOptions:
    """The model options no model's dataclass holds (those are in modeling.settings and
    config.LongText): how an adapter model is saved, the TF-IDF baseline's stop words."""

    merge: bool = option(False, "adapter modes: save the model with the adapter merged into the encoder "
                                "(standalone, larger)")
    stop_words: bool | str = option(False, "tfidf heads: drop stop words: scikit-learn's English list, or a file's "
                                           "(one a line)", nargs="?", const="english", metavar="english|FILE")


@dataclass
class Common:
    """Options several verbs share: the model, texts, output and tracking."""

    model_dir: str = option(None, "a saved model (or export) directory", positional=True)
    texts: list | None = option(None, "texts to classify or explain", positional=True, nargs="*")
    out: str | None = option(None, "the directory to write (train: the run; search: study, report and best/; compare, "
                                   "bench, audit: the report; export: default MODEL_DIR-onnx or MODEL_DIR-onnx-int8)")
    overwrite: bool = option(False, "replace an existing output: a directory only if convtune wrote it (search: "
                                    "also write into a non-empty folder that is not a search's)")
    track: str = option("none", "log to TensorBoard (event files in the run directory), MLflow (sqlite:///mlflow.db "
                                "beside it, or $MLFLOW_TRACKING_URI) or W&B (offline)", choices=TRACKERS)
    nproc: int | None = option(None, "processes on this machine: starts torchrun --standalone --nproc-per-node N "
                                     "(several machines: run torchrun yourself, see docs/training.md)",
                               low=1, metavar="N")
    threads: int | None = option(None, "CPU threads for this command (default: CONVTUNE_THREADS, else under "
                                       "torchrun its share, else OMP_NUM_THREADS, else every core it may use)",
                                 low=1, metavar="N")
    frozen_epochs: int | None = option(None, "frozen mode epochs (default: train's)", low=1)
    json: bool = option(False, "JSON lines instead of text")


@dataclass
class PredictOptions:
    input: str | None = option(None, "CSV / TSV / JSONL / Parquet (text column) or plain .txt (one text a line; "
                                     "fastText lines lose their __label__s); - reads one text a line from standard "
                                     "input")
    output: str | None = option(None, "CSV / JSONL / Parquet file for the predictions (default: stdout, JSONL)")
    batch_size: int | None = option(None, "same as --eval-batch-size", low=1, hidden=True)
    threshold: float | None = option(None, "multi-label: one threshold for every label instead of the ones tuned "
                                           "on dev")
    at_least_one: bool = option(False, "multi-label: a text with no label over its threshold gets its most "
                                       "probable one")


@dataclass
class CompareOptions:
    heads: str = option("cnn,cnn+pool,linear,textcnn,tfidf-svm", "comma-separated --head values")
    modes: str = option("finetune,frozen", f"for the transformer heads: {', '.join(MODES)}")
    seeds: int = option(3, "seeds per configuration", low=1)
    split_seed: int = option(42, "the split's seed (sets without an official split)", low=0, high=2**32 - 1,
                             wants="a whole number from 0 to 4294967295")
    no_blend: bool = option(False, "no blend column (by default each single-label neural cell is also scored "
                                   "blended with a TF-IDF model, its weight chosen on dev)")


@dataclass
class BlendOptions:
    runs: list | None = option(None, "saved models to choose from (two or more, trained on the same split of --data)",
                               positional=True, nargs="+", metavar="MODEL_DIR")
    steps: int = option(20, "greedy selection steps after the best single model (with replacement)", low=1, high=1000)


@dataclass
class ExportOptions:
    format: str = option("onnx", "the export format", choices=("onnx",))
    int8: bool = option(False, "ONNX Runtime dynamic int8 quantisation")


@dataclass
class ServeOptions:
    host: str = option("127.0.0.1", "default loopback only; 0.0.0.0 exposes it")
    port: int = option(8000, "the port", low=1, high=65535, wants="a port number from 1 to 65535")
    workers: int = option(1, WORKERS_HELP, low=1)
    no_ui: bool = option(False, "no page at GET / (the API only)")


@dataclass
class ExplainOptions:
    label: str | None = option(None, "explain this label's logit instead of the most probable one")
    top: int | None = option(None, "n-grams shown for and against the label (default 5), or per class with --data "
                                    "(default 20)", low=1)


@dataclass
class AuditOptions:
    part: str = option("all", "built-in sets: which split to audit (default: all of them together)",
                       choices=("all", "train", "dev", "test"))
    method: str = option("tfidf", "the fold models: TF-IDF + SVM (seconds), a frozen encoder + CNN head (minutes), "
                                  "or fine-tuned for 2 epochs (k fine-tunings)", choices=("tfidf", "frozen", "finetune"))
    folds: int = option(5, "cross-validation folds", low=2, high=100, wants="a whole number of folds from 2 to 100")


@dataclass
class CacheOptions:
    action: str = option(None, "info or clear", positional=True, choices=("info", "clear"))
