"""Labelled text and its readers (CSV / TSV / JSONL / text files), checked as they are read.

A data set is a pair of parallel lists (texts, labels). Labels are strings everywhere
outside the model; the label map (the ordered label list) is made once from the training
split and saved with the model, so a reloaded classifier never loses it.

Splits live in `data.splits`, the label map in `data.labels`, built-in sets (``sms_spam``,
``sst2`` ...) in `data.builtin`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from convtune.data.formats import PARQUET_SUFFIXES, fasttext_rows, is_fasttext, parquet_rows, spreadsheet_problem
from convtune.errors import ConvtuneError, text_problem, warn

# Column names tried, in order, when the user does not name the text / label column.
TEXT_COLUMNS = ("text", "sentence", "review", "content", "message", "title")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "tags")


@dataclass(frozen=True)
class LabelRule:
    """How a file's rows give labels: one label cell (default); a cell of several labels cut at
    `sep` (or a JSON list, always read as several); several 0/1 columns (`cols`), one per
    label. `multi` reads every label cell as a set, even of one label."""

    sep: str | None = None
    cols: tuple[str, ...] | None = None
    multi: bool = False

    @property
    def is_multi(self) -> bool:
        return self.multi or self.sep is not None or self.cols is not None


SINGLE = LabelRule()
TRUE_CELLS, FALSE_CELLS = ("1", "1.0", "true", "yes"), ("0", "0.0", "false", "no", "")


@dataclass
class TextSet:
    """Parallel lists of texts and string labels (multi-label: sorted tuples of labels)."""

    texts: list[str]
    labels: list

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """Order-independent hash of the (text, label) pairs: proves two splits are the same."""
        h = hashlib.sha256()
        for pair in sorted(zip(self.texts, self.labels)):
            h.update(json.dumps(pair, ensure_ascii=False).encode())
        return h.hexdigest()[:16]


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
    problem = spreadsheet_problem(p) or file_kind_problem(raw[:4096], encoding)
    if problem is not None:
        raise ConvtuneError(f"{p} {problem}")
    try:
        return raw.decode(text_codec(encoding))
    except UnicodeDecodeError as e:
        raise ConvtuneError(
            f"{p}: not valid {encoding} (byte {e.start}); pass --encoding latin-1 (or the file's encoding)"
        ) from None
    except LookupError:
        raise ConvtuneError(f"unknown encoding {encoding!r}") from None


def text_codec(encoding: str) -> str:
    """The codec to read a file with: UTF-8 files may start with a byte-order mark (Excel
    writes one), which must not become part of the first column's name. The one BOM rule."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")  # one JSON object a line
