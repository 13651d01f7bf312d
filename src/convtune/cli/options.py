"""The argument parser: one sub-parser per verb, every option made from a dataclass field
(`cli.fields.add_fields`), so an option that several verbs take has one flag, type, default and
help everywhere. Building it imports nothing heavy."""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields

from convtune.cli.fields import add_fields
from convtune.cli.specs import (
    AuditOptions,
    BlendOptions,
    CacheOptions,
    Common,
    CompareOptions,
    DataOptions,
    ExplainOptions,
    ExportOptions,
    ModelOptions,
    PredictOptions,
    ServeOptions,
)
from convtune.config import TEXTCNN_RUNTIME_DEFAULTS, TEXTCNN_TRAIN_DEFAULTS, LongText, RuntimeConfig, TrainConfig
from convtune.deploy.serve_body import ServeConfig
from convtune.experiments.search_study import SearchSettings
from convtune.modeling.settings import TEXTCNN_HEAD, TEXTCNN_MAX_LENGTH, AdapterConfig, CNNHeadConfig, ModelConfig

# The verbs that run a model or train one: each takes --threads.
COMPUTING_VERBS = ("train", "search", "evaluate", "predict", "explain", "audit", "compare", "bench", "export", "serve")
LABEL_RULE = ("label_sep", "label_cols", "multi_label")
DEVICE = ("device", "precision")
TEXTCNN = TEXTCNN_TRAIN_DEFAULTS | TEXTCNN_RUNTIME_DEFAULTS | asdict(TEXTCNN_HEAD) | {"max_length": TEXTCNN_MAX_LENGTH}
NOTED = (TrainConfig, RuntimeConfig, ModelConfig, CNNHeadConfig)  # their options say TextCNN's defaults
# The model's options: what it is, how it reads long texts, its head, its adapter, how it is saved.
MODEL = [(ModelConfig, None, {}), (LongText, None, {"unset": True}), (CNNHeadConfig, None, {"unset": True}),
         (AdapterConfig, None, {"unset": True}), (ModelOptions, None, {})]

# train's and search's model options: --mode unset, so that train can tell a given mode from
# none (the small-data recipe applies only when none is given; search takes finetune).
TRAIN_MODEL = [(ModelConfig, tuple(f.name for f in fields(ModelConfig) if "help" in f.metadata and f.name != "mode"), {}),
               (ModelConfig, ("mode",), {"unset": True}), *MODEL[1:]]

GROUPS = {DataOptions: "data", TrainConfig: "optimisation (unset: each model's own default)",
          RuntimeConfig: "run", SearchSettings: "search", ServeConfig: "limits and batching",
          **{cls: "model" for cls, _, _ in MODEL}}

