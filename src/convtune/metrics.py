"""Metrics, the text report, and plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def compute_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support and the confusion matrix (rows = truth)."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "size": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, lab in enumerate(labels)},
        "labels": list(labels),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def text_report(y_true: list[str], y_pred: list[str], labels: list[str]) -> str:
    """scikit-learn's classification report."""
    return classification_report(y_true, y_pred, labels=labels, digits=4, zero_division=0)


def _add_packaged_cjk_font() -> None:
    """Register Noto Sans CJK from the noto-cjk-sans-otc wheel (no system font is needed)."""
    from matplotlib import font_manager

    from .encoder_packages import module_dir

    folder = module_dir("noto_cjk_sans_otc")
    if folder is None:
        return
    path = folder / "NotoSansCJK-Regular.ttc"
    if path.is_file() and not any(f.fname == str(path) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(path))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _add_packaged_cjk_font()
    # CJK-capable fonts first where installed, so Chinese labels do not render as boxes.
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei",
                                       "DejaVu Sans"]
    return plt


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """Confusion matrix as a PNG, counts in the cells, rows = true label."""
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(history: list[dict], step_losses: list[tuple[float, float]], path: Path) -> None:
    """Training loss per step (smoothed) and dev accuracy / macro-F1 per epoch."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if step_losses:
        x, y = np.array(step_losses).T
        k = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        a1.plot(x, y, alpha=0.25, color="tab:blue")
        a1.plot(x[k - 1:], smooth, color="tab:blue")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    epochs = [h["epoch"] for h in history]
    a2.plot(epochs, [h["dev_accuracy"] for h in history], "o-", label="dev accuracy")
    a2.plot(epochs, [h["dev_macro_f1"] for h in history], "s-", label="dev macro-F1")
    a2.set_xlabel("epoch")
    a2.set_xticks(epochs)
    a2.legend()
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
