"""The REST server, started for real on a free loopback port and spoken to over HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from convtune import load

from .conftest import toy_texts


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from convtune.serve import spawn_server

    proc, url = spawn_server(tiny_model_dir, "--max-texts", "8", "--max-chars", "200", "--max-body", "4000",
                             "--batch-wait-ms", "50")
    yield url
    proc.terminate()
    proc.wait(10)


def test_predict_matches_the_library(server, tiny_model_dir):
    texts, _ = toy_texts(5, seed=9)
    r = httpx.post(server + "/predict", json={"texts": texts})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    clf = load(tiny_model_dir)
    clf.train_config.bf16 = "off"
    proba = clf.predict_proba(texts)
    assert [p["label"] for p in preds] == clf.predict(texts)
    for p, row in zip(preds, proba):
        assert set(p["probabilities"]) == set(clf.labels_)
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-5
        assert max(abs(p["probabilities"][lab] - x) for lab, x in zip(clf.labels_, row)) < 1e-3


def test_info_health_and_openapi(server):
    info = httpx.get(server + "/info").json()
    assert info["labels"] == ["neg", "pos"] and info["head"] == "cnn" and info["format_version"] == 1
    assert info["limits"]["max_texts"] == 8
    schema = httpx.get(server + "/openapi.json").json()
    assert "/predict" in schema["paths"]
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "texts" in body["properties"]


@pytest.mark.parametrize("content, status, code", [
    (b"{not json", 400, "malformed_json"),
    (json.dumps({"texts": "one string"}).encode(), 422, "wrong_type"),
    (json.dumps({"texts": [1, 2]}).encode(), 422, "wrong_type"),
    (json.dumps({"text": ["a"]}).encode(), 422, "missing_texts"),
    (json.dumps({"texts": []}).encode(), 422, "empty_list"),
    (json.dumps({"texts": ["   "]}).encode(), 422, "empty_text"),
    (json.dumps({"texts": ["good"] * 9}).encode(), 413, "too_many_texts"),
    (json.dumps({"texts": ["good " * 50]}).encode(), 413, "text_too_long"),
    (json.dumps({"texts": ["good"], "pad": "x" * 5000}).encode(), 413, "body_too_large"),
    (b"\xff\xfe\x00garbage", 400, "malformed_json"),
])
def test_bad_requests_get_json_errors(server, content, status, code):
    r = httpx.post(server + "/predict", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert httpx.get(server + "/health").status_code == 200          # still up


def test_chunked_oversized_body_is_refused(server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(server + "/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_concurrent_requests_are_batched_and_answered_in_order(server):
    texts, _ = toy_texts(32, seed=4)
    before = httpx.get(server + "/health").json()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: httpx.post(server + "/predict", json={"texts": [t]}).json(), texts))
    after = httpx.get(server + "/health").json()
    single = httpx.post(server + "/predict", json={"texts": texts[:8]}).json()["predictions"]
    assert [r["predictions"][0]["label"] for r in results[:8]] == [p["label"] for p in single]
    assert after["requests"] - before["requests"] == 32
    assert after["batches"] - before["batches"] < 32                 # some requests shared a model call


def test_serve_rejects_bad_limits_and_directories_in_one_line(tiny_model_dir, tmp_path, capsys):
    from convtune.cli import main

    with pytest.raises(SystemExit) as e:  # a usage error now, caught by argparse
        main(["serve", str(tiny_model_dir), "--max-texts", "0"])
    assert e.value.code == 2 and "--max-texts: wants a whole number >= 1" in capsys.readouterr().err
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a convtune model directory" in err and "Traceback" not in err
    from convtune.errors import ConvtuneError
    from convtune.serve import ServeConfig

    with pytest.raises(ConvtuneError, match="--max-texts must be a whole number >= 1"):  # the Python way in
        ServeConfig(max_texts=0)


def test_model_failure_is_a_json_500_and_the_server_keeps_serving(tiny_model_dir):
    """In-process (ASGI transport): a failing model call answers 500 JSON; the next request works."""
    import asyncio

    from convtune.serve import ServeConfig, create_app

    app = create_app(tiny_model_dir, ServeConfig(batch_wait_ms=1))
    calls = {"n": 0}
    real = app.state.batcher.predict_proba

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return real(texts)

    app.state.batcher.predict_proba = flaky

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                first = await client.post("/predict", json={"texts": ["good film"]})
                second = await client.post("/predict", json={"texts": ["good film"]})
        return first, second

    first, second = asyncio.run(run())
    assert first.status_code == 500 and first.json()["error"]["code"] == "internal"
    assert second.status_code == 200
