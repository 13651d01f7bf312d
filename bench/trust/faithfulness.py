"""Faithfulness of CNN n-gram explanations against Integrated Gradients.

    .venv/bin/python -m bench.trust.faithfulness --model runs/kept/sst2-finetune-s42-epochs_5 --data sst2 \
        --out bench/trust/faithfulness

On the test split, for each text and its predicted class c (ERASER, DeYoung et al. 2020):
  comprehensiveness = p_c(text) - p_c(text without the rationale's tokens)   (higher: more faithful)
  sufficiency       = p_c(text) - p_c(the rationale's tokens alone)          (lower: more faithful)
Rationales, on the model's own tokens ([CLS] / [SEP] always kept):
  cnn top-3 n-grams   the 3 windows with the largest contribution to c's logit (modeling.explain),
                      their tokens together (overlapping windows share tokens)
  IG top-3 tokens     Captum's LayerIntegratedGradients on the word embeddings, 50 steps, [PAD]
                      baseline, attributions summed over the embedding: the 3 highest tokens
  IG top-m tokens     as many IG tokens as the cnn rationale has (the same token budget)
  random m tokens     m tokens drawn at random (seeded): the floor
Time per text: `Classifier.explain([text])` (the whole user-facing call, character spans
included) against one IG attribution (50 steps in one batch), both in fp32, one text at a time.
Run nothing else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

import convtune
from convtune.data.builtin import model_splits
from convtune.modeling.explain import head_terms


def probability(clf, ids: list[int], c: int) -> float:
    x = torch.tensor([ids])
    logits = clf.model_(x, torch.ones_like(x)).float().numpy()
    return float(clf.label_space_.probabilities(logits)[0, c])


RULES = ("groups", "windows", "distinct")


def cnn_rationale(clf, ids: list[int], c: int, k: int, rule: str) -> set[int]:
    """Token positions of the top-k n-grams: the k best windows ("windows"), or windows taken in
    order of contribution, each joining the group it overlaps, until k separate groups exist
    ("groups": k n-grams as `explain` shows them once overlaps are merged)."""
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    (terms,) = head_terms(clf.model_.head, clf.model_.token_states(x, mask).float(), mask)
    inner = set(range(1, len(ids) - 1))  # not [CLS] / [SEP]
    spans = [(int(terms.starts[w]), int(terms.ends[w])) for w in torch.argsort(terms.values[:, c], descending=True)]
    spans = [(s, e) for s, e in spans if set(range(s, e)) & inner]
    if rule == "windows":
        return {t for s, e in spans[:k] for t in range(s, e)} & inner
    if rule == "distinct":  # the best window, then the best one not overlapping it, ...: k disjoint n-grams
        chosen: list[set[int]] = []
        for s, e in spans:
            window = set(range(s, e)) & inner
            if not any(g & window for g in chosen):
                chosen.append(window)
            if len(chosen) == k:
                break
        return set().union(*chosen)
    groups: list[set[int]] = []  # as estimators.explain._grouped, on token positions
    for s, e in spans:
        window = set(range(s, e)) & inner
        hit = [g for g in groups if g & window]
        if hit:
            for other in hit[1:]:
                hit[0] |= other
                groups.remove(other)
            hit[0] |= window
        elif len(groups) < k:
            groups.append(window)
        else:
            break
    return set().union(*groups)


def ig_scores(clf, ig, ids: list[int], c: int, steps: int) -> np.ndarray:
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    base = torch.full_like(x, clf.tokenizer_.pad_token_id)
    base[0, 0], base[0, -1] = x[0, 0], x[0, -1]  # keep [CLS] / [SEP]: only the words are integrated
    attr = ig.attribute(x, baselines=base, target=c, additional_forward_args=(mask,), n_steps=steps,
                        internal_batch_size=steps)
    return attr.sum(-1)[0].detach().numpy()


def scores_for(clf, ids: list[int], c: int, keep_out: set[int]) -> tuple[float, float]:
    """(comprehensiveness, sufficiency) of a rationale given as token positions."""
    p = probability(clf, ids, c)
    without = [t for i, t in enumerate(ids) if i not in keep_out]
    alone = [ids[0]] + [t for i, t in enumerate(ids) if i in keep_out] + [ids[-1]]
    return p - probability(clf, without, c), p - probability(clf, alone, c)


def main() -> None:
    from captum.attr import LayerIntegratedGradients

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="sst2")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--limit", type=int, default=None, help="the first N texts (default: all)")
    ap.add_argument("--split", default="test", choices=("dev", "test"), help="dev: to choose --cnn; test: to report")
    ap.add_argument("--cnn", default="groups", choices=RULES,
                    help="the cnn rationale: k groups of overlapping windows, the k best windows, or k disjoint windows")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    clf = convtune.load(a.model, precision="fp32")
    clf._token_path()  # puts the model in eval mode on its device
    torch.set_grad_enabled(True)
    texts = getattr(model_splits(a.model, a.data), a.split).texts[: a.limit]
    forward = lambda ids, mask: clf.model_(ids, mask).float()
    ig = LayerIntegratedGradients(forward, clf.model_.encoder.get_input_embeddings())
    rng = random.Random(0)
    rows, t_cnn, t_ig = [], [], []
    for text in texts:
        ids = clf.tokenizer_(text, truncation=True, max_length=clf.max_length_)["input_ids"]
        if len(ids) < 3:
            continue
        with torch.no_grad():
            c = int(clf.decision_function([text])[0].argmax())
            start = time.perf_counter()
            clf.explain([text], top=a.k)
            t_cnn.append(time.perf_counter() - start)
            cnn = cnn_rationale(clf, ids, c, a.k, a.cnn)
            others = {r: cnn_rationale(clf, ids, c, a.k, r) for r in RULES if r != a.cnn}
        start = time.perf_counter()
        attr = ig_scores(clf, ig, ids, c, a.steps)
        t_ig.append(time.perf_counter() - start)
        inner = np.arange(1, len(ids) - 1)
        order = inner[np.argsort(-attr[1:-1], kind="stable")]
        m = len(cnn)
        with torch.no_grad():
            rationales = {"cnn top-3 n-grams": cnn, **{f"cnn top-3 ({r})": o for r, o in others.items()},
                          "IG top-3 tokens": set(order[: a.k].tolist()),
                          "IG top-m tokens": set(order[:m].tolist()),
                          "random m tokens": set(rng.sample(inner.tolist(), min(m, len(inner))))}
            rows.append({"tokens": len(ids) - 2, "m": m,
                         **{name: scores_for(clf, ids, c, r) for name, r in rationales.items()}})
    names = list(rows[0])[2:]
    summary = {name: {"comprehensiveness": float(np.mean([r[name][0] for r in rows])),
                      "sufficiency": float(np.mean([r[name][1] for r in rows]))} for name in names}
    res = {"model": a.model, "data": a.data, "split": a.split, "cnn": a.cnn, "texts": len(rows), "k": a.k,
           "ig_steps": a.steps,
           "mean_tokens": float(np.mean([r["tokens"] for r in rows])), "mean_m": float(np.mean([r["m"] for r in rows])),
           "seconds_per_text": {"cnn explain": float(np.mean(t_cnn)), "integrated gradients": float(np.mean(t_ig))},
           "summary": summary, "date": time.strftime("%Y-%m-%d")}
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [f"Faithfulness on {a.data} {a.split} ({len(rows)} texts, mean {res['mean_tokens']:.1f} tokens; the cnn "
             f"rationale ({a.cnn}) covers {res['mean_m']:.1f} tokens on average). Model `{a.model}`, fp32, {res['date']}.", "",
             "| rationale | comprehensiveness (higher is better) | sufficiency (lower is better) |", "|---|---|---|"]
    lines += [f"| {n} | {summary[n]['comprehensiveness']:.4f} | {summary[n]['sufficiency']:.4f} |" for n in names]
    s = res["seconds_per_text"]
    lines += ["", f"CPU time per text: cnn explain {s['cnn explain'] * 1000:.1f} ms, integrated gradients "
              f"({a.steps} steps) {s['integrated gradients'] * 1000:.1f} ms: "
              f"{s['integrated gradients'] / s['cnn explain']:.1f}x.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
