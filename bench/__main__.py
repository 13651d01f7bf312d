"""One entry point for the benchmarks, run from the repository's root:

    python -m bench list                 every benchmark script, by group, with what it measures
    python -m bench run GROUP.NAME ARGS  run one (its own options: python -m bench run GROUP.NAME --help)
    python -m bench report NAME|all      regenerate results pages from the rows committed in bench/

`make results` is `python -m bench report all`: each page under docs/results/ rebuilt from its
recorded rows, with its hand-written notes (kept in their own files beside the rows) appended
unchanged, so a regeneration matches what is committed unless a row changed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUPS = {
    "speed": "training and prediction speed, MFU, convtune against Hugging Face's Trainer",
    "serving": "exported models, the server under load, the try-it page",
    "memory": "peak memory: frozen mode on a large set, one 1 MB text through every interface",
    "long_and_multilabel": "long documents (20 Newsgroups) and multi-label sets (Reuters, GoEmotions)",
    "adapters": "LoRA, AdaLoRA and IA3 against full fine-tuning",
    "blend": "a TF-IDF model blended into the neural one, against each part",
    "defaults": "how the training defaults were chosen, and that predictions stay the same",
    "trust": "calibration, explanation faithfulness, finding flipped labels",
    "sms": "SMS spam as a case study: recipes, splits, thresholds, errors",
    "fewshot": "a handful of labelled texts per class: recipes over random draws",
}
# Each results page: the commands (modules and arguments) that rebuild it from committed rows.
REPORTS = {
    "long_and_multilabel": [["bench.long_and_multilabel.report", f"bench/long_and_multilabel/{s}.jsonl",
                             f"docs/results/{s}.md"] for s in ("20news", "reuters", "goemotions")],
    "adapters": [["bench.adapters.report", "bench/adapters/adapters.jsonl", "docs/results/adapters.md"]],
    "blend": [["bench.blend.report", "bench/blend/blend.jsonl", "docs/results/blend.md"]],
    "fewshot": [["bench.fewshot.report", "bench/fewshot/fewshot.jsonl", "docs/results/fewshot.md"]],
    "defaults": [["bench.defaults.report_compare", f"docs/results/{d}"] for d in ("sst2", "trec")],
    "trust": [["bench.trust.calibration", "--report", "--out", "docs/results/calibration"]],
    "memory": [["bench.memory.long_text_memory", "--out", "bench/memory", "--report",
                "docs/results/long_text_memory.md"]],
}


def scripts() -> dict[str, str]:
    """GROUP.NAME -> the first line of its docstring, for every script under a group."""
    out = {}
    for group in GROUPS:
        for path in sorted((HERE / group).glob("*.py")):
            if path.stem != "__init__":
                doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
                out[f"{group}.{path.stem}"] = doc.splitlines()[0] if doc else ""
    return out


def _run(module: str, args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", module, *args], cwd=HERE.parent)


def main(argv: list[str]) -> int:
    verb, rest = (argv[0], argv[1:]) if argv else ("list", [])
    known = scripts()
    if verb == "list":
        for group, what in GROUPS.items():
            print(f"{group}: {what}")
            for name, doc in known.items():
                if name.startswith(group + "."):
                    print(f"  {name:42s} {doc}")
        return 0
    if verb == "run" and rest and rest[0] in known:
        return _run(f"bench.{rest[0]}", rest[1:])
    if verb == "report" and rest and (rest[0] in REPORTS or rest[0] == "all"):
        for group in REPORTS if rest[0] == "all" else [rest[0]]:
            for module, *args in REPORTS[group]:
                if _run(module, args) != 0:
                    return 1
        return 0
    name = rest[0] if rest else ""
    what = {"run": f"no benchmark named {name!r} (python -m bench list)",
            "report": f"no report named {name!r}; one of: all, {', '.join(REPORTS)}"}
    print(what.get(verb, f"usage: python -m bench list | run GROUP.NAME [ARGS] | report NAME|all (not {verb!r})"),
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
