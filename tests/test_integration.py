"""The packaged MiniLM trained end to end on a small slice of the real SMS spam set."""

import json

import pytest

from convtune.cli import main
from convtune.encoders import resolve_encoder
from convtune.errors import ConvtuneError

from .conftest import require_shared_data


@pytest.mark.integration
def test_minilm_cnn_on_sms_slice(tmp_path, monkeypatch):
    root = require_shared_data("sms_spam")
    try:
        resolve_encoder("minilm-l6")
    except ConvtuneError as e:
        pytest.skip(str(e))
    monkeypatch.setenv("CONVTUNE_DATA", str(root))
    out = tmp_path / "sms"
    rc = main(["train", "--data", "sms_spam", "--train-limit", "600", "--epochs", "2",
               "--max-length", "64", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    # 600 messages, 2 epochs: far from the full run, but a working pipeline clears this easily
    # (a constant "ham" predictor has macro-F1 ~0.47).
    assert m["test"]["macro_f1"] > 0.85, m["test"]
    assert m["encoder"] == "minilm-l6" and m["hyperparameters"]["lr"] == 1e-4  # the registry's default
    assert main(["evaluate", str(out), "--data", "sms_spam"]) == 0
    ev = json.loads((out / "eval-sms_spam.json").read_text())
    assert ev["accuracy"] == pytest.approx(m["test"]["accuracy"], abs=1e-9)  # same split rebuilt
