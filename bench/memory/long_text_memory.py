"""Peak memory and time of predicting one 1 MB text, in every interface and under every long-text rule.

    .venv/bin/python -m bench.memory.long_text_memory [--encoder minilm-l6] [--out bench]

Trains three small frozen models on 400 SMS texts (truncate, head-tail, windows with every
window: --max-windows 0), exports the windows model to ONNX, then predicts, each in a fresh
child process, one short text and one text of 1,000,000 characters (SMS messages joined by
spaces) through Python (`convtune.load(...).predict_proba`), the CLI (`convtune predict`), the
ONNX export, and the server (`convtune serve`, one POST /predict). It reports each child's
peak resident memory (ru_maxrss from os.wait4), wall time and answer, and checks that the
interfaces give the same label for the 1 MB text. Writes OUT/long_text_memory.{json,md}.
Run nothing else meanwhile: the seconds are timings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import notes, run_child

CHARS = 1_000_000


def python_child(model: Path, text_file: Path) -> list[str]:
    code = ("import json, sys, convtune; m = convtune.load(sys.argv[1]); "
            "t = open(sys.argv[2], encoding='utf-8').read().rstrip('\\n'); "
            "print(json.dumps({'label': m.predict([t])[0], 'proba': m.predict_proba([t])[0].tolist()}))")
    return [sys.executable, "-c", code, str(model), str(text_file)]


def serve_once(convtune: str, model: Path, text_file: Path) -> dict:
    """Start `convtune serve`, POST the text once, SIGTERM it; its peak RSS and the answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = json.dumps({"texts": [text_file.read_text(encoding="utf-8").rstrip("\n")]}).encode()

    def ask_then_stop(proc) -> dict:
        for _ in range(600):
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=600) as r:
                    answer = json.loads(r.read())["predictions"][0]
                break
            except OSError:
                time.sleep(0.5)
        else:
            proc.kill()
            raise SystemExit("the server did not answer")
        proc.send_signal(signal.SIGTERM)
        return answer

    r = run_child([convtune, "serve", str(model), "--port", str(port), "--max-chars", str(2 * CHARS),
                   "--max-body", str(4 * CHARS)], stop=ask_then_stop)
    return {**r, "stdout": json.dumps({"label": r.pop("answer")["label"]})}


def train_models(work: Path, encoder: str) -> dict[str, Path]:
    from convtune import Classifier
    from convtune.data.builtin import load_splits
    from convtune.deploy.export import ParityData, export_onnx

    train = load_splits("sms_spam", seed=42).train
    texts, labels = train.texts[:400], train.labels[:400]
    models = {}
    for rule, extra in (("truncate", {}), ("head-tail", {}), ("windows", {"max_windows": 0})):
        clf = Classifier(encoder=encoder, mode="frozen", epochs=1, seed=0, cache="off", long_text=rule, **extra)
        clf.fit(texts, labels).save(work / rule)
        models[rule] = work / rule
    export_onnx(work / "windows", work / "windows-onnx", ParityData(texts[:50], None, "sms_spam"))
    models["windows onnx"] = work / "windows-onnx"
    return models


def prepare(work: Path, encoder: str) -> None:
    """In a child process (see main): the models and the two text files under `work`."""
    from convtune.data.builtin import load_splits

    sms = load_splits("sms_spam", seed=42).test.texts
    huge = " ".join(t.replace("\n", " ") for t in sms * 20)[:CHARS]
    (work / "short.txt").write_text(sms[0].replace("\n", " ") + "\n", encoding="utf-8")
    (work / "huge.txt").write_text(huge + "\n", encoding="utf-8")
    models = train_models(work, encoder)
    (work / "models.json").write_text(json.dumps({k: str(v) for k, v in models.items()}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", default="minilm-l6")
    p.add_argument("--out", default="bench/memory")
    p.add_argument("--prepare", help=argparse.SUPPRESS)
    p.add_argument("--report", metavar="PAGE", help="only write PAGE from the rows recorded under --out")
    a = p.parse_args()
    if a.report:
        return report(Path(a.out), Path(a.report))
    if a.prepare:
        return prepare(Path(a.prepare), a.encoder)
    # This process stays small (it never imports torch): Linux counts the memory a child had
    # when it was forked, before its exec, into the child's ru_maxrss, so a parent that had
    # trained the models would show its own size as every child's peak.
    work = Path(tempfile.mkdtemp(prefix="convtune-long-"))
    convtune = str(Path(sys.executable).with_name("convtune"))
    files = {"short": work / "short.txt", "1 MB": work / "huge.txt"}
    rows = []
    try:
        subprocess.run([sys.executable, "-m", "bench.memory.long_text_memory", "--prepare", str(work), "--encoder", a.encoder], check=True)
        models = {k: Path(v) for k, v in json.loads((work / "models.json").read_text()).items()}
        for name, model in models.items():
            for size, f in files.items():
                interfaces = {"python": lambda: run_child(python_child(model, f), capture=True),
                              "cli": lambda: run_child([convtune, "predict", str(model), "--input", str(f)], capture=True)}
                if name in ("windows", "windows onnx"):
                    interfaces["server"] = lambda: serve_once(convtune, model, f)
                for interface, go in interfaces.items():
                    r = go()
                    r.pop("answer")
                    label = json.loads(r.pop("stdout").strip().splitlines()[-1])["label"]
                    rows.append({"model": name, "text": size, "interface": interface, "label": label, **r})
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(Path(a.out), rows, a.encoder)


def write(out: Path, rows: list[dict], encoder: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "long_text_memory.json").write_text(json.dumps(rows, indent=1) + "\n")
    short = {(r["model"], r["interface"]): r for r in rows if r["text"] == "short"}
    huge_labels = {r["label"] for r in rows if r["text"] == "1 MB" and r["model"].startswith("windows")}
    lines = [f"# One 1 MB text through every interface ({encoder}, frozen + CNN head, 128 tokens)", "",
             "| rule | interface | short text: peak RSS MB, s | 1 MB text: peak RSS MB, s | extra MB | label (1 MB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if r["text"] != "1 MB":
            continue
        s = short[(r["model"], r["interface"])]
        lines.append(f"| {r['model']} | {r['interface']} | {s['peak_rss_mb']}, {s['seconds']} | "
                     f"{r['peak_rss_mb']}, {r['seconds']} | {r['peak_rss_mb'] - s['peak_rss_mb']} | {r['label']} |")
    lines += ["", f"Windows model and its ONNX export, every interface: the 1 MB text's label is "
              f"{' / '.join(sorted(huge_labels))} ({'the same everywhere' if len(huge_labels) == 1 else 'NOT the same'})."]
    (out / "long_text_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(out: Path, page: Path) -> None:
    """docs/results' page from the recorded rows (OUT/long_text_memory.json) and the notes kept in
    bench/memory/long_text_memory_notes.md."""
    rows = json.loads((out / "long_text_memory.json").read_text())
    write(out, rows, "minilm-l6")
    table = (out / "long_text_memory.md").read_text().splitlines()[1:]  # the table as `write` renders it
    kept = notes(Path(__file__).parent / "long_text_memory_notes.md")
    page.write_text("\n".join(["# One 1 MB text through every interface", *table]) + "\n\n" + kept,
                    encoding="utf-8")


if __name__ == "__main__":
    main()
