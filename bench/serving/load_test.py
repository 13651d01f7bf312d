"""Load test for `convtune serve` on loopback: requests/s, latency percentiles, failures.

    python -m bench.serving.load_test --model runs/sst2 --requests 2000 --concurrency 16 --out bench/serving/load_test
    python -m bench.serving.load_test --model runs/sst2 --bad-fraction 0.2 --out bench/serving/load_test   # + bad requests

Starts the server itself on a free loopback port (or uses --url), sends one SST-2 test sentence
per request, and checks every well-formed answer against the model's own offline prediction.
With --bad-fraction, that share of requests is malformed or oversized (broken JSON, wrong types,
empty lists, too many texts, a too-long text, a body over the limit); each must get a 4xx JSON
error, every well-formed request must still be answered correctly, and the server must stay up.
The server's /metrics must count exactly the answers the client received, by status.
Results are appended to OUT.json and OUT.md (one entry per run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx
import numpy as np

BAD_KINDS = ["malformed_json", "wrong_type", "empty_list", "too_many_texts", "text_too_long", "body_too_large"]


def bad_request(kind: str, text: str) -> bytes:
    return {
        "malformed_json": b'{"texts": ["' + text.encode()[:20],
        "wrong_type": json.dumps({"texts": [1, 2, 3]}).encode(),
        "empty_list": json.dumps({"texts": []}).encode(),
        "too_many_texts": json.dumps({"texts": [text] * 1000}).encode(),
        "text_too_long": json.dumps({"texts": [(text + " ") * (10_001 // (len(text) + 1) + 1)]}).encode(),  # > 10,000 chars
        "body_too_large": json.dumps({"texts": [text], "padding": "x" * 2_000_000}).encode(),
    }[kind]


async def send_all(url: str, plan: list[tuple[str, bytes, str | None]], concurrency: int) -> list[dict]:
    """Send each (kind, body, expected label); record status, latency and whether it was right."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def one(kind, body, expected):
            async with sem:
                t = time.perf_counter()
                try:
                    r = await client.post("/predict", content=body, headers={"content-type": "application/json"})
                    status, payload = r.status_code, r.json()
                except (httpx.HTTPError, json.JSONDecodeError) as e:
                    status, payload = None, {"transport_error": str(e)}
                ms = (time.perf_counter() - t) * 1000
            if kind == "ok":
                right = status == 200 and payload["predictions"][0]["label"] == expected
            else:
                right = status in (400, 413, 422) and payload.get("error", {}).get("code") == kind
            detail = payload.get("transport_error") or payload.get("error", {}).get("code")
            return {"kind": kind, "status": status, "ms": ms, "right": right, "detail": detail}

        return await asyncio.gather(*(one(*p) for p in plan))


def predict_counts(url: str) -> dict[str, int]:
    """/metrics' count of answered POST /predict requests by status (prometheus-client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "convtune_requests_total" and sample.labels["route"] == "/predict":
                counts[sample.labels["status"]] = int(sample.value)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model directory (saved or exported)")
    ap.add_argument("--url", help="an already running server (default: start one)")
    ap.add_argument("--data", default="sst2", help="built-in set whose test texts are sent")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--bad-fraction", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default=None, help="server and offline reference (default: auto)")
    ap.add_argument("--out", default="bench/serving/load_test")
    a = ap.parse_args()

    from convtune import load
    from convtune.data.builtin import read_spec

    texts = read_spec(a.data).texts
    expected = dict(zip(texts, load(a.model, precision=a.precision).predict(texts)))  # offline answers
    rng = random.Random(a.seed)
    plan = []
    for _ in range(a.requests):
        text = rng.choice(texts)
        if rng.random() < a.bad_fraction:
            kind = rng.choice(BAD_KINDS)
            plan.append((kind, bad_request(kind, text), None))
        else:
            plan.append(("ok", json.dumps({"texts": [text]}).encode(), expected[text]))

    from convtune.deploy.serve import spawn_server

    proc, url = (None, a.url) if a.url else spawn_server(a.model, *(["--precision", a.precision] if a.precision else []))
    try:
        before = predict_counts(url)
        t = time.perf_counter()
        results = asyncio.run(send_all(url, plan, a.concurrency))
        wall = time.perf_counter() - t
        alive = httpx.get(url + "/health", timeout=5).status_code == 200
        after = predict_counts(url)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)

    good = [r for r in results if r["kind"] == "ok"]
    bad = [r for r in results if r["kind"] != "ok"]
    lat = np.array([r["ms"] for r in good])
    row = {"model": a.model, "precision": a.precision or "auto", "requests": a.requests, "concurrency": a.concurrency, "bad_fraction": a.bad_fraction,
           "wall_seconds": round(wall, 2), "requests_per_second": round(len(results) / wall, 1),
           "well_formed": len(good), "well_formed_failed": sum(not r["right"] for r in good),
           "bad": len(bad), "bad_not_rejected_properly": sum(not r["right"] for r in bad),
           "wrong_answers": [{k: r[k] for k in ("kind", "status", "detail")} for r in results if not r["right"]][:10],
           "latency_ms": {p: round(float(np.percentile(lat, int(p[1:]))), 1) for p in ("p50", "p95", "p99")},
           "server_up_after": alive}
    sent = {str(st): sum(r["status"] == st for r in results) for st in {r["status"] for r in results}}
    counted = {st: n - before.get(st, 0) for st, n in after.items() if n - before.get(st, 0)}
    row["metrics"] = {"sent_by_status": sent, "counted_by_status": counted, "exact": sent == counted}
    print(json.dumps(row, indent=2))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else []
    runs.append(row)
    out.with_suffix(".json").write_text(json.dumps(runs, indent=2) + "\n")
    lines = ["# convtune serve load test (loopback, 2 CPU cores)", "",
             ("| model | requests | concurrency | bad share | req/s | p50 ms | p95 ms | p99 ms "
             "| well-formed failed | bad not rejected | server up after |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['model']} | {r['requests']} | {r['concurrency']} | {r['bad_fraction']:.0%} "
                     f"| {r['requests_per_second']} | {r['latency_ms']['p50']} | {r['latency_ms']['p95']} "
                     f"| {r['latency_ms']['p99']} | {r['well_formed_failed']} / {r['well_formed']} "
                     f"| {r['bad_not_rejected_properly']} / {r['bad']} | {r['server_up_after']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"/metrics counted {counted} POST /predict answers by status; the client got {sent}: "
          f"{'exact' if row['metrics']['exact'] else 'MISMATCH'}")
    ok = row["well_formed_failed"] == 0 and row["bad_not_rejected_properly"] == 0 and alive
    return 0 if ok and row["metrics"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
