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


def _require_encoder(name: str) -> None:
    try:
        resolve_encoder(name)
    except ConvtuneError as e:
        pytest.skip(str(e))


@pytest.mark.slow
@pytest.mark.integration
def test_me5_small_frozen_on_chinese_hotel_reviews(tmp_path, monkeypatch):
    """Chinese end to end: me5-small converted from the 4-bit wheel, frozen CNN head, predict, reload."""
    root = require_shared_data("chnsenticorp_htl")
    _require_encoder("me5-small")
    monkeypatch.setenv("CONVTUNE_DATA", str(root))
    out = tmp_path / "htl"
    assert main(["train", "--data", "chnsenticorp_htl", "--encoder", "me5-small", "--mode", "frozen",
                 "--train-limit", "800", "--epochs", "4", "--max-length", "96", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["test"]["accuracy"] > 0.8, m["test"]      # 800 reviews, frozen: a working pipeline clears this
    from convtune import load

    clf = load(out)
    assert clf.predict(["房间很干净，服务很好，下次还会再来。", "房间又脏又吵，服务态度很差。"]) == ["positive", "negative"]


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_decoder_frozen_on_sst2_slice(tmp_path, monkeypatch):
    root = require_shared_data("sst2")
    _require_encoder("smollm2-135m")
    monkeypatch.setenv("CONVTUNE_DATA", str(root))
    out = tmp_path / "smol"
    assert main(["train", "--data", "sst2", "--encoder", "smollm2-135m", "--mode", "frozen",
                 "--train-limit", "800", "--epochs", "4", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["test"]["accuracy"] > 0.7, m["test"]
