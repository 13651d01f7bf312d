"""Label sets, per-label thresholds and multi-label splits."""

from __future__ import annotations

import numpy as np
import pytest

from convtune.data.multilabel import (
    MultiLabelSpace,
    check_thresholds,
    label_set,
    stratified_split_multi,
    tune_thresholds,
)
from convtune.data.labels import check_labels, label_list
from convtune.data.texts import TextSet
from convtune.errors import ConvtuneError


def test_label_cells_parse_from_lists_json_and_separators():
    assert label_set(["b", "a"], "x") == ("a", "b")
    assert label_set('["joy", "fear"]', "x") == ("fear", "joy")
    assert label_set("joy,fear", "x", sep=",") == ("fear", "joy")
    assert label_set("", "x", sep=",") == ()
    assert label_set("joy", "x") == ("joy",)


@pytest.mark.parametrize("cell, message", [("joy,,fear", "empty label"), ("joy,joy", "given twice"),
                                           ("[joy", "not a JSON list")])
def test_bad_label_cells_are_one_line(cell, message):
    with pytest.raises(ConvtuneError, match=message):
        label_set(cell, "train.csv line 3", sep=",")


def test_thresholds_maximise_each_labels_f1():
    # label 0: positives score 0.3-0.4, negatives 0.1-0.2 -> a cut between 0.2 and 0.3, not 0.5
    proba = np.array([[0.4, 0.9], [0.3, 0.8], [0.2, 0.7], [0.1, 0.1]])
    truth = np.array([[1, 1], [1, 1], [0, 1], [0, 0]])
    t = tune_thresholds(proba, truth, min_positives=2)
    assert 0.2 < t[0] < 0.3 and 0.1 < t[1] < 0.7
    assert tune_thresholds(proba, np.zeros_like(truth)) == [0.5, 0.5]  # absent from dev: 0.5
    assert tune_thresholds(proba, truth, min_positives=3) == [0.5, t[1]]  # label 0 has 2 dev positives


def test_a_lone_low_ranked_dev_positive_does_not_set_a_threshold():
    # One positive ranked last of 400: its best cut would call all 400 texts positive.
    proba = np.linspace(0.9, 0.01, 400)[:, None]
    truth = np.zeros((400, 1))
    truth[-1] = 1
    assert tune_thresholds(proba, truth) == [0.5]
    assert tune_thresholds(proba, truth, min_positives=1)[0] < 0.02  # the rule it replaces


def test_space_decodes_sets_with_thresholds_and_at_least_one():
    space = MultiLabelSpace(("a", "b"), thresholds=(0.25, 0.5))
    proba = np.array([[0.3, 0.2], [0.1, 0.4], [0.9, 0.9]])
    assert space.decode(proba) == [["a"], [], ["a", "b"]]
    assert MultiLabelSpace(("a", "b"), at_least_one=True).decode(proba)[1] == ["b"]
    assert MultiLabelSpace(("1", "2"), kind="int").decode(proba[2:]) == [[1, 2]]


@pytest.mark.parametrize("values", [[0.5], [0.5, float("nan")], [0.5, 1.5], [0.5, "x"], "0.5"])
def test_damaged_thresholds_are_refused(values):
    with pytest.raises(ConvtuneError, match="threshold"):
        check_thresholds(values, 2, "model/convtune.json")


def test_iterative_split_keeps_every_label_in_every_part():
    rng = np.random.default_rng(0)
    sets = [tuple(sorted({"abcde"[j] for j in rng.choice(5, rng.integers(1, 3), replace=False)}))
            for _ in range(500)]
    parts = stratified_split_multi(sets, (0.8, 0.1, 0.1), seed=1)
    assert sorted(i for p in parts for i in p) == list(range(500))
    assert [len(p) for p in parts] == pytest.approx([400, 50, 50], abs=6)  # iterative stratification: sizes to about 1%
    for p in parts[1:]:
        counts = {lab: sum(lab in sets[i] for i in p) for lab in "abcde"}
        total = {lab: sum(lab in s for s in sets) for lab in "abcde"}
        for lab in "abcde":
            assert abs(counts[lab] / total[lab] - 0.1) < 0.03, lab


