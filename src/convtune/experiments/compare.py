"""`convtune compare`: a grid of heads x modes x seeds on one split, with an honest report.

The split is made once (``--split-seed``), so every configuration is tested on the same test
texts and the CNN and linear heads can be compared example by example (McNemar's exact test
per seed, and a paired bootstrap of the accuracy difference). Training seeds vary the
initialisation and batch order. Frozen configurations share the token-state cache, so only the
first one pays for the encoder pass.

Outputs in DIR: report.md, report.html (self-contained, images inlined), results.json,
confusion_<config>.png, learning_curves.png, accuracy_vs_time.png.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from convtune.data.splits import Splits, subsample
from convtune.config import transformer_heads
from convtune.errors import ConvtuneError
from convtune.data.inputs import as_set
from convtune.estimators.registry import make_estimator
from convtune.experiments.report import safe_name
from convtune.experiments.tracking import make_tracker
from convtune.metrics import compute_metrics, mean_sd



@dataclass(frozen=True)
class Config:
    head: str
    mode: str  # finetune | frozen | "-" for models without an encoder

    @property
    def name(self) -> str:
        return self.head if self.mode == "-" else f"{self.head}/{self.mode}"


def grid(heads: list[str], modes: list[str]) -> list[Config]:
    """Every transformer head in every mode; baselines once."""
    out = []
    for h in heads:
        out += [Config(h, m) for m in modes] if h in transformer_heads() else [Config(h, "-")]
    return out


def make(config: Config, seed: int, options: dict):
    """An estimator for one grid cell (options: encoder, epochs, max_length, ...)."""
    if config.head == "textcnn":  # its own recipe: 10 epochs, batch 50, lr 1e-3 (see estimators/textcnn.py)
        return make_estimator("textcnn", max_length=options["max_length"], seed=seed, device=options.get("device"))
    train = {k: options.get(k) for k in ("epochs", "patience", "batch_size", "lr", "precision", "device")}
    if config.mode == "frozen":  # its own count (None: train's default), not the fine-tuning one
        train["epochs"] = options.get("frozen_epochs")
    # A TF-IDF cell takes only the seed of these; make_estimator leaves the rest out. A head's
    # cell is the head alone (blend none): the TF-IDF row is its own cell beside it.
    return make_estimator(config.head, encoder=options["encoder"], mode=config.mode,
                          max_length=options["max_length"], seed=seed, blend="none", **train)


def run_one(config: Config, seed: int, splits: Splits, options: dict) -> dict:
    """Fit one cell, then score and time prediction on the test split."""
    clf = make(config, seed, options)
    tracker = make_tracker(options.get("track"))
    if tracker is not None:  # one tracked run per cell, in the report folder (MLflow: beside it)
        tracker.start(f"{config.name}-seed{seed}", options["track_dir"] / safe_name(f"{config.name}-seed{seed}"),
                      options["track_root"])
    start = time.perf_counter()
    try:
        clf.fit(splits.train.texts, splits.train.labels, splits.dev.texts, splits.dev.labels,
                callbacks=[tracker] if tracker is not None else [])
    except BaseException:
        if tracker is not None:
            tracker.abort_unless_finished()
        raise
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    logits = clf.decision_function(splits.test.texts)
    proba = clf.label_space_.probabilities(logits)
    if clf.multi_label_:  # a label set per text, compared whole ("accuracy" is subset accuracy)
        predict_seconds = time.perf_counter() - start
        test = as_set(splits.test.texts, splits.test.labels, "test data", multi=True)
        m, pred = clf.score_logits(logits, test), set_keys(clf.label_space_.decode_stored(proba))
    else:
        pred = clf.label_space_.decode(proba)
        predict_seconds = time.perf_counter() - start
        m = compute_metrics(splits.test.labels, pred, clf.labels_)
        m["calibration"] = clf.calibration_scores(logits, splits.test.labels)
    if tracker is not None:
        tracker.finish({"hyperparameters": clf.hyperparameters(), "test": {k: m[k] for k in ("accuracy", "macro_f1")}},
                       None)
    cal = m["calibration"]
    explained = explain_examples(clf, splits.test) if options.get("explain_first") == (config.name, seed) else None
    blended = blend_cell(clf, splits, logits, seed) if options.get("blend", True) else {}
    return {**blended, "explanations": explained, "config": config.name, "seed": seed, "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "micro_f1": m.get("micro_f1"), "ece": cal["ece"], "ece_uncalibrated": cal.get("uncalibrated", cal)["ece"],
            "confusion_matrix": m["confusion_matrix"], "labels": clf.labels_,
            "train_seconds": train_seconds, "texts_per_s": len(pred) / predict_seconds,
            "history": clf.training_summary()["history"], "predictions": pred}


EXAMPLES = 6  # test texts the report shows with their decisive n-grams


def blend_cell(clf, splits: Splits, neural_logits, seed: int) -> dict:
    """The cell's model blended with a TF-IDF model by a weight chosen on dev (what `--blend
    tfidf` gives): its test accuracy and macro-F1 beside the cell's own, which stay the neural
    model's. Single-label models over an encoder only (a multi-label cell is scored at tuned
    thresholds, its blend would be at 0.5)."""
    if not hasattr(clf, "fit_lexical") or clf.multi_label_:
        return {}
    record = clf.fit_lexical(splits.train, splits.dev, seed)
    scores = clf.blend_scores(splits.test, neural_logits, clf.lexical_proba(list(splits.test.texts)))["blend"]
    return {"blend_accuracy": scores["accuracy"], "blend_macro_f1": scores["macro_f1"], "blend_weight": record["weight"]}


def explain_examples(clf, test) -> list[dict] | None:
    """The first test texts with the n-grams that decided them (None for a head that cannot say)."""
    texts = test.texts[:EXAMPLES]
    try:
        found = clf.explain(texts, top=3)
    except ConvtuneError:
        return None
    return [{"text": t, "given": y, **e} for t, y, e in zip(texts, test.labels, found)]


def set_keys(labels: list) -> list:
    """Label sets as one string each ("a|b"; "" for none), so that paired tests compare whole
    sets; single labels are returned as they are."""
    return ["|".join(y) if isinstance(y, tuple) else y for y in labels]


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test on paired correctness: b = only A right, c = only B right."""
    from scipy.stats import binomtest

    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"a_only": b, "b_only": c, "p_value": float(p)}


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n: int = 2000, seed: int = 0) -> dict:
    """95% interval of accuracy(A) - accuracy(B), resampling test examples (seed-averaged correctness)."""
    rng = np.random.default_rng(seed)
    diff = correct_a.astype(float) - correct_b.astype(float)
    idx = rng.integers(0, len(diff), size=(n, len(diff)))
    means = diff[idx].mean(axis=1)
    return {"mean_diff": float(diff.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "p_a_not_better": float((means <= 0).mean())}


def paired_tests(runs: list[dict], gold: list[str], a: str, b: str) -> dict | None:
    """CNN-vs-linear style comparison of two configs over the seeds both have."""
    by = {(r["config"], r["seed"]): np.array(r["predictions"]) == np.array(gold) for r in runs}
    seeds = sorted({s for (c, s) in by if c == a} & {s for (c, s) in by if c == b})
    if not seeds:
        return None
    per_seed = {s: mcnemar(by[(a, s)], by[(b, s)]) for s in seeds}
    mean_a = np.mean([by[(a, s)] for s in seeds], axis=0)
    mean_b = np.mean([by[(b, s)] for s in seeds], axis=0)
    return {"a": a, "b": b, "mcnemar_per_seed": per_seed, "bootstrap": paired_bootstrap(mean_a, mean_b)}


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and sample sd over seeds (`metrics.mean_sd`) for each config, in first-seen order."""
    names = list(dict.fromkeys(r["config"] for r in runs))
    rows = []
    for name in names:
        rs = [r for r in runs if r["config"] == name]
        stat = lambda k: mean_sd(r[k] for r in rs)
        keys = ["accuracy", "macro_f1", "ece", "ece_uncalibrated", "train_seconds", "texts_per_s",
                "blend_accuracy", "blend_macro_f1", "blend_weight"]
        # (runs recorded before calibration have no ECE: their summary has none either)
        rows.append({"config": name, "seeds": len(rs), **{k: stat(k) for k in keys if all(k in r for r in rs)}})
    return rows


def run_compare(data: str, heads: list[str], modes: list[str], seeds: int, out: str | Path,
                options: dict, split_seed: int = 42, overwrite: bool = False, command: str = "") -> dict:
    """Run the grid and write the report directory (atomically); return the results."""
    from convtune._fs import atomic_dir
    from convtune.data.builtin import load_splits
    from convtune.experiments.report import render_html, render_markdown, write_pictures

    splits = load_splits(data, seed=split_seed)
    if splits.test is None:
        splits.test = splits.dev  # a set without a test split is compared on its dev split
    splits.train = subsample(splits.train, options.get("train_limit"), split_seed)
    cells = [(c, split_seed + i) for c in grid(heads, modes) for i in range(seeds)]
    cnn = next((cell for cell in cells if cell[0].head in ("cnn", "cnn+pool")), None)
    options = dict(options, explain_first=(cnn[0].name, cnn[1]) if cnn else None)
    with atomic_dir(out, overwrite) as tmp:
        runs, cell_options = [], dict(options, track_dir=tmp / "tracking", track_root=Path(out).parent)
        for config, seed in tqdm(cells, desc="compare", unit="run"):
            r = run_one(config, seed, splits, cell_options)
            runs.append(r)
            tqdm.write(f"{config.name} seed {seed}: test accuracy {r['accuracy']:.4f}, "
                       f"macro-F1 {r['macro_f1']:.4f}, train {r['train_seconds']:.1f} s")
        pairs = [paired_tests(runs, set_keys(splits.test.labels), f"{h}/{m}", f"linear/{m}")
                 for m in modes for h in ("cnn", "cnn+pool") if h in heads and "linear" in heads]
        examples = next(({"config": r["config"], "texts": r.pop("explanations")} for r in runs if r.get("explanations")),
                        None)
        for r in runs:
            r.pop("explanations", None)
        res = {"dataset": splits.name, "command": command, "options": options, "seeds": seeds, "sd": "ddof=1",
               "examples": examples,
               "split": splits.describe(), "summary": summarise(runs),
               "paired_tests": [p for p in pairs if p], "runs": runs}
        pictures = write_pictures(runs, res["summary"], tmp)
        md = render_markdown(res, pictures)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(render_html(md, tmp), encoding="utf-8")
        (tmp / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return res
