"""`convtune explain` (the n-grams that decided each label) and `convtune audit` (labels that are probably wrong)."""

from __future__ import annotations

import argparse
import json

from convtune.errors import ConvtuneError


def cmd_explain(a: argparse.Namespace) -> int:
    from convtune.estimators.registry import load

    if bool(a.texts) == bool(a.data):
        raise ConvtuneError("explain wants texts or --data SPEC (one of the two)")
    if a.top is not None and a.top < 1:
        raise ConvtuneError("--top must be at least 1")
    clf = load(a.model_dir, a.device, a.precision)
    if a.data:
        return _explain_data(clf, a)
    for text, e in zip(a.texts, clf.explain(a.texts, label=a.label, top=a.top or 5)):
        print(json.dumps({"text": text, **e}, ensure_ascii=False) if a.json else _render(text, e))
    return 0


def _render(text: str, e: dict) -> str:
    shown = text if len(text) <= 100 else text[:97] + "..."
    lines = [f"{shown!r} -> {e['label']} (probability {e['probability']:.3f}; logit {e['logit']:+.3f} = bias "
             f"{e['bias']:+.3f} + the n-grams below + rest {e['rest']:+.3f})"]
    for g in e["ngrams"] + e["against"]:
        lines.append(f"  {g['contribution']:+8.3f}  {g['text']!r}  [{g['start']}:{g['end']}]")
    return "\n".join(lines)


def _explain_data(clf, a: argparse.Namespace) -> int:
    from convtune.data.builtin import BUILTIN, model_splits, read_spec
    from convtune.estimators.explain import decisive_ngrams

    if a.data in BUILTIN:
        splits = model_splits(a.model_dir, a.data)
        data = splits.test or splits.dev
    else:
        data = read_spec(a.data, a.text_col, a.label_col, a.encoding)
    table = decisive_ngrams(clf, data.texts, top=a.top or 20)
    if a.json:
        print(json.dumps(table, ensure_ascii=False))
        return 0
    for label, rows in table.items():
        print(f"\n{label}: the n-grams that most often decided it ({len(data.texts)} texts)")
        print("   total    mean  texts  n-gram")
        for r in rows:
            print(f"{r['total']:8.2f} {r['mean']:7.3f} {r['texts']:6d}  {r['ngram']}")
    return 0


def cmd_audit(a: argparse.Namespace) -> int:
    from convtune.data.builtin import BUILTIN, load_splits, read_spec
    from convtune.data.texts import TextSet
    from convtune.config import TrainConfig
    from convtune.experiments.audit import audit, write_audit

    seed = TrainConfig().seed if a.seed is None else a.seed
    if a.data in BUILTIN:
        s = load_splits(a.data, seed=seed)
        parts = [p for p in (s.train, s.dev, s.test) if p is not None] if a.part == "all" else [getattr(s, a.part)]
        if None in parts:
            raise ConvtuneError(f"{a.data} has no {a.part} split")
        data = TextSet([t for p in parts for t in p.texts], [y for p in parts for y in p.labels])
    else:
        data = read_spec(a.data, a.text_col, a.label_col, a.encoding)
    options = {"encoder": a.encoder} if a.encoder and a.method != "tfidf" else {}
    result = audit(data, a.method, a.folds, seed, **options)
    out = write_audit(result, data, a.out, a.data, a.method, a.overwrite)
    report = (out / "report.md").read_text(encoding="utf-8")
    print("\n".join(report.splitlines()[:16]))
    print(f"\nsaved {out}/suspects.csv ({int(result.flagged.sum())} suspects) and report.md")
    return 0
