"""The comparison report: pictures, report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np

from convtune import markdown as md
from convtune.experiments.plots import _pyplot, plot_confusion


def safe_name(config: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", config)


def plot_learning_curves(runs: list[dict], path: Path) -> bool:
    """Dev accuracy per epoch, mean over seeds, one line per config (epoch-less models skipped)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for name in dict.fromkeys(r["config"] for r in runs):
        curves = [[h["dev_accuracy"] for h in r["history"]] for r in runs if r["config"] == name and r["history"]]
        if not curves:
            continue
        n = max(len(c) for c in curves)
        mean = [np.mean([c[i] for c in curves if len(c) > i]) for i in range(n)]
        ax.plot(range(1, n + 1), mean, marker="o", label=name)
        drawn = True
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def plot_accuracy_vs_time(rows: list[dict], path: Path) -> None:
    """Mean test accuracy against mean training time (log scale), error bars = std over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        (t, ts), (a, as_) = r["train_seconds"], r["accuracy"]
        ax.errorbar(t, a, xerr=ts, yerr=as_, fmt="o", capsize=3)
        ax.annotate(r["config"], (t, a), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("training time, s (log)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_pictures(runs: list[dict], rows: list[dict], out: Path) -> list[str]:
    """All PNGs of the report; returns their file names in display order."""
    names = []
    if plot_learning_curves(runs, out / "learning_curves.png"):
        names.append("learning_curves.png")
    plot_accuracy_vs_time(rows, out / "accuracy_vs_time.png")
    names.append("accuracy_vs_time.png")
    for r in rows:
        rs = [x for x in runs if x["config"] == r["config"]]
        if any(x["confusion_matrix"] is None for x in rs):  # too many classes for a dense matrix
            continue
        total = np.sum([x["confusion_matrix"] for x in rs], axis=0).tolist()
        name = f"confusion_{safe_name(r['config'])}.png"
        plot_confusion(total, rs[0]["labels"], out / name, f"{r['config']} (summed over {len(rs)} seeds)")
        names.append(name)
    return names


def _pm(x: tuple[float, float], scale: float = 100, digits: int = 2) -> str:
    return f"{x[0] * scale:.{digits}f} ± {x[1] * scale:.{digits}f}"


def render_markdown(res: dict, pictures: list[str]) -> str:
    o = res["options"]
    blends = any("blend_accuracy" in r for r in res["summary"])
    lines = [f"# convtune compare: {res['dataset']}", "",
             f"Encoder `{o['encoder']}`, max length {o['max_length']}, seeds {res['seeds']}, split seed "
             f"{res['split']['seed']} ({res['split']['method']}; train {res['split']['train']['size']}, dev "
             f"{res['split']['dev']['size']}, test {res['split']['test']['size']}). Command: `{res['command']}`", "",
             *(["Multi-label: test accuracy is subset accuracy (a text counts when its whole label set is "
                "right), macro-F1 over labels, at each label's threshold tuned on dev.", ""]
               if res["split"].get("multi_label") else []),
             "| configuration | seeds | test accuracy % | test macro-F1 % | test ECE % (before temperature) "
             "| train s | predict texts/s |" + (" blended with TF-IDF: test accuracy % (weight) |" if blends else ""),
             "|---|---|---|---|---|---|---|" + ("---|" if blends else "")]
    for r in sorted(res["summary"], key=lambda r: -r["accuracy"][0]):
        ece = f"{_pm(r['ece'])} ({r['ece_uncalibrated'][0] * 100:.2f})" if "ece" in r else "–"
        blend = (f" {_pm(r['blend_accuracy'])} ({r['blend_weight'][0]:.2f}) |" if "blend_accuracy" in r else " – |")
        lines.append(f"| {r['config']} | {r['seeds']} | {_pm(r['accuracy'])} | {_pm(r['macro_f1'])} | {ece} | "
                     f"{_pm(r['train_seconds'], 1, 1)} | {r['texts_per_s'][0]:.0f} |" + (blend if blends else ""))
    lines += ["", "Mean ± sample standard deviation over seeds (ddof=1)."]
    if blends:
        lines += ["", "The blend column: each neural cell's model with a TF-IDF model of the whole text mixed in by a "
                      "weight on the neural model chosen on dev (`--blend tfidf`; its two endpoints are the cell itself "
                      "and the `tfidf-svm` row)."]
    lines += ["", "## Paired tests (same test texts)", ""]
    for t in res["paired_tests"]:
        b = t["bootstrap"]
        per = "; ".join(f"seed {s}: {m['a_only']} vs {m['b_only']}, p = {m['p_value']:.3g}"
                        for s, m in t["mcnemar_per_seed"].items())
        lines += [f"**{t['a']} vs {t['b']}**: accuracy difference {b['mean_diff'] * 100:+.2f} points "
                  f"(paired bootstrap 95% CI {b['ci95'][0] * 100:+.2f} to {b['ci95'][1] * 100:+.2f}). "
                  f"McNemar exact, texts only {t['a']} / only {t['b']} got right: {per}.", ""]
    if not res["paired_tests"]:
        lines += ["(no CNN / linear pair in this grid)", ""]
    lines += _examples(res.get("examples"))
    lines += ["## Pictures", ""] + [f"![{p}]({p})" for p in pictures] + [""]
    return "\n".join(lines)


def highlighted(text: str, ngrams: list[dict]) -> str:
    """The text with each n-gram span in <mark> (angle brackets of the text itself shown as ‹ ›,
    so that only our tags are HTML)."""
    out, at = [], 0
    for g in sorted(ngrams, key=lambda g: g["start"]):
        if g["start"] < at:
            continue
        out += [text[at:g["start"]], "<mark>", text[g["start"]:g["end"]], "</mark>"]
        at = g["end"]
    out.append(text[at:])
    parts = [p if p in ("<mark>", "</mark>") else p.replace("<", "‹").replace(">", "›").replace("|", "¦") for p in out]
    return " ".join("".join(parts).split())


def _examples(examples: dict | None) -> list[str]:
    if not examples:
        return []
    lines = ["## Decisive n-grams", "",
             f"The first test texts as `{examples['config']}` (first seed) labelled them, with the n-grams that "
             "contributed most to the predicted label's logit highlighted (exact contributions: `convtune explain`).",
             "", "| given | predicted (probability) | text |", "|---|---|---|"]
    for e in examples["texts"]:
        lines.append(f"| {md.text(e['given'])} | {md.text(e['label'])} ({e['probability']:.2f}) | "
                     f"{highlighted(e['text'], e['ngrams'])} |")
    return lines + [""]


def _marked(escaped: str) -> str:
    """Our <mark> tags back from their escaped form (the text around them stays escaped)."""
    return escaped.replace("&lt;mark&gt;", "<mark>").replace("&lt;/mark&gt;", "</mark>")


def render_html(markdown: str, out: Path, title: str = "convtune compare") -> str:
    """A minimal self-contained HTML page from our own markdown (tables, headings, images inlined)."""
    body, table = [], []

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = [[_marked(html.escape(c.strip())) for c in r.strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            rest = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
            body.append(f"<table><tr>{head}</tr>{rest}</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if m := re.match(r"!\[(.*)\]\((.*)\)", line):
            data = base64.b64encode((out / m.group(2)).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            text = html.escape(line)
            text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
            text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
            body.append(f"<p>{text}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:100%;display:block;margin:1em 0}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