# Files are cut into lines at \n only, line ends kept (`open(..., newline=LINE_END)`): a quoted CSV
# field keeps its line breaks as written, and a bare CR (or 0x85) never ends a row, in every reader.
LINE_END = "\n"
TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def iter_rows(lines: Iterable[str], suffix: str, path: Path) -> Iterator[tuple[int, object]]:
    """(row number, row) of JSONL lines (blank ones skipped; a row is whatever the line holds)
    or of a CSV / TSV with its header (rows are dicts): the one parser of both readers, the
    training files' and predict's streaming one."""
    if suffix in JSONL_SUFFIXES:
        for n, line in enumerate(lines, 1):
            if line.strip():
                yield n, json_line(line, f"{path}:{n}")
        return
    lines = iter(lines)
    header = next(lines, "")
    yield from enumerate(csv_rows(itertools.chain([header], lines), delimiter_for(suffix, header), path), 1)


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
    """Rows as dicts from a CSV / TSV (with header), JSONL, Parquet or fastText file."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return parquet_rows(require_file(path))
    content = read_text_file(path, encoding)
    if suffix not in TABLE_SUFFIXES + JSONL_SUFFIXES and is_fasttext(content.lstrip()[:64]):
        return fasttext_rows(split_lines(content), path)
    if suffix in JSONL_SUFFIXES:
        rows = []
        for n, row in iter_rows(split_lines(content), suffix, path):
            if not isinstance(row, dict):
                raise ConvtuneError(f"{path}:{n}: expected a JSON object per line")
            rows.append(row)
        return rows
    lines = io.StringIO(content, newline=LINE_END)
    return [r for _, r in iter_rows(lines, suffix, path) if any((v or "").strip() for v in r.values())]


def delimiter_for(suffix: str, header: str) -> str:
    """Tab for .tsv / .tab; for .csv a comma, or a semicolon when the header has semicolons and
    no comma (spreadsheets in many European locales write those)."""
    if suffix in (".tsv", ".tab"):
        return "\t"
    return ";" if ";" in header and "," not in header else ","


class _Row(dict):
    """A CSV row whose header repeats some names: a selected one of those is refused, not read
    from whichever copy came last (`require_unique`)."""

    duplicates: frozenset = frozenset()


def require_unique(row, column: str, path: Path) -> None:
    """A one-line error when `column` appears more than once in the row's header."""
    if column in getattr(row, "duplicates", ()):
        raise ConvtuneError(f"{path}: the header names column {column!r} more than once; rename the copies "
                            "so that it is clear which one to read")


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
        names = reader.fieldnames
        duplicates = frozenset(n for n in names if names.count(n) > 1)
        for row in reader:
            if duplicates:
                row = _Row(row)
                row.duplicates = duplicates
            if None in row:
                raise ConvtuneError(
                    f"{path}: line {reader.line_num} has {len(reader.fieldnames) + len(row[None])} fields, the "
                    f"header {len(reader.fieldnames)}; quote texts that contain {separator}")
            yield row
    except csv.Error as e:
        if "new-line character" in str(e):
            raise ConvtuneError(f"{path}: line {reader.line_num + 1} holds a carriage return (CR) outside quotes; quote "
                                "that text, or save the file with LF or CRLF line ends") from None
        raise ConvtuneError(f"{path}: malformed {kind} ({e})") from None


def read_table(path: str | Path, text_col: str | None = None, label_col: str | None = None,
               encoding: str = "utf-8", require_labels: bool = True, strict: bool = False,
               rule: LabelRule = SINGLE) -> TextSet:
    """Read a labelled CSV / TSV / JSONL file into a `TextSet` (label sets as `rule` says, or
    when a JSONL label is a list).

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
    if rule.cols is not None and require_labels:
        for c in rule.cols:
            _pick_column(columns, c, (), "label", p)
    lcol = (_pick_column(columns, label_col, LABEL_COLUMNS, "label", p)
            if require_labels and rule.cols is None else None)
    for column in (tcol, lcol, *(rule.cols or ())):
        if column is not None:
            require_unique(rows[0], column, p)
    texts, labels, empty = [], [], []
    for n, row in enumerate(rows, 1):
        text = _row_text(row.get(tcol), tcol, p, n)
        if text is None:
            if strict:
                raise ConvtuneError(f"{p}: data row {n} has an empty text in column {tcol!r}")
            empty.append(n)
            continue
        texts.append(text)
        if rule.cols is not None and require_labels:
            labels.append(_column_labels(row, rule.cols, p, n))
        elif lcol is not None:
            labels.append(_cell_labels(row.get(lcol), lcol, rule, p, n))
    if any(isinstance(y, tuple) for y in labels):  # one JSON list makes the whole file multi-label
        labels = [y if isinstance(y, tuple) else (y,) for y in labels]
        none = sum(1 for y in labels if not y)
        if none:
            warn(f"{p}: {none} of {len(labels)} texts have no label (an empty label set)")
    if not texts:
        raise ConvtuneError(f"{p}: every data row has an empty text in column {tcol!r}")
    if empty:
        warn(f"{p}: skipped {len(empty)} row(s) with an empty text in column {tcol!r} "
             f"(data rows {', '.join(map(str, empty[:5]))}{' ...' if len(empty) > 5 else ''}); "
             "pass --strict to refuse them")
    return TextSet(texts, labels)


def _cell_labels(label, column: str, rule: LabelRule, path: Path, n: int) -> str | tuple[str, ...]:
    """One row's label: a string, or a sorted tuple for a list, a JSON list or a multi-label rule."""
    from convtune.data.multilabel import label_set

    if isinstance(label, list) or (rule.is_multi and isinstance(label, str) and label.strip().startswith("[")):
        return label_set(label, f"{path}: data row {n}, column {column!r}")
    if rule.is_multi and isinstance(label, str) and not label.strip():
        return ()  # multi-label: an empty cell is a text with none of the labels
    if label is None or str(label).strip() == "":
        raise ConvtuneError(f"{path}: data row {n} has no label in column {column!r}")
    if rule.is_multi:
        return label_set(str(label), f"{path}: data row {n}, column {column!r}", rule.sep)
    return str(label).strip()


