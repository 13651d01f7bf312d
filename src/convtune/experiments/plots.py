"""Figures: confusion matrices (capped for many classes) and training curves, with a CJK font."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convtune.metrics import TOP_CONFUSION_CLASSES

ANNOTATE_MAX = 30            # classes up to which a confusion plot writes the count in each cell


def _add_packaged_cjk_font() -> None:
    """Register Noto Sans CJK from the noto-cjk-sans-otc wheel (no system font is needed)."""
    from matplotlib import font_manager

    from convtune.paths import module_dir

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


def _most_confused(m: np.ndarray, labels: list[str], k: int) -> tuple[np.ndarray, list[str]]:
    """The k rows / columns with the most off-diagonal counts, in label order."""
    off = m - np.diag(np.diag(m))
    keep = np.sort(np.argsort(-(off.sum(0) + off.sum(1)), kind="stable")[:k])
    return m[np.ix_(keep, keep)], [labels[i] for i in keep]


TICK_CHARS = 40  # a longer label is cut on the axes (a long tick label costs matplotlib minutes)


def short(label) -> str:
    label = str(label)
    return label if len(label) <= TICK_CHARS else label[: TICK_CHARS - 1] + "…"


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """Confusion matrix as a PNG, rows = true label; counts in the cells up to ANNOTATE_MAX
    classes. Past TOP_CONFUSION_CLASSES classes only the most confused ones are drawn, so the
    figure stays readable and quick whatever the number of classes."""
    plt = _pyplot()
    m = np.asarray(matrix)
    if len(labels) > TOP_CONFUSION_CLASSES:
        m, labels = _most_confused(m, labels, TOP_CONFUSION_CLASSES)
        title = f"{title}\n({len(labels)} most confused classes)"
    labels = [short(y) for y in labels]
    size = min(12.0, max(4.0, 0.6 * len(labels) + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(m, cmap="Blues")
    ticks = 8 if len(labels) <= ANNOTATE_MAX else 6
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=ticks)
    ax.set_yticks(range(len(labels)), labels, fontsize=ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= ANNOTATE_MAX:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, str(m[i, j]), ha="center", va="center",
                        color="white" if m[i, j] > m.max() / 2 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_of(m: dict, path: Path, title: str) -> None:
    """`plot_confusion` of a `compute_metrics` result: the dense matrix, or its top sub-matrix."""
    if m.get("confusion_matrix") is not None:
        plot_confusion(m["confusion_matrix"], m["labels"], path, title)
    else:
        top = m["confusion_top"]
        plot_confusion(top["matrix"], top["labels"], path,
                       f"{title}\n({len(top['labels'])} of {top['classes']} classes, the most confused)")


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


def plot_per_label(m: dict, path: Path, title: str) -> None:
    """Multi-label: each label's precision, recall and F1 as bars (labels by support, most first)."""
    plt = _pyplot()
    per = m["per_class"]
    order = sorted(per, key=lambda lab: (-per[lab]["support"], lab))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(order) + 2), 4.2))
    x = np.arange(len(order))
    for k, (key, color) in enumerate((("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green"))):
        ax.bar(x + (k - 1) * 0.27, [per[lab][key] for lab in order], width=0.27, label=key, color=color)
    ax.set_xticks(x, [f"{short(lab)} ({per[lab]['support']})" for lab in order], rotation=75, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(calibration: dict, path: Path, title: str) -> None:
    """Reliability diagram: accuracy against mean confidence per bin (15 bins), calibrated and,
    when the model has a temperature, before it; marker area follows the bin's text count."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    curves = [("before temperature", calibration.get("uncalibrated"), "tab:red"),
              ("calibrated" if "uncalibrated" in calibration else "model", calibration, "tab:blue")]
    for name, c, colour in curves:
        if not c:
            continue
        bins = c["reliability"]
        total = max(1, sum(b["count"] for b in bins))
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour, lw=1.5,
                label=f"{name}: ECE {c['ece'] * 100:.2f}%, NLL {c['nll']:.3f}")
        ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour,
                   s=[10 + 400 * b["count"] / total for b in bins], alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean predicted probability in the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
