"""`convtune explain`: the n-grams that decided each text's label, or each class's over a data set."""

from __future__ import annotations

import argparse
import json

from convtune.errors import ConvtuneError


def add_parser(sub) -> None:
    x = sub.add_parser("explain", help="the n-grams that decided a CNN-head model's predictions (exact contributions)")
    x.add_argument("model_dir")
    x.add_argument("texts", nargs="*", help="texts to explain")
    x.add_argument("--label", help="explain this label's logit instead of the most probable one")
    x.add_argument("--top", type=int, default=None,
                   help="n-grams shown for and against the label (default 5), or per class with --data (default 20)")
    x.add_argument("--data", help="file or built-in set (its test split): each class's most decisive n-grams")
    x.add_argument("--text-col")
    x.add_argument("--label-col")
    x.add_argument("--encoding", default="utf-8")
    x.add_argument("--json", action="store_true", help="JSON lines instead of text")
    x.add_argument("--device", default=None, metavar="DEVICE")
    x.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"))


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
