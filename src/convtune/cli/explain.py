"""`convtune explain` (the n-grams that decided each label) and `convtune audit` (labels that are probably wrong)."""

from __future__ import annotations

import argparse
import json

from convtune.cli.argtypes import seed_arg, whole_number_arg

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


def add_audit_parser(sub) -> None:
    u = sub.add_parser("audit", help="texts whose given label is probably wrong (out-of-fold probabilities + cleanlab)")
    u.add_argument("--data", required=True, help="file, or built-in set name")
    u.add_argument("--part", default="all", choices=("all", "train", "dev", "test"),
                   help="built-in sets: which split to audit (default: all of them together)")
    u.add_argument("--method", default="tfidf", choices=("tfidf", "frozen", "finetune"),
                   help="the fold models: TF-IDF + SVM (seconds), a frozen encoder + CNN head (minutes), or "
                        "fine-tuned for 2 epochs (k fine-tunings)")
    u.add_argument("--encoder", default=None, help="--method frozen / finetune: the encoder (default minilm-l6)")
    u.add_argument("--folds", type=whole_number_arg(2, 100, wants="a whole number of folds from 2 to 100"), default=5)
    u.add_argument("--seed", type=seed_arg, default=42, help="the folds' and models' seed (default 42)")
    u.add_argument("--out", required=True, help="directory for suspects.csv, report.md, summary.json")
    u.add_argument("--overwrite", action="store_true")
    u.add_argument("--text-col")
    u.add_argument("--label-col")
    u.add_argument("--encoding", default="utf-8")


def cmd_audit(a: argparse.Namespace) -> int:
    from convtune.data.builtin import BUILTIN, load_splits, read_spec
    from convtune.data.texts import TextSet
    from convtune.experiments.audit import audit, write_audit

    if a.data in BUILTIN:
        s = load_splits(a.data, seed=a.seed)
        parts = [p for p in (s.train, s.dev, s.test) if p is not None] if a.part == "all" else [getattr(s, a.part)]
        if None in parts:
            raise ConvtuneError(f"{a.data} has no {a.part} split")
        data = TextSet([t for p in parts for t in p.texts], [y for p in parts for y in p.labels])
    else:
        data = read_spec(a.data, a.text_col, a.label_col, a.encoding)
    options = {"encoder": a.encoder} if a.encoder and a.method != "tfidf" else {}
    result = audit(data, a.method, a.folds, a.seed, **options)
    out = write_audit(result, data, a.out, a.data, a.method, a.overwrite)
    report = (out / "report.md").read_text(encoding="utf-8")
    print("\n".join(report.splitlines()[:16]))
    print(f"\nsaved {out}/suspects.csv ({int(result.flagged.sum())} suspects) and report.md")
    return 0