def _column_labels(row: dict, cols: tuple[str, ...], path: Path, n: int) -> tuple[str, ...]:
    """The labels whose 0/1 column holds 1 (--label-cols); anything else is a one-line error."""
    out = []
    for c in cols:
        cell = str(row.get(c) if row.get(c) is not None else "").strip().lower()
        if cell in TRUE_CELLS:
            out.append(c)
        elif cell not in FALSE_CELLS:
            raise ConvtuneError(f"{path}: data row {n}, column {c!r} holds {cell[:20]!r}; label columns hold 0 or 1")
    return tuple(sorted(out))


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


def as_column(values, what: str) -> list:
    """A plain list from what users hold a column in: a list, tuple or generator, a 1-D numpy
    array, a pandas Series or one-column DataFrame, a Hugging Face `datasets` column."""
    if isinstance(values, str):
        raise ConvtuneError(f"expected a list of {what}, got a single string")
    columns = getattr(values, "columns", None)  # pandas DataFrame
    if columns is not None:
        if len(columns) != 1:
            raise ConvtuneError(f"expected a column of {what}, got a DataFrame of {len(columns)} columns; "
                                "pass one column (df['text'])")
        values = values.iloc[:, 0]
    if hasattr(values, "column_names"):  # a whole datasets.Dataset: its rows are dicts
        raise ConvtuneError(f"expected a column of {what}, got a dataset with columns "
                            f"{', '.join(map(str, values.column_names))}; pass one column (ds['text'])")
    if getattr(values, "ndim", 1) != 1:
        raise ConvtuneError(f"expected a 1-D column of {what}, got an array of shape {tuple(values.shape)}")
    try:
        return values.tolist() if hasattr(values, "tolist") else list(values)
    except TypeError:  # None, a number: say what was expected rather than "not iterable"
        raise ConvtuneError(f"expected a list of {what}, got {type(values).__name__}") from None


def missing_label(y) -> bool:
    """None, NaN or pandas' NA: a row without a label (not a class named "None" or "nan")."""
    return y is None or (isinstance(y, float) and y != y) or type(y).__name__ == "NAType"


def as_texts(texts: Sequence[str], empty_ok: bool = True, where: str = "") -> list[str]:
    """A non-empty list of valid texts, or a one-line error. An empty text passes unless
    `empty_ok` is False (prediction keeps a file's empty cell as a row; training refuses it).
    Any column `as_column` takes will do."""
    texts = as_column(texts, "texts")
    if not texts:
        raise ConvtuneError("no texts given")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ConvtuneError(f"texts[{bad}] is not a string ({type(texts[bad]).__name__})")
    for i, t in enumerate(texts):
        problem = text_problem(t, empty_ok)
        if problem is not None:
            raise ConvtuneError(f"{where}texts[{i}] {problem}")  # a 0-based index, as in Python
    return texts


def looks_chinese(texts: Sequence[str], sample: int = 500) -> bool:
    """True when CJK ideographs make up over a fifth of the non-space characters."""
    chars = "".join(texts[:sample]).replace(" ", "")
    cjk = sum(1 for c in chars if "\u4e00" <= c <= "\u9fff")
    return bool(chars) and cjk / len(chars) > 0.2
