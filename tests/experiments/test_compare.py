"""`convtune compare` on toy data: the grid, the paired test, and a self-contained report."""

import json

import numpy as np

from convtune.cli import main
from convtune.experiments.compare import Config, grid, mcnemar, paired_bootstrap


def test_grid_expands_modes_for_transformer_heads_only():
    assert grid(["cnn", "tfidf-svm"], ["finetune", "frozen"]) == [
        Config("cnn", "finetune"), Config("cnn", "frozen"), Config("tfidf-svm", "-")]


def test_mcnemar_and_bootstrap():
    a = np.array([True] * 30 + [False] * 10)
    b = np.array([True] * 20 + [False] * 20)
    m = mcnemar(a, b)
    assert (m["a_only"], m["b_only"]) == (10, 0) and m["p_value"] < 0.01
    assert mcnemar(a, a)["p_value"] == 1.0
    boot = paired_bootstrap(a, b)
    assert boot["mean_diff"] == 0.25 and boot["ci95"][0] > 0


def test_compare_writes_report(tiny_encoder, toy_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVTUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", str(toy_csv), "--heads", "cnn,linear,tfidf-nb", "--modes", "frozen",
               "--seeds", "2", "--encoder", str(tiny_encoder), "--frozen-epochs", "2", "--max-length", "16",
               "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["config"] for r in res["summary"]] == ["cnn/frozen", "linear/frozen", "tfidf-nb"]
    assert all(r["seeds"] == 2 for r in res["summary"])
    assert res["paired_tests"][0]["a"] == "cnn/frozen" and set(res["paired_tests"][0]["mcnemar_per_seed"]) == {"42", "43"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert (out / "learning_curves.png").exists() and (out / "confusion_cnn_frozen.png").exists()
    assert "McNemar" in (out / "report.md").read_text()
    # Calibration in the table, the first texts with their decisive n-grams highlighted
    assert all(0 <= r["ece"][0] <= 1 for r in res["summary"]) and "test ECE" in (out / "report.md").read_text()
    assert res["examples"]["config"] == "cnn/frozen" and len(res["examples"]["texts"]) == 6
    assert html.count("<mark>") >= 6 and "&lt;mark&gt;" not in html
    # The blend column: each neural cell blended with TF-IDF; the TF-IDF row has none
    blended = {r["config"]: r for r in res["summary"]}
    assert 0 <= blended["cnn/frozen"]["blend_weight"][0] <= 1 and 0 < blended["cnn/frozen"]["blend_accuracy"][0] <= 1
    assert "blend_accuracy" not in blended["tfidf-nb"] and "blended with TF-IDF" in (out / "report.md").read_text()


def test_compare_without_the_blend_column(tiny_encoder, toy_csv, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(toy_csv), "--heads", "cnn", "--modes", "frozen", "--seeds", "1", "--no-blend",
                 "--encoder", str(tiny_encoder), "--frozen-epochs", "1", "--max-length", "16", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert "blend_accuracy" not in res["summary"][0] and "blended with TF-IDF" not in (out / "report.md").read_text()


def test_highlighted_marks_spans_and_defuses_the_texts_own_markup():
    from convtune.experiments.report import highlighted

    text = "a <b>great</b> film | really"
    ngrams = [{"start": 3, "end": 14, "text": "b>great</b>"}, {"start": 15, "end": 19, "text": "film"}]
    assert highlighted(text, ngrams) == "a ‹<mark>b›great‹/b›</mark> <mark>film</mark> ¦ really"


def test_compare_runs_adapter_modes_beside_finetuning(tiny_encoder, toy_csv, tmp_path):
    """--modes finetune,lora: each mode its own row, the LoRA cells trained an adapter."""
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", str(toy_csv), "--heads", "cnn", "--modes", "finetune,lora", "--seeds", "1",
               "--encoder", str(tiny_encoder), "--epochs", "1", "--max-length", "16", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["config"] for r in res["summary"]] == ["cnn/finetune", "cnn/lora"]
    finetune, lora = res["runs"]
    assert len(finetune["history"]) == len(lora["history"]) == 1  # --epochs 1 reached both cells
    assert len(lora["predictions"]) == len(finetune["predictions"]) > 0


def test_compare_takes_multilabel_data(tmp_path):
    """A JSONL file with label lists: every cell trains a multi-label model; the report says
    what its accuracy is."""
    import json

    from convtune.experiments.compare import run_compare
    from tests.conftest import toy_multilabel

    texts, labels = toy_multilabel(200)
    data = tmp_path / "ml.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)))
    res = run_compare(str(data), ["tfidf-svm"], ["finetune"], 1, tmp_path / "cmp",
                      {"encoder": "minilm-l6", "max_length": None}, command="test")
    run = res["runs"][0]
    assert run["micro_f1"] > 0.8 and "|" in "".join(run["predictions"])  # "neg|pos": a whole set
    assert "subset accuracy" in (tmp_path / "cmp" / "report.md").read_text()
