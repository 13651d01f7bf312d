"""Parquet and fastText files, standard input and output: train, evaluate and predict read them
as they read CSV, with one clear line for a missing column or a wrong type."""

import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from convtune.cli import main
from convtune.data.texts import read_table
from convtune.errors import ConvtuneError

from ..conftest import toy_texts

TEXTS, LABELS = toy_texts(200, seed=11)


def _parquet(path, **columns):
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_trains_evaluates_and_predicts_into_parquet(tmp_path, capsys):
    data = _parquet(tmp_path / "d.parquet", sentence=TEXTS, label=LABELS, n=list(range(len(TEXTS))))
    assert read_table(data).texts == TEXTS
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--head", "tfidf-svm", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--data", str(data)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["predict", str(run), "--input", str(data), "--output", str(tmp_path / "p.parquet")]) == 0
    assert main(["predict", str(run), "--input", str(data), "--output", str(tmp_path / "p.csv")]) == 0
    got = pq.read_table(tmp_path / "p.parquet").to_pylist()
    import csv

    with (tmp_path / "p.csv").open(newline="") as f:
        want = list(csv.DictReader(f))
    assert [r["text"] for r in got] == TEXTS == [r["text"] for r in want]
    assert [r["label"] for r in got] == [r["label"] for r in want]
    assert all(abs(r["p_pos"] - float(w["p_pos"])) < 1e-6 for r, w in zip(got, want))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "p.csv", "p.parquet", "run"]


def test_parquet_columns_and_types_are_one_line(tmp_path):
    from convtune.deploy.predict_io import iter_texts

    no_text = _parquet(tmp_path / "a.parquet", body=TEXTS, label=LABELS)
    with pytest.raises(ConvtuneError, match="cannot tell which column holds the text .*body"):
        read_table(no_text)
    with pytest.raises(ConvtuneError, match="no text column .*body.*pass --text-col"):
        list(iter_texts(str(no_text), None, "utf-8"))
    numbers = _parquet(tmp_path / "b.parquet", text=list(range(200)), label=LABELS)
    with pytest.raises(ConvtuneError, match="column 'text' holds int"):
        read_table(numbers)
    with pytest.raises(ConvtuneError, match="column 'text' holds int"):
        list(iter_texts(str(numbers), None, "utf-8"))
    (tmp_path / "c.parquet").write_text("not parquet")
    with pytest.raises(ConvtuneError, match="not a readable Parquet file"):
        read_table(tmp_path / "c.parquet")


def test_fasttext_lines_train_and_their_labels_are_dropped_for_prediction(tmp_path, capsys):
    from convtune.deploy.predict_io import iter_texts

    single = tmp_path / "train.txt"
    single.write_text("".join(f"__label__{y} {t}\n" for t, y in zip(TEXTS, LABELS)))
    data = read_table(single)
    assert data.texts == TEXTS and data.labels == LABELS
    assert list(iter_texts(str(single), None, "utf-8")) == TEXTS
    multi = tmp_path / "multi.txt"
    multi.write_text("__label__a __label__b first text\n__label__b second text\n")
    assert read_table(multi).labels == [("a", "b"), ("b",)]
    run = tmp_path / "run"
    assert main(["train", "--data", str(single), "--head", "tfidf-svm", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--data", str(single)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(single)]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == TEXTS
    bad = tmp_path / "bad.txt"
    bad.write_text("__label__a fine\nno label here\n")
    with pytest.raises(ConvtuneError, match=r"bad.txt:2: no __label__ at the start"):
        read_table(bad)


def test_standard_input_to_standard_output_and_a_file(tmp_path, monkeypatch, capsys):
    data = _parquet(tmp_path / "d.parquet", text=TEXTS, label=LABELS)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--head", "tfidf-svm", "--out", str(run)]) == 0
    piped = "".join(t + "\n" for t in TEXTS).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped)))
    capsys.readouterr()
    assert main(["predict", str(run), "--input", "-"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(piped)))
    assert main(["predict", str(run), "--input", "-", "--output", str(tmp_path / "p.jsonl")]) == 0
    written = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["text"] for r in out] == TEXTS and out == written


@pytest.mark.parametrize("suffix, what", [(".xlsx", "an Excel workbook"), (".ods", "an OpenDocument spreadsheet")])
def test_a_spreadsheet_is_told_to_become_csv(tmp_path, suffix, what):
    from convtune.deploy.predict_io import iter_texts

    sheet = tmp_path / f"book{suffix}"
    sheet.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    for read in (lambda: read_table(sheet), lambda: list(iter_texts(str(sheet), None, "utf-8"))):
        with pytest.raises(ConvtuneError, match=f"is {what}; save it as CSV"):
            read()
