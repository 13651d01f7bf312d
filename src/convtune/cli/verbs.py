"""The verbs: each turns parsed options into one library call and prints what it returns.
Heavy libraries (torch, transformers) are imported inside the verbs that need them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convtune.cli.explain import cmd_audit, cmd_explain  # light: their heavy imports are inside
from convtune.config import ADAPTER_MODES, BASELINES
from convtune.errors import ConvtuneError


def make_estimator(a: argparse.Namespace):
    """The estimator for `--head`, given only the options the user set (others: its defaults)."""
    from dataclasses import fields

    from convtune.config import RUNTIME_OPTIONS, TRAIN_OPTIONS, LongText, keywords
    from convtune.estimators.registry import make_estimator as make
    from convtune.modeling.settings import (
        AdapterConfig,
        CNNHeadConfig,
        LinearHeadConfig,
        parse_layers,
        parse_names,
        parse_widths,
    )

    if a.mode == "contrastive" and a.head in BASELINES:
        raise ConvtuneError(f"--mode contrastive tunes an encoder on pairs of texts; --head {a.head} has none "
                            "(use a head over an encoder: cnn, cnn+pool or linear)")
    if getattr(a, "blend", "auto") == "tfidf" and a.head in BASELINES:
        raise ConvtuneError(f"--blend tfidf blends a TF-IDF model into a model over an encoder; --head {a.head} has "
                            "none (use --blend none, or a head over an encoder)")
    options = {name: getattr(a, name) for name in TRAIN_OPTIONS | RUNTIME_OPTIONS}
    options |= {kw: getattr(a, kw) for cls in (LongText, AdapterConfig) for kw in keywords(cls).values()}
    takes = {f.name for f in fields(LinearHeadConfig if a.head == "linear" else CNNHeadConfig)}
    head = {f: getattr(a, kw) for f, kw in keywords(CNNHeadConfig).items() if f in takes and getattr(a, kw) is not None}
    if "kernel_sizes" in head:  # a search trial gives them as the command line does: "2,3,4"
        head["kernel_sizes"] = parse_widths(head["kernel_sizes"])
    options["target_modules"] = parse_names(options["target_modules"])
    # Every option goes to the registry; each kind takes the ones it knows (TF-IDF: seed, stop words).
    return make(a.head, encoder=a.encoder, mode=a.mode, layers=parse_layers(a.layers), max_length=a.max_length,
                head_config=head, stop_words=a.stop_words, blend=getattr(a, "blend", None), **options)


def label_rule(a):
    """The LabelRule of parsed --label-sep / --label-cols / --multi-label options."""
    from convtune.data.texts import LabelRule

    cols = tuple(c.strip() for c in a.label_cols.split(",") if c.strip()) if getattr(a, "label_cols", None) else None
    if cols is not None and len(cols) < 1:
        raise ConvtuneError("--label-cols wants comma-separated column names")
    if cols is not None and len(set(cols)) != len(cols):
        raise ConvtuneError("--label-cols names a column twice")
    return LabelRule(sep=getattr(a, "label_sep", None) or None, cols=cols, multi=getattr(a, "multi_label", False))


def headline(m: dict) -> str:
    """The one-line summary of a metrics dict (multi-label: micro-F1 and subset accuracy too)."""
    if m.get("multi_label"):
        return (f"micro-F1 {m['micro_f1']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
                f"subset accuracy {m['subset_accuracy']:.4f}{_ece(m)}")
    return f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}{_ece(m)}"


def _ece(m: dict) -> str:
    c = m.get("calibration")
    if not c:
        return ""
    before = f" (before temperature {c['uncalibrated']['ece']:.4f})" if "uncalibrated" in c else ""
    return f", ECE {c['ece']:.4f}{before}"


def cmd_train(a: argparse.Namespace) -> int:
    from convtune.data.builtin import load_splits
    from convtune.experiments.runs import train_run
    from convtune.experiments.tracking import make_tracker

    clf = make_estimator(a)  # bad options fail before any data is read
    make_tracker(a.track)  # and a missing tracking library
    if a.merge and a.mode not in ADAPTER_MODES:
        raise ConvtuneError(f"--merge needs an adapter mode ({', '.join(ADAPTER_MODES)}), not --mode {a.mode}")
    splits = load_splits(a.data, a.dev, a.test, seed=clf.get_params()["seed"], text_col=a.text_col,
                         label_col=a.label_col, encoding=a.encoding, strict=a.strict, rule=label_rule(a))
    recipe = small_data_recipe(splits) if a.mode is None and a.head not in BASELINES else None
    if recipe is not None:  # the small-data recipe's model, told in one line
        print(recipe, file=sys.stderr)
        a.mode, a.head, a.pooling, a.blend, a.calibrate = "contrastive", "linear", "mean", "none", "none"
        clf = make_estimator(a)
    m = train_run(splits, clf, a.out, overwrite=a.overwrite, train_limit=a.train_limit, merge=a.merge, track=a.track,
                  command="convtune " + " ".join(a.argv), recipe=recipe)
    from convtune.distributed import current

    if not current().is_main:  # under torchrun: rank 0 reports for all
        return 0
    final = m.get("test", m["dev"])
    best = f", best epoch {m['best_epoch']}" if m.get("best_epoch") else ""
    print(f"saved {a.out}: {'test' if 'test' in m else 'dev'} {headline(final)}, train {m['train_seconds']:.1f} s{best}")
    if m.get("blend"):
        print(blend_line(m["blend"], "test" if "test" in m else "dev"))
    return 0


def cmd_blend(a: argparse.Namespace) -> int:
    from convtune.data.builtin import load_splits, split_record
    from convtune.experiments.runs import ensemble_run
    from convtune.modeling.checkpoint import read_manifest

    for d in a.runs:
        read_manifest(d)  # a wrong directory fails before any data is read
    seed = (split_record(a.runs[0]) or {}).get("seed", 42)  # the members' split (ensemble_run checks each)
    splits = load_splits(a.data, a.dev, a.test, seed=seed, text_col=a.text_col, label_col=a.label_col,
                         encoding=a.encoding, strict=a.strict, rule=label_rule(a))
    m = ensemble_run(a.runs, splits, a.out, steps=a.steps, overwrite=a.overwrite, device=a.device,
                     precision=a.precision, command="convtune " + " ".join(a.argv))
    final, chosen = m.get("test", m["dev"]), m["hyperparameters"]
    print(f"saved {a.out}: {'test' if 'test' in m else 'dev'} {headline(final)}; weights "
          + ", ".join(f"{w:.2f} {d}" for w, d in zip(chosen["weights"], chosen["members"]) if w > 0))
    return 0


def small_data_recipe(splits) -> str | None:
    """`convtune train` without --mode: the line that says the small-data recipe is used (the
    smallest class has at most SMALL_DATA_PER_CLASS training texts), else None. A dev split
    convtune carved from so few texts goes back into train (the recipe selects nothing on dev: a
    logistic regression head, no epochs, no temperature, no blend) and dev is then the training
    texts; a dev split the data brings is kept for its report."""
    from convtune.config import SMALL_DATA_PER_CLASS
    from convtune.data.labels import label_counts
    from convtune.data.multilabel import is_multi
    from convtune.data.texts import TextSet

    if is_multi(splits.train.labels):
        return None
    counts = label_counts(splits.train.labels)
    smallest, name = min((n, str(y)) for y, n in counts.items())
    if smallest > SMALL_DATA_PER_CLASS or smallest < 2:
        return None
    if splits.dev_carved:  # a dev part cut by convtune, not one the data brings
        splits.train = TextSet(splits.train.texts + splits.dev.texts, splits.train.labels + splits.dev.labels)
        splits.dev = splits.train
        splits.record["method"] += "; small data: the dev part went back into train"
    return (f"small data ({name}: {smallest} training texts, at most {SMALL_DATA_PER_CLASS}): the small-data recipe "
            "(--mode contrastive, a linear head fitted by logistic regression, no dev split; give --mode to choose)")


def blend_line(b: dict, part: str) -> str:
    """The blend's summary: its weight, and each part alone on `part`."""
    if not b.get("kept"):
        return f"blend: the TF-IDF model was left out (dev gain below noise; neural alone on dev {_dev_score(b)})"
    w = b["weight"] if not isinstance(b["weight"], list) else f"per label, mean {sum(b['weight']) / len(b['weight']):.2f}"
    s = b[part]
    key = "micro_f1" if "micro_f1" in s["blend"] else "accuracy"
    return (f"blend: weight {w} on the neural model; {part} {key.replace('_', '-')} blend {s['blend'][key]:.4f}, "
            f"neural alone {s['neural'][key]:.4f}, TF-IDF alone {s['lexical'][key]:.4f}")