def test_label_map_and_unseen_labels_of_sets():
    train = TextSet(["x", "y", "z"], [("a",), ("a", "b"), ()])
    assert label_list(train) == ["a", "b"]
    with pytest.raises(ConvtuneError, match="'c'"):
        check_labels(TextSet(["q"], [("c",)]), ["a", "b"], "dev data")
    with pytest.raises(ConvtuneError, match="need texts without it"):
        label_list(TextSet(["x", "y"], [("a",), ("a",)]))


def _csv(path, header, rows):
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_files_give_label_sets_by_separator_columns_or_json(tmp_path):
    from convtune.data.texts import LabelRule, read_table

    sep = _csv(tmp_path / "a.csv", ["text", "tags"], [["x", "b,a"], ["y", ""], ["z", "a"]])
    assert read_table(sep, rule=LabelRule(sep=",")).labels == [("a", "b"), (), ("a",)]
    cols = _csv(tmp_path / "b.csv", ["text", "a", "b"], [["x", "1", "0"], ["y", "0", "1"], ["z", "1", "1"]])
    assert read_table(cols, rule=LabelRule(cols=("a", "b"))).labels == [("a",), ("b",), ("a", "b")]
    js = tmp_path / "c.jsonl"
    js.write_text('{"text": "x", "label": ["b", "a"]}\n{"text": "y", "label": "a"}\n')
    assert read_table(js).labels == [("a", "b"), ("a",)]  # a JSON list makes the file multi-label
    one = _csv(tmp_path / "d.csv", ["text", "label"], [["x", "a"], ["y", "b"]])
    assert read_table(one, rule=LabelRule(multi=True)).labels == [("a",), ("b",)]


@pytest.mark.parametrize("rows, option, message", [
    ([["x", "joy,,fear"]], ["--label-sep", ","], "an empty label"),
    ([["x", "joy,joy"]], ["--label-sep", ","], "given twice"),
    ([["x", "2"]], ["--label-cols", "tags"], "hold 0 or 1"),
    ([["x", "1"]], ["--label-cols", "tags,nope"], "no column 'nope'"),
])
def test_bad_multilabel_files_are_one_line(tmp_path, capsys, rows, option, message):
    from convtune.cli import main

    path = _csv(tmp_path / "t.csv", ["text", "tags"], rows * 20)
    assert main(["train", "--data", str(path), "--label-col", "tags", *option, "--head", "tfidf-svm",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_dev_label_unseen_in_training_is_one_line(tmp_path, capsys):
    from convtune.cli import main

    train = _csv(tmp_path / "tr.csv", ["text", "tags"], [[f"t{i}", "a" if i % 2 else "a,b"] for i in range(40)])
    dev = _csv(tmp_path / "dv.csv", ["text", "tags"], [["d1", "a,c"], ["d2", "b"]])
    assert main(["train", "--data", str(train), "--dev", str(dev), "--label-col", "tags", "--label-sep", ",",
                 "--head", "tfidf-svm", "--out", str(tmp_path / "run")]) == 2
    assert "labels not in the training data: 'c'" in capsys.readouterr().err


def test_multi_label_option_on_single_label_data_trains(tmp_path, capsys):
    from convtune.cli import main
    from tests.conftest import toy_texts

    texts, labels = toy_texts(200)
    path = _csv(tmp_path / "t.csv", ["text", "label"], zip(texts, labels))
    assert main(["train", "--data", str(path), "--multi-label", "--head", "tfidf-svm",
                 "--out", str(tmp_path / "run")]) == 0
    assert "micro-F1" in capsys.readouterr().out
    import json

    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["multi_label"] and "iterative" in split["stratification"]
