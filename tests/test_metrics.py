"""Metrics and plots, including Chinese labels."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from convtune.experiments.plots import plot_confusion
from convtune.metrics import compute_metrics


@pytest.mark.skipif(importlib.util.find_spec("noto_cjk_sans_otc") is None, reason="noto-cjk-sans-otc not installed")
def test_chinese_labels_render_without_missing_glyphs(tmp_path):
    labels = ["体育", "财经", "娱乐"]
    m = compute_metrics(["体育", "财经", "娱乐", "体育"], ["体育", "财经", "体育", "体育"], labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion(m["confusion_matrix"], labels, tmp_path / "cm.png", "测试集")
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert not [w for w in caught if "missing from font" in str(w.message)], [str(w.message) for w in caught]


def test_many_classes_keep_metrics_small_and_plots_readable(tmp_path, monkeypatch):
    """10,000 classes used to hang after epoch 1: a dense 10^8-cell confusion matrix per dev
    check and a plot that annotated every cell (48 s at 200 classes)."""
    import matplotlib.axes

    n = 5000
    labels = [f"c{i:05d}" for i in range(n)]
    truth = labels + labels[:50]
    pred = labels[1:] + labels[:1] + labels[:50]  # every class mistaken for the next, 50 right
    m = compute_metrics(truth, pred, labels)
    assert m["confusion_matrix"] is None and len(m["per_class"]) == n
    top = m["confusion_top"]
    assert len(top["labels"]) == 40 and top["classes"] == n and len(top["matrix"]) == 40
    assert sum(map(sum, top["matrix"])) >= 40  # its cells are real counts
    cells = []
    real_text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, *a, **k: (cells.append(a), real_text(self, *a, **k)))
    plot_confusion([[int(i == j) for j in range(200)] for i in range(200)],
                   [f"c{i}" for i in range(200)], tmp_path / "big.png", "200 classes")
    assert cells == [] and (tmp_path / "big.png").is_file()   # no per-cell text past 30 classes
    from PIL import Image

    assert max(Image.open(tmp_path / "big.png").size) <= 12 * 110 + 1  # the figure is capped
    plot_confusion([[2, 1], [0, 3]], ["a", "b"], tmp_path / "small.png", "2 classes")
    assert len(cells) == 4                                    # small matrices keep their counts


def test_the_top_confusion_holds_the_most_confused_classes():
    from convtune.metrics import top_confusion

    labels = [f"c{i:03d}" for i in range(200)]
    truth = labels + ["c007"] * 9
    pred = labels + ["c150"] * 9
    top = top_confusion(truth, pred, labels, k=2)
    assert top == {"labels": ["c007", "c150"], "matrix": [[1, 9], [0, 1]], "classes": 200}
    perfect = top_confusion(labels + ["c199"] * 3, labels + ["c199"] * 3, labels, k=2)
    assert perfect["labels"][-1] == "c199" and len(perfect["labels"]) == 2  # no errors: the most frequent


@pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning")  # expected: one text per class
def test_many_classes_train_and_report(tmp_path, capsys):
    """One text per class, 300 classes, dev / test files given: trains, reports, plots, warns."""
    import csv
    import json

    from convtune.cli import main

    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    for name in ("train", "dev", "test"):
        with (tmp_path / f"{name}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows((f"{words[i % 8]} item{i} {words[(i // 8) % 8]}", f"class{i}") for i in range(300))
    assert main(["train", "--data", str(tmp_path / "train.csv"), "--dev", str(tmp_path / "dev.csv"),
                 "--test", str(tmp_path / "test.csv"), "--head", "tfidf-svm", "--out", str(tmp_path / "run")]) == 0
    assert "300 of 300 classes have fewer than 2 training examples" in capsys.readouterr().err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["test"]["confusion_matrix"] is None and len(m["test"]["confusion_top"]["labels"]) <= 40
    assert (tmp_path / "run" / "confusion_matrix.png").is_file()


def test_mean_sd_is_the_sample_sd_everywhere():
    from convtune.experiments.compare import summarise
    from convtune.metrics import mean_sd

    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0) and mean_sd([0.5]) == (0.5, 0.0)
    keys = ("accuracy", "macro_f1", "ece", "ece_uncalibrated", "train_seconds", "texts_per_s")
    runs = [{"config": "c", **{k: v for k in keys}} for v in (0.8, 0.9)]
    assert summarise(runs)[0]["accuracy"] == pytest.approx((0.85, 0.0707107), abs=1e-6)  # ddof=1, not 0.05
