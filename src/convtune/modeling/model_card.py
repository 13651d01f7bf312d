"""README.md for a model directory: a Hugging Face model card (YAML metadata, then prose).

Every run directory (`convtune train`, the best trial of `convtune search`) and every export gets
one, and `convtune serve` shows it at /info. The metadata follows the Hub's model-card fields
(library_name, pipeline_tag, language, license, base_model, tags, datasets, metrics,
model-index), so the card reads as the Hub's cards do; the prose says what the model was trained
on, with which split and command, how well it did, under which licence its encoder came, and
what it will not do well.
"""

from __future__ import annotations

import re

import yaml

from convtune import markdown as md
from convtune.data.builtin import BUILTIN
from convtune.modeling.encoders import PACKAGED

LICENCE_IDS = {"Apache-2.0": "apache-2.0", "MIT": "mit"}  # the Hub's lower-case licence identifiers


def _language(dataset: str | None, encoder: str) -> list[str]:
    spec = BUILTIN.get(dataset or "")
    found = re.search(r", (en|zh)\b", spec.description) if spec else None
    if found:
        return [found.group(1)]
    packaged = PACKAGED.get(encoder)
    return ["en"] if packaged and packaged.languages == "en" else []


def _metadata(manifest: dict, metrics: dict, name: str) -> dict:
    model = manifest.get("model", {})
    encoder = model.get("encoder", "")
    packaged = PACKAGED.get(encoder)
    dataset = metrics.get("dataset")
    meta = {"library_name": "convtune", "pipeline_tag": "text-classification",
            "language": _language(dataset, encoder),
            "license": LICENCE_IDS.get(packaged.licence, "other") if packaged else "other",
            "base_model": packaged.model.split(" ")[0] if packaged else encoder,
            "tags": ["convtune", "text-classification", f"{model.get('head', manifest.get('kind'))}-head",
                     model.get("mode", "")] + (["multi-label"] if manifest.get("multi_label") else []),
            "metrics": ["accuracy", "f1"]}
    if dataset:
        meta["datasets"] = [dataset]
    results = [{"type": "accuracy", "value": round(float(metrics["test"]["accuracy"]), 4)},
               {"type": "f1", "name": "macro-F1", "value": round(float(metrics["test"]["macro_f1"]), 4)}] \
        if isinstance(metrics.get("test"), dict) else []
    if results:
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": dataset, "type": dataset, "split": "test"}, "metrics": results}]}]
    meta["tags"] = [t for t in meta["tags"] if t]
    return meta


def _results(metrics: dict) -> list[str]:
    rows = ["| split | texts | accuracy | macro-F1 | ECE (calibrated) |", "|---|---|---|---|---|"]
    for part in ("dev", "test"):
        m = metrics.get(part)
        if isinstance(m, dict):
            ece = m.get("calibration", {}).get("ece")
            rows.append(f"| {part} | {m.get('size', '')} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                        f"{'' if ece is None else f'{ece:.4f}'} |")
    return rows if len(rows) > 2 else ["(no evaluation recorded)"]


def _blend(b) -> list[str]:
    """The lexical blend's weight and each part alone (metrics.json's "blend")."""
    if not isinstance(b, dict):
        return []
    if not b.get("kept"):
        return ["", "A TF-IDF model was fitted beside it and left out: on dev it did not gain beyond noise."]
    w = b.get("weight")
    weight = f"{w:.2f}" if isinstance(w, int | float) else "one per label"
    rows = ["", f"The probabilities blend the neural model (weight {weight}, chosen on dev) with a TF-IDF model "
                "of the whole text. Each part alone:", "", "| split | part | score |", "|---|---|---|"]
    for part in ("dev", "test"):
        scores = b.get(part)
        if isinstance(scores, dict):
            for name in ("neural", "lexical", "blend"):
                s = scores.get(name, {})
                key = "micro_f1" if "micro_f1" in s else "accuracy"
                if isinstance(s.get(key), int | float):
                    rows.append(f"| {part} | {name} | {key.replace('_', '-')} {s[key]:.4f} |")
    return rows


def model_card(manifest: dict, metrics: dict | None = None, split: dict | None = None, command: str | None = None,
               name: str = "model") -> str:
    """The README.md text of a model directory from its convtune.json, metrics.json and split.json."""
    metrics, split = metrics or {}, split or {}
    model = manifest.get("model", {})
    encoder = model.get("encoder", "")
    packaged = PACKAGED.get(encoder)
    labels = model.get("labels") or manifest.get("source", {}).get("model", {}).get("labels", [])
    lines = ["---", yaml.safe_dump(_metadata(manifest, metrics, name), sort_keys=False, allow_unicode=True).strip(),
             "---", "", f"# {md.text(name)}", "",
             f"A {md.text(model.get('head', manifest.get('kind')))} head over {md.code(encoder or 'no encoder')} "
             f"({model.get('mode', 'from scratch')}), trained with convtune {manifest.get('convtune_version', '')}. "
             f"Load it with `convtune.load(DIR)`, or serve it with `convtune serve DIR`.", "",
             "## Labels", "", ", ".join(md.code(lab) for lab in labels) or "(none recorded)", "",
             "## Data and split", ""]
    if split:
        sizes = ", ".join(f"{p} {split[p]['size']}" for p in ("train", "dev", "test") if isinstance(split.get(p), dict))
        lines += [f"{md.code(split.get('dataset', metrics.get('dataset', '?')))}: {md.text(split.get('method', '?'))} "
                  f"(seed {split.get('seed', '?')}): {sizes}. Early stopping and calibration used dev; test "
                  "was scored once, at the end.", ""]
    else:
        lines += ["(no split recorded)", ""]
    if metrics.get("recipe"):
        lines += [f"convtune chose the recipe: {md.text(metrics['recipe'])}.", ""]
    lines += ["## Command", "", md.block(command) if command else "(not recorded)", "",
              "## Results", "", *_results(metrics), *_blend(metrics.get("blend")), "",
              "## Encoder and licence", "",
              (f"{packaged.model}, licence {packaged.licence}; the fine-tuned weights inherit it."
               if packaged else f"{md.code(encoder)} (a local directory): see its own licence."), "",
              "## Known limits", "",
              f"- Reads at most {model.get('max_length', '?')} tokens a window (long texts: "
              f"{md.code(model.get('long_text', 'truncate'))}); what lies beyond is not seen"
              f"{' by the neural part (the TF-IDF part reads every word)' if manifest.get('blend', {}).get('kept') else ''}.",
              "- Trained on one data set: texts from another domain, language or label definition will be "
              "misclassified without warning; probabilities are calibrated on the dev split, not on new data.",
              "- Labels outside the list above are never predicted.", ""]
    return "\n".join(lines)
