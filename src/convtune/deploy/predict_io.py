"""`convtune predict`: texts from arguments or a file, predictions to stdout or a file.

Files are read and written in chunks, so memory stays flat whatever the file size; the
output is written to a hidden partial file and renamed at the end, so an interrupted run never
leaves a truncated file that looks complete, and rerunning the same command resumes it.
One writer at a time: a second `predict` to the same --output is refused while the first lives,
and each job (model, input, decision rule) has a partial file of its own, so a run resumes only
its own work.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from convtune._fs import fsync_dir, model_fingerprint, sole_writer
from convtune.distributed import barrier, current
from convtune.distributed import local as distributed_local
from convtune.data.texts import (
    JSONL_SUFFIXES,
    TABLE_SUFFIXES,
    LINE_END,
    TEXT_COLUMNS,
    file_kind_problem,
    iter_rows,
    require_file,
    require_unique,
    text_codec,
)
from convtune.data.formats import (
    PARQUET_SUFFIXES,
    fasttext_split,
    is_fasttext,
    jsonl_predictions_to_parquet,
    parquet_column,
    parquet_columns,
    pyarrow_parquet,
    spreadsheet_problem,
)
from convtune.errors import ConvtuneError, text_problem
from convtune.progress import progress

CHUNK = 4096  # texts per prediction chunk
STDIN = "-"   # --input - reads plain lines from a pipe


def _stdin_lines(encoding: str) -> Iterator[str]:
    """`--input -`: one text a line from standard input (a pipe), blank lines skipped."""
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, newline=LINE_END)
    try:
        for line in stream:
            if line.strip():
                yield line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConvtuneError(f"standard input: not valid {encoding}; pass --encoding") from None


def iter_texts(path: str, text_col: str | None, encoding: str) -> Iterator[str]:
    """Texts of a CSV / TSV / JSONL / Parquet (one column) or .txt (one per line; fastText lines
    lose their labels) file, lazily; "-": stdin."""
    if path == STDIN:
        yield from _stdin_lines(encoding)
        return
    p = require_file(path)
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        yield from _parquet_texts(p, text_col)
        return
    with p.open("rb") as f:
        problem = spreadsheet_problem(p) or file_kind_problem(f.read(4096), encoding)
    if problem is not None:
        raise ConvtuneError(f"{p} {problem}")
    try:
        with p.open(encoding=text_codec(encoding), newline=LINE_END) as f:
            if suffix in JSONL_SUFFIXES + TABLE_SUFFIXES:
                for n, row in iter_rows(f, suffix, p):
                    yield _text_of(row, text_col, p, n)
            else:
                fasttext = None
                for line in f:
                    line = line.rstrip("\r\n")
                    if line.strip():
                        fasttext = is_fasttext(line) if fasttext is None else fasttext
                        yield fasttext_split(line)[1] if fasttext else line
    except UnicodeDecodeError:
        raise ConvtuneError(f"{p}: not valid {encoding}; pass --encoding latin-1 (or the file's encoding)") from None


def _parquet_texts(path: Path, text_col: str | None) -> Iterator[str]:
    columns = parquet_columns(path)
    col = text_col or next((c for c in columns if c.lower() in TEXT_COLUMNS), None)
    if col is None or col not in columns:
        raise ConvtuneError(f"{path}: no text column (have: {', '.join(columns)}); pass --text-col")
    for n, value in enumerate(parquet_column(path, col), 1):
        if value is not None and not isinstance(value, str):
            raise ConvtuneError(f"{path}: row {n}: column {col!r} holds {type(value).__name__}, not a text; "
                                "pass --text-col")
        yield _text_of({col: value}, col, path, n)


def _text_of(row, text_col: str | None, path: Path, n: int) -> str:
    if not isinstance(row, dict):
        raise ConvtuneError(f"{path}:{n}: expected an object with a text field")
    col = text_col or next((c for c in row if c and c.lower() in TEXT_COLUMNS), None)
    if col is None or col not in row:
        raise ConvtuneError(f"{path}: no text column (have: {', '.join(map(str, row))}); pass --text-col")
    require_unique(row, col, path)
    value = row[col]
    text = "" if value is None else str(value)
    problem = text_problem(text, empty_ok=True)  # an empty cell keeps its (empty) row
    if problem is not None:
        raise ConvtuneError(f"{path}:{n}: the text {problem}")
    return text


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _check_output(a) -> None:
    """Refuse an --output that would lose data, before the model is loaded or a text is read."""
    out = Path(a.output)
    if out.is_dir():
        raise ConvtuneError(f"{out} is a folder; --output names the file to write")
    if not out.resolve().parent.is_dir():
        raise ConvtuneError(f"{a.output}: its folder does not exist")
    if out.suffix.lower() in PARQUET_SUFFIXES:
        pyarrow_parquet()  # a missing pyarrow fails before any prediction
    if a.input and a.input != STDIN and out.resolve() == Path(a.input).resolve():
        raise ConvtuneError(f"{a.output} is the --input file; the predictions would replace it (choose another --output)")
    if out.exists() and not a.overwrite:  # as train refuses an existing --out
        raise ConvtuneError(f"{out} already exists; pass --overwrite to replace it, or another --output")


def predict_command(a) -> int:
    from convtune.estimators.registry import load

    if not a.texts and not a.input:
        raise ConvtuneError("give texts to classify, or --input FILE")
    # An empty argument is usually an unset shell variable; the server refuses it too (422).
    # Empty cells in an --input file still get a row each, so the output lines up with the input.
    empty = next((i for i, t in enumerate(a.texts) if not t.strip()), None)
    if empty is not None:
        raise ConvtuneError(f"text {empty + 1} of the command line is empty")
    if a.input and a.input != STDIN:
        require_file(a.input)
    if a.output:
        _check_output(a)
    if a.output and not current().active:
        with sole_writer(Path(a.output), "convtune predict"):
            _check_output(a)  # the writer we waited on may have finished it
            clf, texts = _model_and_texts(a, load)
            _write_file(clf, texts, Path(a.output), a.batch_size, _job_id(a.model_dir, a.input, a.texts, clf.decision_))
        return 0
    clf, texts = _model_and_texts(a, load)
    if a.output and Path(a.output).suffix.lower() in PARQUET_SUFFIXES:
        raise ConvtuneError("under torchrun, --output is a CSV or JSONL file (convert it to Parquet afterwards)")
    if a.output:
        _write_shared(clf, texts, Path(a.output), a.batch_size, _job_id(a.model_dir, a.input, a.texts, clf.decision_))
    elif current().active:
        raise ConvtuneError("under torchrun, predict writes to --output FILE (the ranks share its chunks)")
    else:
        for batch in chunks(texts, CHUNK):
            for row in _rows(clf, batch, a.batch_size):
                print(json.dumps(row, ensure_ascii=False))
    return 0


def _model_and_texts(a, load) -> tuple:
    """The model with its decision rule, and the texts (the arguments', or the input's, lazily)."""
    clf = load(a.model_dir, a.device, a.precision).set_decision(a.threshold, a.at_least_one)
    return clf, (a.texts if a.texts else iter_texts(a.input, a.text_col, a.encoding))


def _rows(clf, batch: list[str], batch_size: int) -> list[dict]:
    proba = clf.predict_proba(batch, batch_size)
    space = clf.decision_space()  # integer labels come out as numbers, as from Python and the server
    key = "labels" if clf.multi_label_ else "label"  # multi-label: the list of labels over their thresholds
    return [{"text": t, key: label, "probabilities": space.scores(p, digits=6)}
            for t, label, p in zip(batch, space.decode(proba), proba)]


def _formatted(rows: list[dict], jsonl: bool) -> str:
    """Rows as the output file holds them: JSON lines, or CSV rows (text, label, p_<label>...)."""
    if jsonl:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([row["text"], row["label"] if "label" in row else json.dumps(row["labels"], ensure_ascii=False),
                               *row["probabilities"].values()] for row in rows)
    return buf.getvalue()


def _header(clf, jsonl: bool) -> str:
    if jsonl:
        return ""
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow(["text", "labels" if clf.multi_label_ else "label"] + [f"p_{lab}" for lab in clf.labels_])
    return buf.getvalue()


def _job_id(model_dir: str, source: str | None, texts: list[str], decision: tuple | None = None) -> dict:
    """What a resumed run must match: the same model (its content: a model retrained into the
    same directory is another model) and the same, unchanged input."""
    job = {"model": str(Path(model_dir).resolve()), "model_sha256": model_fingerprint(model_dir)}
    if decision is not None and decision != (None, False):  # another threshold: other label sets
        job["decision"] = list(decision)
    if source == STDIN:  # a pipe cannot be read again: never resume, start over
        job["input"] = ["stdin", os.urandom(8).hex()]
    elif source:
        st = Path(source).stat()
        job["input"] = [str(Path(source).resolve()), st.st_size, st.st_mtime_ns]
    else:
        job["texts"] = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    return job


def _resume_point(tmp: Path, marker: Path, job: dict) -> tuple[int, int]:
    """(texts already written, bytes of the partial file to keep); (0, 0) to start over."""
    if not (tmp.exists() and marker.exists()):
        return 0, 0
    try:
        state = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return 0, 0
    if state.get("job") != job or tmp.stat().st_size < state.get("bytes", 0):
        return 0, 0
    return int(state["texts"]), int(state["bytes"])


def partial_of(out: Path, job: dict) -> Path:
    """The hidden partial file of this job's output: named by the job, so that two jobs (another
    model, input or threshold) never write, or resume, each other's."""
    key = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
    return out.with_name(f".{out.name}.partial-{key}")


