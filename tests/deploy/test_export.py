"""ONNX export: one graph, dynamic axes, parity with PyTorch, int8, loading through Classifier.load."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from convtune import Classifier, load
from convtune.cli import main
from convtune.deploy.export import ParityData, export_onnx
from convtune.errors import ConvtuneError
from convtune.estimators.onnx import OnnxClassifier

from ..conftest import toy_texts


@pytest.fixture(scope="module")
def exported(tiny_model_dir, toy_labelled_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "fp32"
    assert main(["export", str(tiny_model_dir), "--data", str(toy_labelled_csv), "--out", str(out)]) == 0
    return out


def test_fp32_export_matches_pytorch(exported, tiny_model_dir):
    manifest = json.loads((exported / "convtune.json").read_text())
    assert manifest["kind"] == "onnx" and manifest["onnx"]["parity"]["max_abs_prob_diff"] <= 1e-4
    onnx_clf = Classifier.load(exported)                       # the facade loads exports too
    assert isinstance(onnx_clf, OnnxClassifier)
    torch_clf = Classifier.load(tiny_model_dir)
    torch_clf.runtime.precision = "fp32"
    texts, _ = toy_texts(50, seed=7)
    texts += ["good", "the movie was very very long and boring and bad " * 5]   # batch and length vary
    np.testing.assert_allclose(onnx_clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=1e-4)
    assert onnx_clf.predict(texts) == torch_clf.predict(texts)
    assert onnx_clf.labels_ == torch_clf.labels_


def test_int8_export_agrees_and_reports(tiny_model_dir, toy_labelled_csv, tmp_path, capsys):
    out = tmp_path / "int8"
    assert main(["export", str(tiny_model_dir), "--int8", "--data", str(toy_labelled_csv), "--out", str(out)]) == 0
    assert "labels agree" in capsys.readouterr().out
    parity = json.loads((out / "convtune.json").read_text())["onnx"]["parity"]
    assert parity["int8"] and parity["label_agreement"] >= 0.99
    # On texts the parity check did not see, int8 gives the fp32 PyTorch model's labels.
    texts, _ = toy_texts(40, seed=3)
    torch_clf = load(tiny_model_dir)
    torch_clf.runtime.precision = "fp32"
    agree = np.mean(np.array(load(out).predict(texts)) == np.array(torch_clf.predict(texts)))
    assert agree >= 0.95, agree


def test_failed_parity_leaves_no_directory(tiny_model_dir, tmp_path, monkeypatch):
    import convtune.deploy.export as ex

    monkeypatch.setattr(ex, "FP32_TOLERANCE", -1.0)            # impossible: any difference fails
    texts, labels = toy_texts(20)
    with pytest.raises(ConvtuneError, match="parity failed"):
        export_onnx(tiny_model_dir, tmp_path / "out", ParityData(texts, labels, "toy"))
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_export_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path), "--data", "x.csv"]) == 2            # not a model dir
    assert main(["export", str(tiny_model_dir)]) == 2                         # no parity data known
    err = capsys.readouterr().err
    assert "give --data" in err and "Traceback" not in err


def test_exported_model_cannot_be_trained(exported):
    with pytest.raises(ConvtuneError, match="cannot be trained"):
        load(exported).fit(["a"], ["b"])


def test_training_record_travels_with_the_export(tiny_model_dir, toy_labelled_csv, tmp_path):
    import shutil

    src = tmp_path / "run"
    shutil.copytree(tiny_model_dir, src)
    (src / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9, "macro_f1": 0.9}}))
    assert main(["export", str(src), "--data", str(toy_labelled_csv), "--out", str(tmp_path / "x")]) == 0
    assert json.loads((tmp_path / "x" / "metrics.json").read_text())["test"]["accuracy"] == 0.9
    card = (tmp_path / "x" / "README.md").read_text()  # no card in the source: one is made, plus the export's note
    assert card.startswith("---\nlibrary_name: convtune") and "## This export" in card and "ONNX (fp32)" in card
    from convtune.estimators.registry import load

    assert load(tmp_path / "x").temperature_ == load(src).temperature_  # the calibration travels too


def test_exporter_failure_is_one_line(tiny_model_dir, toy_labelled_csv, tmp_path, monkeypatch, capsys):
    import torch

    def broken(*a, **k):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nlong details")

    monkeypatch.setattr(torch.onnx, "export", broken)
    assert main(["export", str(tiny_model_dir), "--data", str(toy_labelled_csv), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "ONNX export of" in err and "operator foo" in err and "long details" not in err
    assert not (tmp_path / "o").exists()


def test_export_keeps_integer_labels(tiny_encoder, tmp_path):
    texts, labels = toy_texts(60)
    ints = [1 if y == "pos" else 0 for y in labels]
    src = tmp_path / "src"
    Classifier(encoder=str(tiny_encoder), epochs=1, precision="fp32", max_length=16).fit(texts, ints).save(src)
    export_onnx(src, tmp_path / "onnx", ParityData(texts[:20], [str(y) for y in ints[:20]], "toy"))
    pred = load(tmp_path / "onnx").predict(texts[:5])
    assert all(type(p) is int for p in pred) and pred == load(src).predict(texts[:5])


def test_an_export_without_its_vocabulary_is_refused(exported, tmp_path):
    import shutil

    d = shutil.copytree(exported, tmp_path / "damaged")
    for name in ("vocab.txt", "tokenizer.json"):
        (d / name).unlink(missing_ok=True)
    with pytest.raises(ConvtuneError, match="tokenizer files missing"):
        Classifier.load(d)


def test_export_onto_its_own_model_is_refused(tiny_model_dir, toy_labelled_csv, tmp_path, capsys):
    # With --overwrite the export used to replace (delete) the model it was exporting.
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "m")
    argv = ["export", str(model), "--data", str(toy_labelled_csv), "--out", str(model) + "/", "--overwrite"]
    assert main(argv) == 2
    assert "is the model being exported" in capsys.readouterr().err
    assert Classifier.load(model).labels_                                     # still a PyTorch model


@pytest.mark.parametrize("where", ["../elsewhere.onnx", "ABSOLUTE"])
def test_the_onnx_file_named_by_the_manifest_must_be_inside_the_export(exported, tmp_path, where):
    import shutil

    d = shutil.copytree(exported, tmp_path / "export")
    shutil.copy(d / "model.onnx", tmp_path / "elsewhere.onnx")  # a working graph, outside the directory
    manifest = json.loads((d / "convtune.json").read_text())
    manifest["onnx"]["file"] = str(tmp_path / "elsewhere.onnx") if where == "ABSOLUTE" else where
    (d / "convtune.json").write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="not a file inside the model directory"):
        load(d)


def test_an_export_with_nan_weights_or_other_labels_is_one_line(exported, tmp_path):
    import json
    import shutil

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from convtune.errors import ConvtuneError
    from convtune.estimators.registry import load

    d = tmp_path / "nan"
    shutil.copytree(exported, d)
    model = onnx.load(str(d / "model.onnx"))
    init = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) > 1)
    bad = numpy_helper.to_array(init).copy()
    bad.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(bad, init.name))
    onnx.save(model, str(d / "model.onnx"))
    with pytest.raises(ConvtuneError, match=f"weight {init.name} holds NaN"):
        load(d)
    d2 = tmp_path / "labels"
    shutil.copytree(exported, d2)
    manifest = json.loads((d2 / "convtune.json").read_text())
    manifest["source"]["model"]["labels"] = ["a", "b", "c"]
    (d2 / "convtune.json").write_text(json.dumps(manifest))
    with pytest.raises(ConvtuneError, match="the graph gives 2 logits a text, convtune.json names 3 labels"):
        load(d2)
