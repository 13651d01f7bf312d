"""`convtune predict`: texts from arguments or a file, predictions to stdout or a file.

Files are read and written in chunks, so memory stays flat whatever the file size; the
output is written to a temporary file and renamed at the end, so an interrupted run never
leaves a truncated file that looks complete.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

from tqdm.auto import tqdm

from .data import TEXT_COLUMNS
from .errors import ConvtuneError

CHUNK = 4096  # texts per prediction chunk


def iter_texts(path: str, text_col: str | None, encoding: str) -> Iterator[str]:
    """Texts of a CSV / TSV / JSONL (one column) or .txt (one per line) file, lazily."""
    p = Path(path)
    if not p.is_file():
        raise ConvtuneError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        with p.open(encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as f:
            if suffix in (".jsonl", ".ndjson"):
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError:
                            raise ConvtuneError(f"{p}:{n}: not JSON") from None
                        yield _text_of(row, text_col, p, n)
            elif suffix in (".csv", ".tsv", ".tab"):
                reader = csv.DictReader(f, delimiter="\t" if suffix != ".csv" else ",")
                for n, row in enumerate(reader, 1):
                    yield _text_of(row, text_col, p, n)
            else:
                for line in f:
                    line = line.rstrip("\r\n")
                    if line.strip():
                        yield line
    except UnicodeDecodeError:
        raise ConvtuneError(f"{p}: not valid {encoding}; pass --encoding latin-1 (or the file's encoding)") from None


def _text_of(row, text_col: str | None, path: Path, n: int) -> str:
    if not isinstance(row, dict):
        raise ConvtuneError(f"{path}:{n}: expected an object with a text field")
    col = text_col or next((c for c in row if c and c.lower() in TEXT_COLUMNS), None)
    if col is None or col not in row:
        raise ConvtuneError(f"{path}: no text column (have: {', '.join(map(str, row))}); pass --text-col")
    value = row[col]
    return "" if value is None else str(value)


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def predict_command(a) -> int:
    from .estimator import load

    if not a.texts and not a.input:
        raise ConvtuneError("give texts to classify, or --input FILE")
    if a.output and not Path(a.output).resolve().parent.is_dir():
        raise ConvtuneError(f"{a.output}: its folder does not exist")
    clf = load(a.model_dir)
    texts: Iterable[str] = a.texts if a.texts else iter_texts(a.input, a.text_col, a.encoding)
    if a.output:
        _write_file(clf, texts, Path(a.output), a.batch_size)
    else:
        for batch in chunks(texts, CHUNK):
            for row in _rows(clf, batch, a.batch_size):
                print(json.dumps(row, ensure_ascii=False))
    return 0


def _rows(clf, batch: list[str], batch_size: int) -> list[dict]:
    proba = clf.predict_proba(batch, batch_size)
    return [{"text": t, "label": clf.labels_[int(p.argmax())],
             "probabilities": {lab: round(float(x), 6) for lab, x in zip(clf.labels_, p)}}
            for t, p in zip(batch, proba)]


def _write_file(clf, texts: Iterable[str], out: Path, batch_size: int) -> None:
    tmp = out.with_name(f".{out.name}.partial")
    jsonl = out.suffix.lower() in (".jsonl", ".ndjson")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f, \
                tqdm(unit="text", desc="predict", disable=None) as bar:
            writer = None if jsonl else csv.writer(f)
            if writer:
                writer.writerow(["text", "label"] + [f"p_{lab}" for lab in clf.labels_])
            for batch in chunks(texts, CHUNK):
                for row in _rows(clf, batch, batch_size):
                    if writer:
                        writer.writerow([row["text"], row["label"], *row["probabilities"].values()])
                    else:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                bar.update(len(batch))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"wrote {out}", file=sys.stderr)