def _write_file(clf, texts: Iterable[str], out: Path, batch_size: int, job: dict) -> None:
    """Write predictions chunk by chunk to a hidden partial file, renamed when complete.

    After each chunk the partial file is flushed and a marker records how many texts and
    bytes are complete; a rerun of the same command (same model, unchanged input) resumes
    from there instead of starting over. The caller holds the output's writer lock.
    """
    tmp = partial_of(out, job)
    marker = tmp.with_name(tmp.name + ".json")
    parquet = out.suffix.lower() in PARQUET_SUFFIXES  # written as JSON lines (resumable), converted at the end
    jsonl = parquet or out.suffix.lower() in (".jsonl", ".ndjson")
    done, keep = _resume_point(tmp, marker, job)
    if done:
        print(f"resuming {out} after {done} texts", file=sys.stderr)
        texts = itertools.islice(texts, done, None)
    try:
        _append_chunks(clf, texts, tmp, marker, job, done, keep, batch_size, jsonl)
    except ConvtuneError:  # bad input, not an interruption: a rerun must not resume into it
        tmp.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        raise
    if parquet:
        converted = tmp.with_name(tmp.name + ".parquet")
        jsonl_predictions_to_parquet(tmp, converted)
        with converted.open("rb+") as f:
            os.fsync(f.fileno())
        converted.replace(out)
        tmp.unlink()
    else:
        tmp.replace(out)
    fsync_dir(out.resolve().parent)  # the rename itself reaches the disk
    marker.unlink(missing_ok=True)
    for stale in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):  # other jobs' leftovers:
        if re.fullmatch(r"[0-9a-f]{12}(\.json|\.parquet)?", stale.name.rsplit(".partial-", 1)[1]):  # out is final now
            stale.unlink(missing_ok=True)
    print(f"wrote {out}", file=sys.stderr)


