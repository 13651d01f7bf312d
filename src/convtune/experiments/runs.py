"""A training run from start to finish: fit, evaluate dev and test, write the run directory.

The run directory (model + metrics.json + split.json + plots) is built in a temporary
directory and renamed into place only when everything is written.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from convtune._fs import atomic_dir, write_json
from convtune.data.builtin import split_record
from convtune.data.labels import check_labels, label_list
from convtune.data.splits import Splits, subsample
from convtune.distributed import barrier, current, main_first
from convtune.errors import ConvtuneError
from convtune.estimators.base import TextClassifier
from convtune.estimators.ensemble import STEPS, Ensemble
from convtune.estimators.registry import load
from convtune.experiments.plots import plot_confusion_of, plot_per_label, plot_reliability, plot_training
from convtune.experiments.tracking import make_tracker
from convtune.modeling.model_card import model_card


def train_run(splits: Splits, clf: TextClassifier, out: str | Path, overwrite: bool = False,
              train_limit: int | None = None, merge: bool = False, callbacks: tuple = (), track: str = "none",
              track_dir: Path | None = None, command: str | None = None, recipe: str | None = None) -> dict:
    """Train `clf` on `splits`, report dev / test, save everything under `out`; return metrics.
    `merge`: an adapter model is saved with its adapter folded into the encoder (standalone).
    `callbacks` go to the training loop (models that have one; a search prunes through them).
    `track`: tensorboard / mlflow / wandb (experiments.tracking), writing into the run directory
    or `track_dir`. `command` goes into the model card (README.md); `recipe`, a line on a recipe
    convtune chose by itself (small data), into metrics.json and the card."""
    train = subsample(splits.train, train_limit, splits.record["seed"])
    if len(train) < len(splits.train):
        splits.record["train_limit"] = train_limit
    labels = label_list(train)
    check_labels(splits.dev, labels, "dev split")
    if splits.test is not None:
        check_labels(splits.test, labels, "test split")
    # Fail on an existing --out before spending minutes on training. Under torchrun every rank
    # trains and evaluates (collectively); only rank 0 writes, the others wait for its rename.
    ranks = current()
    tracker = make_tracker(track) if ranks.is_main else None
    with contextlib.ExitStack() as stack:
        tmp = main_first(lambda: stack.enter_context(atomic_dir(out, overwrite)))
        if tracker is not None:
            directory = Path(track_dir) if track_dir else tmp
            directory.mkdir(parents=True, exist_ok=True)
            tracker.start(Path(out).name, directory, Path(track_dir).parent if track_dir else Path(out).parent)
            stack.callback(tracker.abort_unless_finished)
            callbacks = (*callbacks, tracker)
        wall = time.perf_counter()
        clf.fit(train.texts, train.labels, splits.dev.texts, splits.dev.labels, callbacks=callbacks)
        summary = clf.training_summary()
        step_losses = summary.pop("step_losses")
        metrics = {"dataset": splits.name, **clf.describe(), "train_size": len(train),
                   "labels": clf.labels_, **summary, "hyperparameters": clf.hyperparameters(),
                   "processes": ranks.world_size, **({"recipe": recipe} if recipe else {})}
        reports, parts = {}, {}
        for part in ("dev", "test"):
            data = getattr(splits, part)
            if data is None:
                continue
            if getattr(clf, "lexical_", None) is not None:  # a blend: each part alone beside it, one encoder pass
                neural, lexical = clf.neural_decision_function(data.texts), clf.lexical_proba(data.texts)
                metrics[part] = clf.score_logits(clf.blended_logits(neural, lexical), data)
                parts[part] = clf.blend_scores(data, neural, lexical)
            else:
                metrics[part] = clf.evaluate(data.texts, data.labels)
            reports[part] = metrics[part].pop("report")
        if getattr(clf, "blend_", None):  # kept (with each part's scores), or why not
            metrics["blend"] = {**clf.blend_, **parts}
        metrics["wall_seconds"] = round(time.perf_counter() - wall, 2)
        if ranks.is_main:
            _write_run(tmp, clf.merged() if merge else clf, splits, metrics, step_losses,
                       command, Path(out).name)
            if tracker is not None:
                tracker.finish(metrics, tmp)
            final = "test" if "test" in reports else "dev"
            tqdm.write(f"\n{splits.name} {final} report ({metrics['head']} head, {metrics['mode']}):\n{reports[final]}")
    barrier()
    return metrics


def ensemble_run(run_dirs: list[str | Path], splits: Splits, out: str | Path, steps: int = STEPS,
                 overwrite: bool = False, device: str | None = None, precision: str | None = None,
                 command: str | None = None) -> dict:
    """One model from saved ones: greedy selection on `splits`' dev (experiments' Ensemble),
    then the same report and run directory as `train_run`. Every member must have been trained
    on this very split (its split.json says so): dev texts a member trained on would make the
    selection trust that member."""
    if len(run_dirs) < 2:
        raise ConvtuneError("blend needs two or more saved models")
    if any(Path(d).resolve() == Path(out).resolve() for d in run_dirs):
        raise ConvtuneError(f"--out {out} is one of the models to blend; write the result elsewhere")
    expected = splits.describe()
    for d in run_dirs:
        seen = split_record(d)
        if seen is None:
            raise ConvtuneError(f"{d}: no split.json, so no proof it did not train on the dev texts (blend models "
                                "that convtune train saved)")
        for part in ("dev", "test"):
            if part in expected and seen.get(part, {}).get("fingerprint") != expected[part]["fingerprint"]:
                raise ConvtuneError(f"{d} was trained on another split of {splits.name} (its {part} texts differ): "
                                    "blend models trained on the same split (same data, seed and dev file)")
    members = [load(d, device, precision) for d in run_dirs]
    return train_run(splits, Ensemble(members, sources=[str(d) for d in run_dirs], steps=steps), out,
                     overwrite=overwrite, command=command)


def _write_run(tmp: Path, clf: TextClassifier, splits: Splits, metrics: dict, step_losses: list,
               command: str | None, name: str) -> None:
    """The run directory's files: model, metrics.json, split.json, the model card (README.md),
    confusion matrices, reliability diagrams, curve."""
    for part in ("dev", "test"):
        if part in metrics:
            m, suffix = metrics[part], "" if part == "test" else "_dev"
            if m.get("multi_label"):  # no confusion matrix for label sets: each label's P / R / F1
                plot_per_label(m, tmp / f"per_label{suffix}.png", f"{splits.name} {part}: "
                               f"micro-F1 {m['micro_f1']:.4f}, macro-F1 {m['macro_f1']:.4f}")
            else:
                plot_confusion_of(m, tmp / f"confusion_matrix{suffix}.png",
                                  f"{splits.name} {part}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
            if "calibration" in m:
                plot_reliability(m["calibration"], tmp / f"reliability{suffix}.png", f"{splits.name} {part}: reliability")
    clf.save_into(tmp)
    write_json(tmp / "metrics.json", metrics)
    split = splits.describe()  # fingerprints hash every text: once
    write_json(tmp / "split.json", split)
    (tmp / "README.md").write_text(model_card(clf.manifest_, metrics, split, command, name), encoding="utf-8")
    if metrics["history"]:
        plot_training(metrics["history"], step_losses, tmp / "training_curve.png")


def eval_name(spec: str) -> str:
    """File-name-safe tag for eval-<tag>.json."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).stem if Path(spec).exists() else spec)


def evaluate_run(model_dir: str | Path, data, spec: str, device: str | None = None,
                 precision: str | None = None) -> dict:
    """Evaluate a saved model on labelled data; writes DIR/eval-<spec>.json (atomically)."""
    clf = load(model_dir, device, precision)
    m = clf.evaluate(data.texts, data.labels)
    m["dataset"] = spec
    path = Path(model_dir) / f"eval-{eval_name(spec)}.json"
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(m, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return m
