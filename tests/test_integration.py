"""The packaged MiniLM trained end to end on a small slice of the real SMS spam set."""

import json

import pytest

from convtune.cli import main
from convtune.errors import ConvtuneError
from convtune.modeling.encoders import resolve_encoder

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


def _frozen_slice(data: str, encoder: str, out, monkeypatch, *extra: str) -> dict:
    """Train a frozen CNN head on 800 texts of a real set with a packaged encoder; its metrics."""
    root = require_shared_data(data)
    try:
        resolve_encoder(encoder)
    except ConvtuneError as e:
        pytest.skip(str(e))
    monkeypatch.setenv("CONVTUNE_DATA", str(root))
    assert main(["train", "--data", data, "--encoder", encoder, "--mode", "frozen", "--train-limit", "800",
                 "--epochs", "4", *extra, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.integration
def test_me5_small_frozen_on_chinese_hotel_reviews(tmp_path, monkeypatch):
    """Chinese end to end: me5-small converted from the 4-bit wheel, frozen CNN head, predict, reload."""
    m = _frozen_slice("chnsenticorp_htl", "me5-small", tmp_path / "htl", monkeypatch, "--max-length", "96")
    assert m["test"]["accuracy"] > 0.8, m["test"]      # 800 reviews, frozen: a working pipeline clears this
    from convtune import load

    clf = load(tmp_path / "htl")
    assert clf.predict(["房间很干净，服务很好，下次还会再来。", "房间又脏又吵，服务态度很差。"]) == ["positive", "negative"]


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_decoder_frozen_on_sst2_slice(tmp_path, monkeypatch):
    m = _frozen_slice("sst2", "smollm2-135m", tmp_path / "smol", monkeypatch)
    assert m["test"]["accuracy"] > 0.7, m["test"]