# verb -> (help, [(dataclass, fields or None for all, {add_fields options})...])
VERBS = {
    "train": ("train a classifier and save it with its report", [
        (DataOptions, None, {"required": ("data",)}), *TRAIN_MODEL, (TrainConfig, None, {"unset": True}),
        (RuntimeConfig, None, {"unset": True}), (Common, ("track", "nproc", "out", "overwrite"), {"required": ("out",)})]),
    "search": ("hyper-parameter search (Optuna): the best trial's model and a report", [
        (DataOptions, None, {"required": ("data",)}), *TRAIN_MODEL, (TrainConfig, None, {"unset": True}),
        (RuntimeConfig, None, {"unset": True}), (SearchSettings, None, {}),
        (Common, ("track", "out", "overwrite"), {"required": ("out",)})]),
    "evaluate": ("evaluate a saved model on labelled data", [
        (RuntimeConfig, DEVICE, {"unset": True}), (Common, ("model_dir",), {}),
        (DataOptions, ("data", "text_col", "label_col", *LABEL_RULE, "encoding", "strict"), {"required": ("data",)})]),
    "predict": ("label texts with a saved model", [
        (RuntimeConfig, DEVICE, {"unset": True}), (Common, ("nproc", "model_dir", "texts"), {}),
        (PredictOptions, None, {}), (Common, ("overwrite",), {}), (DataOptions, ("text_col", "encoding"), {}),
        (TrainConfig, ("eval_batch_size",), {"unset": True})]),
    "explain": ("the n-grams that decided a CNN-head model's predictions (exact contributions)", [
        (Common, ("model_dir", "texts"), {}), (ExplainOptions, None, {}),
        (DataOptions, ("data", "text_col", "label_col", "encoding"), {}), (Common, ("json",), {}),
        (RuntimeConfig, DEVICE, {"unset": True})]),
    "audit": ("texts whose given label is probably wrong (out-of-fold probabilities + cleanlab)", [
        (DataOptions, ("data",), {"required": ("data",)}), (AuditOptions, None, {}), (ModelConfig, ("encoder",), {}),
        (TrainConfig, ("seed",), {"unset": True}), (Common, ("out", "overwrite"), {"required": ("out",)}),
        (DataOptions, ("text_col", "label_col", "encoding"), {})]),
    "cache": ("show or clear the frozen-mode token-state cache", [
        (CacheOptions, None, {}), (RuntimeConfig, ("cache",), {"unset": True})]),
    "compare": ("heads x modes x seeds on one split: report.md / report.html", [
        (RuntimeConfig, DEVICE, {"unset": True}), (DataOptions, ("data",), {"required": ("data",)}),
        (CompareOptions, None, {}), (ModelConfig, ("encoder", "max_length"), {}),
        (TrainConfig, ("epochs",), {"unset": True, "notes": TEXTCNN}), (Common, ("frozen_epochs",), {}),
        (TrainConfig, ("patience",), {"unset": True, "notes": TEXTCNN}), (DataOptions, ("train_limit",), {}),
        (Common, ("track", "out", "overwrite"), {"required": ("out",)})]),
    "bench": ("convtune's speed on this machine: fine-tune, 2 processes, frozen (cold / warm cache), predict, MFU", [
        (RuntimeConfig, ("device",), {"unset": True}), (DataOptions, ("data",), {}),
        (ModelConfig, ("encoder", "max_length"), {}), (Common, ("frozen_epochs",), {}),
        (TrainConfig, ("epochs", "batch_size", "lr", "seed"), {"unset": True, "notes": TEXTCNN}),
        (DataOptions, ("train_limit",), {}), (Common, ("out",), {})]),
    "blend": ("one model from several saved ones: greedy ensemble selection on dev, reported like train", [
        (BlendOptions, None, {}), (DataOptions, ("data", "dev", "test", "text_col", "label_col", *LABEL_RULE,
                                                 "encoding", "strict"), {"required": ("data",)}),
        (RuntimeConfig, DEVICE, {"unset": True}), (Common, ("out", "overwrite"), {"required": ("out",)})]),
    "export": ("ONNX (optionally int8) export with a built-in parity check", [
        (Common, ("model_dir",), {}), (ExportOptions, None, {}), (DataOptions, ("data", "text_col", "label_col"), {}),
        (Common, ("out", "overwrite"), {})]),
    "serve": ("REST server: a page to try the model at /, POST /predict (and TEI's body), /explain, GET /health, "
              "/info, /metrics", [
        (RuntimeConfig, DEVICE, {"unset": True}), (Common, ("model_dir",), {}), (ServeOptions, ("host", "port", "workers"), {}),
        (ServeConfig, None, {}), (ServeOptions, ("no_ui",), {})]),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convtune", description="convtune: fine-tune pretrained Transformers with "
                                                             "convolutional classification heads")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb, (text, parts) in VERBS.items():
        v = sub.add_parser(verb, help=text)
        groups = {}
        for cls, only, options in parts:
            title = GROUPS.get(cls)
            if title is not None and title not in groups:
                groups[title] = v.add_argument_group(title)
            add_fields(groups.get(title, v), cls, only=only, **{"notes": TEXTCNN if cls in NOTED else None, **options})
        if verb in COMPUTING_VERBS:
            add_fields(v, Common, only=("threads",))
    sub.add_parser("datasets", help="list the built-in data sets and where they are read from")
    sub.add_parser("encoders", help="list the packaged encoders and whether each is installed")
    return p
