"""A head from outside the package (tests/toy_head.py: one module, one register_head call) trains,
saves, loads and predicts through the Python API and the command line."""

import json

import numpy as np
import pytest

from convtune.cli import main

from ..conftest import toy_texts


@pytest.fixture(autouse=True, scope="module")
def _registry_restored():
    """The toy head leaves the registry as it found it: other tests see the built-in heads only."""
    import sys

    from convtune import config
    from convtune.modeling import heads

    saved_heads, saved_names = dict(heads.HEADS), list(config._ENCODER_HEADS)
    yield
    heads.HEADS.clear()
    heads.HEADS.update(saved_heads)
    config._ENCODER_HEADS[:] = saved_names
    sys.modules.pop("tests.toy_head", None)


def test_a_registered_head_trains_saves_loads_and_predicts_from_python(tiny_encoder, tmp_path):
    import convtune
    from convtune import Classifier
    from convtune.config import transformer_heads

    from .. import toy_head

    assert "meanmax" in transformer_heads()
    texts, labels = toy_texts(120)
    clf = Classifier(encoder=str(tiny_encoder), head="meanmax", head_config={"dropout": 0.1}, epochs=2,
                     max_length=16, precision="fp32").fit(texts, labels)
    assert isinstance(clf.model_.head, toy_head.MeanMaxHead)
    clf.save(tmp_path / "m")
    again = convtune.load(tmp_path / "m", precision="fp32")
    np.testing.assert_allclose(again.predict_proba(texts[:10]), clf.predict_proba(texts[:10]), atol=1e-6)
    assert json.loads((tmp_path / "m" / "convtune.json").read_text())["model"]["head_config"] == {"dropout": 0.1}
    with pytest.raises(convtune.ConvtuneError, match="explanations are not available for a MeanMaxHead"):
        again.explain(["good film"])


def test_a_registered_head_is_a_head_choice_of_the_command_line(tiny_encoder, toy_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVTUNE_PLUGINS", "tests.toy_head")
    run = tmp_path / "run"
    assert main(["train", "--data", str(toy_csv), "--encoder", str(tiny_encoder), "--head", "meanmax", "--epochs", "1",
                 "--max-length", "16", "--precision", "fp32", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "a good film", "an awful plot"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] in ("pos", "neg") for r in rows] == [True, True]
    monkeypatch.setenv("CONVTUNE_PLUGINS", "no_such_module_here")
    assert main(["predict", str(run), "a good film"]) == 2
    assert "CONVTUNE_PLUGINS: cannot import 'no_such_module_here'" in capsys.readouterr().err


def test_a_registered_head_brings_its_search_space():
    from convtune.experiments.search_space import default_space, searchable_heads

    from .. import toy_head  # noqa: F401  (registers meanmax)

    assert "meanmax" in searchable_heads()
    dropout = next(p for p in default_space("finetune", "meanmax", 1e-4) if p.name == "dropout")
    assert (dropout.low, dropout.high, dropout.default) == (0.0, 0.3, 0.0)
