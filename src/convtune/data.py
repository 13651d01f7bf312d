"""Labelled text: readers for user files, de-duplication, seeded stratified splits.

A data set is a pair of parallel lists (texts, labels). Labels are strings everywhere
outside the model; the label map (the ordered label list) is made once from the training
split and saved with the model, so a reloaded classifier never loses it.

Built-in sets (``sms_spam``, ``sst2`` ...) live in `convtune.datasets`; both paths return
the same `Splits`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConvtuneError, text_problem, warn

# Column names tried, in order, when the user does not name the text / label column.
TEXT_COLUMNS = ("text", "sentence", "review", "content", "message", "title")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")


@dataclass
class TextSet:
    """Parallel lists of texts and string labels."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """Order-independent hash of the (text, label) pairs: proves two splits are the same."""
        h = hashlib.sha256()
        for pair in sorted(zip(self.texts, self.labels)):
            h.update(json.dumps(pair, ensure_ascii=False).encode())
        return h.hexdigest()[:16]


@dataclass
class Splits:
    """train / dev / test plus a record of how they were made (saved with every run)."""

    train: TextSet
    dev: TextSet
    test: TextSet | None
    name: str
    record: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The split record plus each split's size and fingerprint."""
        out = dict(self.record, dataset=self.name)
        for part in ("train", "dev", "test"):
            s = getattr(self, part)
            if s is not None:
                out[part] = {"size": len(s), "fingerprint": s.fingerprint(),
                             "label_counts": dict(sorted(Counter(s.labels).items()))}
        return out


# --------------------------------------------------------------------------- readers

def require_file(path: str | Path) -> Path:
    """The path, if it names a file; else a one-line error (a folder is not "no such file")."""
    p = Path(path)
    if not p.is_file():
        raise ConvtuneError(f"{p}: {'a folder, not a file' if p.is_dir() else 'no such file'}")
    return p


