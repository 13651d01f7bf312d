"""The file formats users already hold, beside CSV / TSV / JSONL: Parquet (through pyarrow) and
fastText's `__label__a __label__b text` lines. Each gives rows as dicts, like the table readers,
so that column choice, label rules and checks stay in one place (`data.texts.read_table`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from convtune.errors import ConvtuneError

PARQUET_SUFFIXES = (".parquet", ".pq")
FASTTEXT_PREFIX = "__label__"
SPREADSHEETS = {".xlsx": "an Excel workbook", ".xlsm": "an Excel workbook", ".xls": "an Excel workbook",
                ".ods": "an OpenDocument spreadsheet", ".numbers": "a Numbers spreadsheet"}


def spreadsheet_problem(path: Path) -> str | None:
    """What to say of a spreadsheet given as data (it is a zip or binary file, not a table)."""
    what = SPREADSHEETS.get(path.suffix.lower())
    return f"is {what}; save it as CSV (UTF-8) and pass that file" if what else None


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConvtuneError("Parquet files need pyarrow: pip install 'convtune[parquet]'") from None
    return pq


def _parquet_file(path: Path):
    pq = pyarrow_parquet()
    try:
        return pq.ParquetFile(path)
    except Exception as e:  # pyarrow's ArrowInvalid and friends: a damaged or non-Parquet file
        raise ConvtuneError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0][:160]})") from None


def parquet_rows(path: Path) -> list[dict]:
    """Every row of a Parquet file as a dict (list columns stay lists: label sets)."""
    return [row for batch in _parquet_file(path).iter_batches() for row in batch.to_pylist()]


def parquet_columns(path: Path) -> list[str]:
    return list(_parquet_file(path).schema_arrow.names)


def parquet_column(path: Path, column: str, batch: int = 4096) -> Iterator:
    """One column's values, lazily, a record batch at a time (memory stays flat)."""
    for part in _parquet_file(path).iter_batches(batch_size=batch, columns=[column]):
        yield from part.column(0).to_pylist()


def is_fasttext(first_line: str) -> bool:
    return first_line.lstrip().startswith(FASTTEXT_PREFIX)


def fasttext_split(line: str) -> tuple[list[str], str]:
    """(labels, text) of one fastText line: leading `__label__X` tokens, then the text."""
    words = line.split(" ")
    n = 0
    while n < len(words) and (words[n].startswith(FASTTEXT_PREFIX) or not words[n]):
        n += 1
    labels = [w[len(FASTTEXT_PREFIX):] for w in words[:n] if w]
    return labels, " ".join(words[n:]).strip()


def fasttext_rows(lines: list[str], path: Path) -> list[dict]:
    """Rows {"text", "label"} of fastText lines; the label is a list on every row once any line
    carries several labels (a multi-label file)."""
    rows, multi = [], False
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        labels, text = fasttext_split(line.rstrip("\r"))
        if not labels:
            raise ConvtuneError(f"{path}:{n}: no __label__ at the start of the line (fastText format)")
        multi = multi or len(labels) > 1
        rows.append({"text": text, "label": labels})
    return [r if multi else {"text": r["text"], "label": r["label"][0]} for r in rows]


def jsonl_predictions_to_parquet(src: Path, dst: Path, chunk: int = 4096) -> None:
    """predict's JSONL rows ({"text", "label" | "labels", "probabilities"}) as a Parquet file with
    the CSV output's columns: text, label (labels: a list), p_<label> per label."""
    import json

    import pyarrow as pa

    pq = pyarrow_parquet()
    writer = None
    try:
        with src.open(encoding="utf-8") as f:
            while lines := [line for _, line in zip(range(chunk), f)]:
                rows = [json.loads(line) for line in lines]
                flat = [{"text": r["text"], **({"labels": r["labels"]} if "labels" in r else {"label": r["label"]}),
                         **{f"p_{k}": v for k, v in r["probabilities"].items()}} for r in rows]
                table = pa.Table.from_pylist(flat, schema=writer.schema if writer else None)
                writer = writer or pq.ParquetWriter(dst, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