def _append_chunks(clf, texts: Iterable[str], tmp: Path, marker: Path, job: dict, done: int, keep: int,
                   batch_size: int, jsonl: bool) -> None:
    """Predict chunk by chunk into `tmp` from byte `keep` on; after each chunk, flush and record
    in `marker` how many texts and bytes are complete."""
    with tmp.open("r+" if done else "w", encoding="utf-8", newline="") as f, \
            progress(unit="text", desc="predict", initial=done) as bar:
        f.truncate(keep)
        f.seek(keep)
        if not done:
            f.write(_header(clf, jsonl))
        for batch in chunks(texts, CHUNK):
            f.write(_formatted(_rows(clf, batch, batch_size), jsonl))
            f.flush()
            os.fsync(f.fileno())
            done += len(batch)
            bar.update(len(batch))
            marker_tmp = marker.with_suffix(".tmp")
            marker_tmp.write_text(json.dumps({"job": job, "texts": done, "bytes": f.tell()}))
            marker_tmp.replace(marker)


def _write_shared(clf, texts: Iterable[str], out: Path, batch_size: int, job: dict) -> None:
    """Under torchrun: chunk k is predicted by rank k % N into its own partial file (with a
    marker, so a rerun resumes each rank where it stopped); rank 0 then merges the chunks in
    input order into `out`, byte for byte what one process writes."""
    ranks = current()
    part = out.with_name(f".{out.name}.partial-{ranks.rank}of{ranks.world_size}")
    marker = part.with_name(part.name + ".json")
    job = dict(job, rank=ranks.rank, world_size=ranks.world_size)
    state = _shared_resume(part, marker, job)
    jsonl = out.suffix.lower() in (".jsonl", ".ndjson")
    if not state["complete"]:
        with distributed_local(), part.open("r+b" if state["ends"] else "wb") as f:
            f.truncate(state["ends"][-1] if state["ends"] else 0)
            f.seek(0, os.SEEK_END)
            mine = (b for k, b in enumerate(chunks(texts, CHUNK)) if k % ranks.world_size == ranks.rank)
            for j, batch in enumerate(progress(mine, unit="chunk", desc="predict", quiet=not ranks.is_main)):
                if j < len(state["ends"]):
                    continue  # done before the interruption
                f.write(_formatted(_rows(clf, batch, batch_size), jsonl).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
                state["ends"].append(f.tell())
                _save_state(marker, state)
        state["complete"] = True
        _save_state(marker, state)
    barrier()
    if ranks.is_main:
        _merge_parts(out, ranks.world_size, _header(clf, jsonl))
    barrier()


def _shared_resume(part: Path, marker: Path, job: dict) -> dict:
    """This rank's progress: the end offset of each chunk it wrote, and whether it is done."""
    fresh = {"job": job, "ends": [], "complete": False}
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        return fresh
    ok = (isinstance(state, dict) and state.get("job") == job and isinstance(state.get("ends"), list)
          and part.exists() and part.stat().st_size >= (state["ends"][-1] if state["ends"] else 0))
    return state if ok else fresh


def _save_state(marker: Path, state: dict) -> None:
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(marker)


def _merge_parts(out: Path, world: int, header: str) -> None:
    """Interleave the ranks' chunks (chunk k: rank k % world) into `out`, atomically."""
    parts = [out.with_name(f".{out.name}.partial-{r}of{world}") for r in range(world)]
    ends = [json.loads(p.with_name(p.name + ".json").read_text())["ends"] for p in parts]
    tmp = out.with_name(f".{out.name}.partial")
    with tmp.open("wb") as dst:
        dst.write(header.encode("utf-8"))
        sources = [p.open("rb") for p in parts]
        try:
            for j in range(max(len(e) for e in ends)):
                for r in range(world):
                    if j < len(ends[r]):
                        sources[r].seek(ends[r][j - 1] if j else 0)
                        dst.write(sources[r].read(ends[r][j] - (ends[r][j - 1] if j else 0)))
        finally:
            for src in sources:
                src.close()
        dst.flush()
        os.fsync(dst.fileno())
    tmp.replace(out)
    fsync_dir(out.resolve().parent)
    for p in parts:
        p.with_name(p.name + ".json").unlink(missing_ok=True)
        p.unlink(missing_ok=True)
    print(f"wrote {out} ({world} processes)", file=sys.stderr)
