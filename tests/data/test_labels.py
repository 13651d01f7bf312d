"""The label space: one set of label values from every interface."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from convtune import Classifier, load
from convtune.cli import main
from convtune.data.labels import LabelSpace

from ..conftest import toy_texts


def test_label_space_decodes_in_column_order():
    space = LabelSpace(("0", "1", "10"), "int")
    assert space.values == [0, 1, 10]
    assert space.decode(np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])) == [10, 0]
    assert LabelSpace(("neg", "pos")).decode(np.array([[0.2, 0.8]])) == ["pos"]
    assert space.scores([0.25, 0.5, 0.25], digits=1) == {"0": 0.2, "1": 0.5, "10": 0.2}
    with pytest.raises(ValueError, match="label type"):
        LabelSpace(("a",), "float")


def test_integer_labels_come_back_as_integers_from_every_interface(tiny_encoder, tmp_path, capsys):
    """Python used to answer 0 and the CLI and the server "0" for the same model."""
    httpx = pytest.importorskip("httpx")
    texts, labels = toy_texts(120)
    ints = [1 if y == "pos" else 0 for y in labels]
    Classifier(encoder=str(tiny_encoder), epochs=1, precision="fp32", max_length=16).fit(texts, ints).save(tmp_path / "m")
    sample = texts[:6]
    python = load(tmp_path / "m").predict(sample)
    assert all(type(p) is int for p in python)
    capsys.readouterr()  # training's own output
    assert main(["predict", str(tmp_path / "m"), *sample]) == 0
    cli = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert cli == python

    from convtune.deploy.serve import ServeConfig, create_app

    app = create_app(tmp_path / "m", ServeConfig(batch_wait_ms=1))

    async def ask():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return (await client.post("/predict", json={"texts": sample})).json(), \
                    (await client.get("/info")).json()

    answer, info = asyncio.run(ask())
    assert [p["label"] for p in answer["predictions"]] == python and info["labels"] == [0, 1]

    pytest.importorskip("onnxruntime")
    from convtune.deploy.export import ParityData, export_onnx

    export_onnx(tmp_path / "m", tmp_path / "onnx", ParityData(texts[:20], [str(y) for y in ints[:20]], "toy"))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "onnx"), *sample]) == 0
    onnx_cli = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert onnx_cli == python and load(tmp_path / "onnx").predict(sample) == python


def test_a_label_over_the_limit_is_refused_in_one_line_before_training():
    from convtune.data.labels import MAX_LABEL_CHARS, label_list
    from convtune.data.texts import TextSet
    from convtune.errors import ConvtuneError

    huge = "x" * 1_000_000
    with pytest.raises(ConvtuneError, match="a training label is 1,000,000 characters long .*is the label column"):
        label_list(TextSet(["a", "b", "c"], [huge, "neg", "pos"]))
    assert label_list(TextSet(["a", "b"], ["y" * MAX_LABEL_CHARS, "neg"]))[1] == "y" * MAX_LABEL_CHARS


def test_plots_cut_long_labels_on_their_axes(tmp_path, monkeypatch):
    import matplotlib.axes

    from convtune.experiments.plots import TICK_CHARS, plot_confusion

    seen = []
    original = matplotlib.axes.Axes.set_xticks
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticks",
                        lambda self, ticks, labels=None, **kw: seen.append(labels) or original(self, ticks, labels, **kw))
    plot_confusion([[3, 1], [0, 4]], ["z" * 1000, "neg"], tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert seen == [["z" * (TICK_CHARS - 1) + "…", "neg"]]