# What a file that is not text starts with: say what it is instead of "not valid utf-8".
_MAGIC = ((b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
          (b"PK\x03\x04", "a zip archive; unpack it first"),
          (b"\xff\xfe\x00\x00", "UTF-32 text (it starts with a byte-order mark); pass --encoding utf-32"),
          (b"\xff\xfe", "UTF-16 text (it starts with a byte-order mark); pass --encoding utf-16"),
          (b"\xfe\xff", "UTF-16 text (it starts with a byte-order mark); pass --encoding utf-16"))


def file_kind_problem(head: bytes, encoding: str) -> str | None:
    """What is wrong with reading a file that starts with `head` as `encoding` text, if anything:
    compressed or archived, a UTF-16 / UTF-32 byte-order mark, NUL bytes (a binary file)."""
    if encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        return None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"is {what}"
    if b"\x00" in head:
        return "is a binary file, not text (it holds NUL bytes)"
    return None


def read_text_file(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a whole file, turning missing / empty / undecodable files into one-line errors."""
    p = require_file(path)
    raw = p.read_bytes()
    if not raw.strip():
        raise ConvtuneError(f"{p}: file is empty")
    problem = file_kind_problem(raw[:4096], encoding)
    if problem is not None:
        raise ConvtuneError(f"{p} {problem}")
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding)
    except UnicodeDecodeError as e:
        raise ConvtuneError(
            f"{p}: not valid {encoding} (byte {e.start}); pass --encoding latin-1 (or the file's encoding)"
        ) from None
    except LookupError:
        raise ConvtuneError(f"unknown encoding {encoding!r}") from None


def json_line(line: str, where: str):
    """One JSONL line parsed, or a one-line error (also for nesting too deep to parse)."""
    try:
        return json.loads(line)
    except RecursionError:
        raise ConvtuneError(f"{where}: JSON nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, or an integer of over 4,300 digits
        raise ConvtuneError(f"{where}: not a JSON object ({getattr(e, 'msg', str(e))[:120]})") from None


def split_lines(text: str) -> list[str]:
    """Split on \\n only (str.splitlines also breaks on 0x85 and bare CR inside sentences)."""
    return [line.rstrip("\r") for line in text.split("\n")]


def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...],
                 what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ConvtuneError(f"{path}: no column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for c in candidates:
        if c in lowered:
            return lowered[c]
    raise ConvtuneError(
        f"{path}: cannot tell which column holds the {what} (columns: {', '.join(columns)}); "
        f"pass --{what}-col")


def _rows_from_file(path: Path, encoding: str) -> list[dict]:
    """Rows as dicts from a CSV / TSV (with header) or JSONL file."""
    content = read_text_file(path, encoding)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for n, line in enumerate(split_lines(content), 1):
            if not line.strip():
                continue
            row = json_line(line, f"{path}:{n}")
            if not isinstance(row, dict):
                raise ConvtuneError(f"{path}:{n}: expected a JSON object per line")
            rows.append(row)
        return rows
    lines = content.replace("\r\n", "\n").split("\n")
    return [r for r in csv_rows(lines, delimiter_for(suffix, lines[0]), path)
            if any((v or "").strip() for v in r.values())]


def delimiter_for(suffix: str, header: str) -> str:
    """Tab for .tsv / .tab; for .csv a comma, or a semicolon when the header has semicolons and
    no comma (spreadsheets in many European locales write those)."""
    if suffix in (".tsv", ".tab"):
        return "\t"
    return ";" if ";" in header and "," not in header else ","


def csv_rows(lines: Iterable[str], delimiter: str, path: Path) -> Iterator[dict]:
    """csv.DictReader rows, refusing rows with more fields than the header: an unquoted comma
    (or tab) in a text would otherwise shift or silently cut the columns."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    # The csv module refuses fields over 128 KiB as "malformed"; a long document is not malformed
    # (the tokenizer truncates it), so lift the limit (process-wide, as the module only allows).
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    separator = {"\t": "tabs", ",": "commas", ";": "semicolons"}[delimiter]
    reader = csv.DictReader(lines, delimiter=delimiter)
    try:
        if not any(name.strip() for name in reader.fieldnames or []):
            raise ConvtuneError(f"{path}: no header row (the first line is empty)")
        for row in reader:
            if None in row:
                raise ConvtuneError(
                    f"{path}: line {reader.line_num} has {len(reader.fieldnames) + len(row[None])} fields, the "
                    f"header {len(reader.fieldnames)}; quote texts that contain {separator}")
            yield row
    except csv.Error as e:
        raise ConvtuneError(f"{path}: malformed {kind} ({e})") from None


def read_table(path: str | Path, text_col: str | None = None, label_col: str | None = None,
               encoding: str = "utf-8", require_labels: bool = True, strict: bool = False) -> TextSet:
    """Read a labelled CSV / TSV / JSONL file into a `TextSet`.

    Rows with an empty text are skipped with one warning that counts them (real data sets have
    a few: CR has 4 blank sentences in 3,020), or refused with `strict`. A missing label, a
    text that is not a string or not valid Unicode is an error that names the row.
    """
    p = Path(path)
    rows = _rows_from_file(p, encoding)
    if not rows:
        raise ConvtuneError(f"{p}: no data rows")
    columns = list(rows[0].keys())
    tcol = _pick_column(columns, text_col, TEXT_COLUMNS, "text", p)
    lcol = _pick_column(columns, label_col, LABEL_COLUMNS, "label", p) if require_labels else None
    texts, labels, empty = [], [], []
    for n, row in enumerate(rows, 1):
        text = _row_text(row.get(tcol), tcol, p, n)
        if text is None:
            if strict:
                raise ConvtuneError(f"{p}: data row {n} has an empty text in column {tcol!r}")
            empty.append(n)
            continue
        texts.append(text)
        if lcol is not None:
            label = row.get(lcol)
            if label is None or str(label).strip() == "":
                raise ConvtuneError(f"{p}: data row {n} has no label in column {lcol!r}")
            labels.append(str(label).strip())
    if not texts:
        raise ConvtuneError(f"{p}: every data row has an empty text in column {tcol!r}")
    if empty:
        warn(f"{p}: skipped {len(empty)} row(s) with an empty text in column {tcol!r} "
             f"(data rows {', '.join(map(str, empty[:5]))}{' ...' if len(empty) > 5 else ''}); "
             "pass --strict to refuse them")
    return TextSet(texts, labels)


def _row_text(text, column: str, path: Path, n: int) -> str | None:
    """A row's text, None if empty; a number, a list or a lone surrogate is a one-line error."""
    if text is not None and not isinstance(text, str):  # JSONL: a number or a list is a wrong column
        raise ConvtuneError(f"{path}: data row {n}: column {column!r} holds {type(text).__name__} "
                            f"{str(text)[:40]!r}, not a text; pass --text-col")
    if text is None or not text.strip():
        return None
    problem = text_problem(text)
    if problem is not None:
        raise ConvtuneError(f"{path}: data row {n}: the text {problem}")
    return text


# --------------------------------------------------------------------------- cleaning and splits

def dedupe_key(text: str) -> str:
    """What makes two texts duplicates: the same words with any whitespace between them."""
    return " ".join(text.split())


def deduplicate(data: TextSet) -> tuple[TextSet, int]:
    """Drop repeated texts (first occurrence wins); return the set and how many were dropped."""
    seen: set[str] = set()
    texts, labels = [], []
    for t, y in zip(data.texts, data.labels):
        key = dedupe_key(t)
        if key in seen:
            continue
        seen.add(key)
        texts.append(t)
        labels.append(y)
    return TextSet(texts, labels), len(data) - len(texts)


def stratified_split(data: TextSet, fractions: tuple[float, ...], seed: int) -> list[TextSet]:
    """Split into len(fractions) parts with every label spread in proportion.

    Deterministic for a given seed and input order. Each label's items are shuffled, then cut
    at the cumulative fractions, so small classes still appear in every part when possible.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, y in enumerate(data.labels):
        by_label.setdefault(y, []).append(i)
    parts: list[list[int]] = [[] for _ in fractions]
    for y in sorted(by_label):
        idx = by_label[y]
        rng.shuffle(idx)
        n = len(idx)
        bounds = [round(n * sum(fractions[:k + 1])) for k in range(len(fractions))]
        start = 0
        for k, end in enumerate(bounds):
            parts[k].extend(idx[start:end])
            start = end
    out = []
    for part in parts:
        part.sort()  # keep the file's order inside each split: easier to inspect
        out.append(TextSet([data.texts[i] for i in part], [data.labels[i] for i in part]))
    return out


def carve(data: TextSet, fractions: tuple[float, ...], names: tuple[str, ...], seed: int) -> list[TextSet]:
    """`stratified_split` into the named parts, refusing a split that leaves one empty."""
    parts = stratified_split(data, fractions, seed)
    empty = next((name for name, part in zip(names, parts) if not len(part)), None)
    if empty is not None:  # e.g. 2 texts split 80/10/10: the dev part used to fail later as "no texts given"
        raise ConvtuneError(f"{len(data)} texts are too few to split off a {empty} set; "
                            f"give more data or a separate {empty} set")
    return parts


def subsample(data: TextSet, n: int | None, seed: int) -> TextSet:
    """A stratified subset of about n items (the whole set if n is None or not smaller)."""
    if n is not None and n < 2:  # 0 used to mean "no limit" by accident
        raise ConvtuneError(f"train limit must be at least 2 texts, not {n}")
    if n is None or n >= len(data):
        return data
    return stratified_split(data, (n / len(data), 1.0), seed)[0]


def make_splits(name: str, train: TextSet, dev: TextSet | None, test: TextSet | None,
                seed: int, dedupe: bool = True) -> Splits:
    """Fill in missing dev / test parts from train and record how.

    No dev and no test: de-duplicate, then 80/10/10 stratified. Only one missing: carve 10%
    of train for it. Given splits are used as they are.
    """
    record: dict = {"seed": seed}
    if dedupe and (dev is None or test is None):
        train, dropped = deduplicate(train)
        record["duplicates_dropped"] = dropped
    if dev is None and test is None:
        train, dev, test = carve(train, (0.8, 0.1, 0.1), ("train", "dev", "test"), seed)
        record["method"] = "de-duplicated, stratified 80/10/10"
    elif dev is None:
        train, dev = carve(train, (0.9, 0.1), ("train", "dev"), seed)
        record["method"] = "official test; dev = stratified 10% of train"
    elif test is None:
        record["method"] = "official train/dev; no test split"
    else:
        record["method"] = "official splits"
    return Splits(train=train, dev=dev, test=test, name=name, record=record)


def label_list(train: TextSet) -> list[str]:
    """The label map: sorted distinct training labels (numeric labels sort numerically).

    Labels that name the same number ("1" and "1.0") are ordered by their text, so the order
    never depends on set iteration (PYTHONHASHSEED).
    """
    counts = Counter(train.labels)
    if len(counts) < 2:
        raise ConvtuneError(
            f"training data has only one class ({next(iter(counts), 'none')!r}); need at least two")
    return sort_labels(counts)


def warn_rare_classes(train: TextSet) -> None:
    """One warning line for classes with fewer than 2 training examples: predictable, hardly learnable."""
    counts = Counter(train.labels)
    rare = sort_labels(lab for lab, n in counts.items() if n < 2)
    if rare:
        warn(f"{len(rare)} of {len(counts)} classes have fewer than 2 training examples "
             f"(e.g. {', '.join(map(repr, rare[:3]))}); they can hardly be learned")


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Numeric order when every label is a finite number (ties by text), else text order."""
    labels = list(labels)
    try:
        keys = {lab: float(lab) for lab in labels}
    except ValueError:
        return sorted(labels)
    if not all(math.isfinite(k) for k in keys.values()):  # "nan" / "inf" have no place in an order
        return sorted(labels)
    return sorted(labels, key=lambda lab: (keys[lab], lab))


def check_labels(data: TextSet, labels: list[str], where: str) -> None:
    """Reject labels that the model was not trained on (e.g. a class seen only in dev)."""
    unseen = sorted(set(data.labels) - set(labels))
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5])
        raise ConvtuneError(f"{where} has labels not in the training data: {shown}")
