"""convtune audit: out-of-fold probabilities, cleanlab's verdict, the files, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from convtune.cli import main
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError
from convtune.experiments.audit import audit
from tests.conftest import toy_texts

pytest.importorskip("cleanlab")


def noisy(n: int = 300, flips: int = 12) -> tuple[TextSet, set[int]]:
    texts, labels = toy_texts(n, seed=3)
    flipped = set(range(0, flips * 7, 7))
    labels = [("neg" if y == "pos" else "pos") if i in flipped else y for i, y in enumerate(labels)]
    return TextSet(texts, labels), flipped


def test_audit_ranks_flipped_labels_first():
    data, flipped = noisy()
    r = audit(data, "tfidf", folds=5, seed=0)
    top = set(r.ranked[: len(flipped)].tolist())
    assert len(top & flipped) >= 0.75 * len(flipped)  # the toy words make flips easy to see
    assert r.flagged.sum() >= len(flipped) // 2 and r.proba.shape == (len(data), 2)
    assert (r.quality[r.ranked[:-1]] <= r.quality[r.ranked[1:]]).all()  # most suspect first


def test_audit_cli_writes_suspects(tmp_path, capsys):
    data, flipped = noisy()
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(data.texts, data.labels))
    assert main(["audit", "--data", str(path), "--out", str(tmp_path / "a")]) == 0
    rows = list(csv.DictReader((tmp_path / "a" / "suspects.csv").open()))
    assert rows and rows[0]["rank"] == "1" and {int(r["index"]) for r in rows} & flipped
    assert all(r["given_label"] != r["suggested_label"] for r in rows[:5])
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["flagged"] == len(rows)
    assert "convtune audit" in (tmp_path / "a" / "report.md").read_text()
    assert main(["audit", "--data", str(path), "--out", str(tmp_path / "a")]) == 2  # exists: one line
    assert "error:" in capsys.readouterr().err


def test_audit_refuses_what_it_cannot_do():
    data, _ = noisy(40)
    with pytest.raises(ConvtuneError, match="folds need at least"):
        audit(TextSet(data.texts[:12], ["a"] * 10 + ["b"] * 2), folds=5)
    with pytest.raises(ConvtuneError, match="single-label"):
        audit(TextSet(["a b", "c d"], [("x",), ("y",)]))
    with pytest.raises(ConvtuneError, match="--method"):
        audit(data, method="bert")