def _dev_score(b: dict) -> str:
    if "neural_dev_macro_f1" in b:
        return f"macro-F1 {b['neural_dev_macro_f1']:.4f}, TF-IDF alone {b['lexical_dev_macro_f1']:.4f}"
    return f"micro-F1 {b['neural_dev_micro_f1']:.4f}, blend {b['dev_micro_f1']:.4f}"


def cmd_search(a: argparse.Namespace) -> int:
    from convtune.data.builtin import load_splits
    from convtune.config import ADAPTER_LR
    from convtune.experiments.search import SearchSettings, check_out, run_search
    from convtune.experiments.search_space import SEARCHABLE, default_space, read_space, searchable_heads, without
    from convtune.modeling.encoders import default_lr
    from convtune.modeling.settings import ModelConfig

    a.mode = a.mode or ModelConfig().mode  # unset: the model's default (the small-data recipe is train's)
    if a.head not in searchable_heads() and not a.space:
        raise ConvtuneError(f"search has a default space for the heads {', '.join(searchable_heads())}, not --head "
                            f"{a.head}; give one with --space FILE")
    if a.merge:
        raise ConvtuneError("--merge is a train option; merge the best model with convtune export")
    settings = SearchSettings(trials=a.trials, timeout=a.timeout, storage=a.storage, study=a.study,
                              workers=a.workers, pruner=a.pruner, seed=a.search_seed, track=a.track)
    check_out(Path(a.out), a.overwrite)
    fixed = {o: getattr(a, o) for o in SEARCHABLE if getattr(a, o, None) is not None}
    encoder_lr = ADAPTER_LR if a.mode in ADAPTER_MODES else default_lr(a.encoder)
    space = without(read_space(a.space) if a.space else default_space(a.mode, a.head, encoder_lr), fixed)
    clf = make_estimator(a)  # bad fixed options fail before any data is read
    splits = load_splits(a.data, a.dev, a.test, seed=clf.get_params()["seed"], text_col=a.text_col,
                         label_col=a.label_col, encoding=a.encoding, strict=a.strict, rule=label_rule(a))
    about = {"data": a.data, "head": a.head, "mode": a.mode, "encoder": a.encoder,
             "command": "convtune " + " ".join(x for x in a.argv if not x.startswith("--worker-quota"))}
    res = run_search(splits, lambda options: make_estimator(argparse.Namespace(**{**vars(a), **options})), space,
                     settings, Path(a.out), about, argv=a.argv[1:], quota=a.worker_quota)
    if res is None:  # a worker: its parent reports
        return 0
    test = f", test {headline(res['test'])}" if res["test"] else ""
    model = res["best_dir"] or f"in the --out of worker {res['best'].get('worker')}"
    print(f"best trial #{res['best']['number']} of {sum(res['counts'].values())}: dev macro-F1 "
          f"{res['best']['dev_macro_f1']:.4f}{test}; model {model}, report {Path(a.out) / 'report.md'}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from convtune.data.builtin import BUILTIN, model_splits, read_spec
    from convtune.experiments.runs import evaluate_run
    from convtune.modeling.checkpoint import read_manifest

    read_manifest(a.model_dir)  # a wrong directory fails before any data is read
    if a.data in BUILTIN:
        # Rebuild the split the model was trained with (its recorded seed), take its test part.
        splits = model_splits(a.model_dir, a.data)
        data = splits.test or splits.dev
    else:
        data = read_spec(a.data, a.text_col, a.label_col, a.encoding, strict=a.strict, rule=label_rule(a))
    m = evaluate_run(a.model_dir, data, a.data, a.device, a.precision)
    print(m["report"])
    print(f"{headline(m)}  ({m['size']} texts)")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from convtune.config import TrainConfig
    from convtune.deploy.predict_io import predict_command

    a.batch_size = a.batch_size or a.eval_batch_size or TrainConfig().eval_batch_size  # --batch-size: an alias

    return predict_command(a)


def cmd_compare(a: argparse.Namespace) -> int:
    from convtune.config import MODES, all_heads
    from convtune.experiments.compare import run_compare
    from convtune.modeling.model import DEFAULT_MAX_LENGTH

    heads = [h.strip() for h in a.heads.split(",") if h.strip()]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not heads or set(heads) - set(all_heads()):
        raise ConvtuneError(f"--heads takes {', '.join(all_heads())}")
    if not modes or set(modes) - set(MODES):
        raise ConvtuneError(f"--modes takes one or more of {', '.join(MODES)}")
    if a.seeds < 1:
        raise ConvtuneError("--seeds must be at least 1")
    from convtune.experiments.tracking import make_tracker

    make_tracker(a.track)  # a missing tracking library fails before the first run
    options = {"encoder": a.encoder, "epochs": a.epochs, "frozen_epochs": a.frozen_epochs, "patience": a.patience,
               "max_length": a.max_length or DEFAULT_MAX_LENGTH, "train_limit": a.train_limit, "device": a.device,
               "precision": a.precision, "track": a.track, "blend": not a.no_blend}
    res = run_compare(a.data, heads, modes, a.seeds, a.out, options, split_seed=a.split_seed,
                      overwrite=a.overwrite, command="convtune " + " ".join(sys.argv[1:]))
    print(Path(a.out, "report.md").read_text(encoding="utf-8").split("## Pictures")[0])
    return 0 if res else 1


def cmd_bench(a: argparse.Namespace) -> int:
    from convtune.config import TrainConfig
    from convtune.experiments.bench import run_bench
    from convtune.modeling.model import DEFAULT_MAX_LENGTH

    train = TrainConfig()  # what an option left unset means: train's own default
    res = run_bench(data=a.data or "sst2", encoder=a.encoder, epochs=a.epochs, frozen_epochs=a.frozen_epochs,
                    batch_size=a.batch_size or train.batch_size, lr=a.lr, max_length=a.max_length or DEFAULT_MAX_LENGTH,
                    seed=train.seed if a.seed is None else a.seed, train_limit=a.train_limit,
                    out_dir=a.out or "bench-results", device=a.device or "auto",
                    log=lambda m: print(m, file=sys.stderr))
    print(Path(a.out or "bench-results", "results.md").read_text(encoding="utf-8"))  # written as UTF-8, whatever the locale
    return 0 if res else 1


def cmd_datasets(a: argparse.Namespace) -> int:
    from convtune.data.builtin import BUILTIN, builtin_path

    for name, spec in BUILTIN.items():
        path = builtin_path(name)
        state = "found" if path.is_dir() else "MISSING"
        print(f"{name:32s} {state:8s} {path}  - {spec.description}")
    return 0


def cmd_encoders(a: argparse.Namespace) -> int:
    from convtune.modeling.encoders import DEFAULT_LR, list_encoders

    for row in list_encoders():
        if not row["installed"]:
            state = f"not installed: {row['install']}"
        else:
            state = "installed" if row["materialised"] else "installed, converted on first use"
        print(f"{row['name']:13s} {row['model']}\n{'':13s} [{row['licence']}, {row['size']}, "
              f"languages: {row['languages']}, fine-tuning lr {row['lr']:g}]  {state}")
    print(f"Any local Hugging Face model directory also works: --encoder path/to/dir (fine-tuning lr {DEFAULT_LR:g})")
    return 0


def cmd_cache(a: argparse.Namespace) -> int:
    from pathlib import Path

    from convtune.paths import default_cache_root
    from convtune.training.state_cache import cache_info, clear_cache, store_dirs

    root = Path(a.cache) if a.cache not in (None, "auto", "off") else default_cache_root()
    if a.action == "clear":
        count = len(store_dirs(root))  # cache_info would also read every index just to count
        print(f"cleared {count} store(s) under {root}: {clear_cache(root) / 1e6:.1f} MB freed")
        return 0
    stores = cache_info(root)
    for s in stores:
        print(f"{s['store']:48s} {s['texts']:9d} texts {s['bytes'] / 1e6:9.1f} MB")
    print(f"{len(stores)} store(s) under {root}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from convtune.deploy.export import export_onnx, parity_data

    out = a.out or f"{a.model_dir.rstrip('/')}-onnx{'-int8' if a.int8 else ''}"
    data = parity_data(a.model_dir, a.data, a.text_col, a.label_col)
    p = export_onnx(a.model_dir, out, data, int8=a.int8, overwrite=a.overwrite)
    acc = "" if p["onnx_accuracy"] is None else \
        f", accuracy {p['onnx_accuracy']:.4f} vs PyTorch {p['pytorch_accuracy']:.4f}"
    print(f"exported {out} ({'int8' if a.int8 else 'fp32'}); parity on {p['source']}: max |dp| "
          f"{p['max_abs_prob_diff']:.1e}, labels agree {p['label_agreement']:.2%}{acc}; "
          f"{p['pytorch_fp32_seconds']:.2f} s PyTorch fp32 vs {p['onnx_seconds']:.2f} s ONNX")
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from convtune.deploy.serve import ServeConfig, run_server

    return run_server(a.model_dir, ServeConfig(max_texts=a.max_texts, max_chars=a.max_chars, max_body=a.max_body,
                                               batch_wait_ms=a.batch_wait_ms, max_batch=a.max_batch,
                                               device=a.device, precision=a.precision, ui=not a.no_ui),
                      host=a.host, port=a.port, workers=a.workers)


VERBS = {"explain": cmd_explain, "audit": cmd_audit, "export": cmd_export, "serve": cmd_serve, "train": cmd_train, "search": cmd_search, "evaluate": cmd_evaluate,
         "predict": cmd_predict, "cache": cmd_cache, "bench": cmd_bench, "blend": cmd_blend, "compare": cmd_compare, "datasets": cmd_datasets, "encoders": cmd_encoders}
