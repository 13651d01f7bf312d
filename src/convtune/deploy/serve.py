"""REST server for a saved (or exported) model: FastAPI + uvicorn, loopback by default.

    POST /predict  {"texts": ["...", ...]} -> {"predictions": [{"label": ..., "probabilities": {...}}]}
    POST /explain  {"texts": [...], "top": 5, "label": null} -> {"explanations": [{"label", "ngrams", ...}]}
    POST /         Hugging Face InferenceClient's text_classification, and /predict with TEI's body
                   {"inputs": ...}: answered in TEI's shape (deploy.tei)
    GET  /         a page to try the model: texts in, labels with probability bars and the
                   decisive n-grams highlighted (deploy/ui.html; off with --no-ui)
    GET  /health   liveness, and how many requests / batches were served
    GET  /metrics  Prometheus: requests by route and status, latency, texts per model call, queue
    GET  /info     labels, encoder, head, training metrics, format version, limits
    GET  /openapi.json, /docs

Requests that arrive together are answered by one model call: a batcher waits at most
``batch_wait_ms`` after the first request for others (up to ``max_batch`` texts), so a burst
of single-text requests costs a few batched forward passes instead of one pass each.
Bad requests get a JSON error with the right status and never reach the model:
400 malformed JSON, 422 wrong types / empty list / empty text, 413 too many texts, a text over
the character limit, or a body over the size limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from convtune.deploy.metrics import ServerMetrics
from convtune.deploy.serve_body import (  # noqa: F401  (ServeConfig, parse_predict_body: re-exported)
    ApiError,
    ServeConfig,
    parse_predict_body,
)
from convtune.deploy.tei import TeiError
from convtune.errors import ConvtuneError


class Batcher:
    """Runs ``predict_proba`` on texts gathered from concurrent requests, one model call at a time."""

    def __init__(self, predict_proba, max_batch: int, wait_ms: float, on_call=lambda texts: None):
        self.predict_proba, self.max_batch, self.wait_s = predict_proba, max_batch, wait_ms / 1000
        self.on_call = on_call  # told each model call's number of texts (/metrics)
        self.queue: asyncio.Queue = asyncio.Queue()
        # One worker thread: the model call releases the GIL, the event loop keeps accepting.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convtune-model")
        self.batches = self.requests = 0

    async def submit(self, texts: list[str]) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            size, deadline = len(items[0][0]), loop.time() + self.wait_s
            while size < self.max_batch:
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                items.append(item)
                size += len(item[0])
            await self._answer(loop, items)

    async def _answer(self, loop, items: list) -> None:
        """One model call for all `items`; if it fails, one call per request, so that a text
        the model cannot take fails only the request that sent it."""
        texts = [t for batch, _ in items for t in batch]
        self.on_call(len(texts))
        try:
            proba = await loop.run_in_executor(self.pool, self.predict_proba, texts)
        except Exception as e:
            if len(items) == 1:
                if not items[0][1].done():
                    items[0][1].set_exception(e)
                return
            for item in items:
                await self._answer(loop, [item])
            return
        self.batches += 1
        self.requests += len(items)
        start = 0
        for batch, fut in items:
            if not fut.done():          # a client that went away is simply skipped
                fut.set_result(proba[start: start + len(batch)])
            start += len(batch)


def model_info(clf, model_dir: Path, cfg: ServeConfig) -> dict:
    """What GET /info reports: the model, its training metrics and the server's limits."""
    from convtune._version import __version__

    manifest = clf.manifest_ or {}
    metrics_file = model_dir / "metrics.json"
    try:  # the training record is information only: a damaged one is left out, the model still serves
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    except (ValueError, RecursionError, OSError):
        print(f"warning: {metrics_file} is unreadable; /info leaves the training record out", file=sys.stderr)
        metrics = {}
    metrics = metrics if isinstance(metrics, dict) else {}
    training = {"dataset": metrics.get("dataset"), "train_seconds": metrics.get("train_seconds")}
    for part in ("dev", "test"):
        if isinstance(metrics.get(part), dict):
            training[part] = {k: metrics[part].get(k) for k in ("accuracy", "macro_f1")}
    card = model_dir / "README.md"  # the model card, in the Hugging Face format
    return {"model_card": card.read_text(encoding="utf-8") if card.is_file() else None,
            "labels": clf.label_space_.values, **clf.describe(), "kind": manifest.get("kind", "transformer"),
            "format_version": manifest.get("format_version"), "convtune_version": __version__,
            "training": training, "limits": asdict(cfg)}


def _json_errors(app) -> None:
    """Every error answers JSON {"error": {"code", "message"}}; the server keeps serving."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        body = e.body() if isinstance(e, TeiError) else {"error": {"code": e.code, "message": e.message}}
        return JSONResponse(body, status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        # No such route (404), a method the route does not take (405): the same shape as every error.
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": f"{request.method} {request.url.path}: {e.detail}"}},
                            status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(ConvtuneError)
    async def bad_text(request: Request, e: ConvtuneError):
        # The model refused this request's texts (a check in the library): the request is at fault.
        return JSONResponse({"error": {"code": "invalid_text", "message": str(e)}}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception):
        # The model failed on a well-formed request: say so in JSON, keep serving.
        return JSONResponse({"error": {"code": "internal", "message": f"{type(e).__name__}: {e}"}}, status_code=500)


def create_app(model_dir: str | Path, cfg: ServeConfig | None = None):
    """The FastAPI app serving the model in ``model_dir`` (loaded now, before the first request)."""
    from convtune.deploy.routes import add_model_routes, add_service_routes
    from convtune.estimators.registry import load
    from convtune.runtime import set_threads

    cfg = cfg or ServeConfig()
    model_dir = Path(model_dir)
    clf = load(model_dir, cfg.device, cfg.precision)
    set_threads()
    clf.predict_proba(["warm-up"])            # first-call allocations before the first client
    batcher = Batcher(clf.predict_proba, cfg.max_batch, cfg.batch_wait_ms)
    info = model_info(clf, model_dir, cfg)
    metrics = ServerMetrics(info, batcher.queue.qsize)
    batcher.on_call = metrics.texts.observe

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        print(f"convtune: stopped after answering {batcher.requests} prediction requests", file=sys.stderr, flush=True)

    app = FastAPI(title="convtune", version=info["convtune_version"], lifespan=lifespan,
                  description=f"{info['head']} head over {info['encoder']}; labels: {', '.join(clf.labels_)}")
    app.state.batcher = batcher
    _json_errors(app)
    add_service_routes(app, cfg, info, metrics, batcher)
    add_model_routes(app, clf, cfg, batcher, _why_not_explainable(clf))
    return app


def _why_not_explainable(clf) -> str | None:
    """None if `clf.explain` works, else the one line it would fail with."""
    try:
        clf.explain(["warm-up"], top=1)
    except ConvtuneError as e:
        return str(e)
    return None


def app_from_env():
    """Factory for ``uvicorn --factory`` worker processes: model dir and limits from the environment."""
    cfg = ServeConfig(**json.loads(os.environ.get("CONVTUNE_SERVE_CONFIG", "{}")))
    return create_app(os.environ["CONVTUNE_SERVE_DIR"], cfg)  # threads: CONVTUNE_THREADS, set by run_server


def run_server(model_dir: str | Path, cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000,
               workers: int = 1) -> int:
    """Serve until interrupted. Several workers are separate processes, each with its model copy."""
    import torch
    import uvicorn

    from convtune.modeling.checkpoint import read_manifest

    read_manifest(model_dir)                       # a wrong directory fails here, in one line
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: reachable from other machines, with no authentication",
              file=sys.stderr)
    if workers < 1:
        raise ConvtuneError("--workers must be at least 1")
    print(f"convtune: serving {model_dir} on http://{host}:{port} (docs: /docs), {workers} worker(s)", flush=True)
    if workers == 1:
        draining_server(create_app(model_dir, cfg), host, port).run()
    else:
        os.environ["CONVTUNE_SERVE_DIR"] = str(Path(model_dir).resolve())
        os.environ["CONVTUNE_SERVE_CONFIG"] = json.dumps(asdict(cfg))
        # Workers share the cores: N processes with all cores each would oversubscribe them.
        os.environ["CONVTUNE_THREADS"] = str(max(1, torch.get_num_threads() // workers))
        uvicorn.run("convtune.deploy.serve:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")
    return 0


def draining_server(app, host: str, port: int):
    """A uvicorn server whose SIGTERM drains: it stops accepting connections, answers every request
    already accepted (the model batcher runs until they are done; /health says "draining"), then
    exits with status 0, not by the signal (uvicorn re-raises it once drained)."""
    import signal

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    default = server.handle_exit

    def handle_exit(sig, frame):
        app.state.draining = True
        if sig == signal.SIGTERM:
            server.should_exit = True
        else:  # Ctrl-C twice still forces the exit
            default(sig, frame)

    server.handle_exit = handle_exit
    return server


def spawn_server(model_dir: str | Path, *options: str, timeout: float = 60.0, log_path: str | Path | None = None):
    """Start ``convtune serve`` in a child process on a free loopback port; wait until /health
    answers. Returns (process, base URL); the caller terminates the process. Used by the tests
    and bench/serving/load_test.py; `log_path` keeps the server's output there."""
    import socket
    import subprocess
    import tempfile
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A file, not a pipe: a chatty server can never block on it.
    log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen([sys.executable, "-m", "convtune.cli", "serve", str(model_dir), "--port", str(port),
                             *options], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            if proc.poll() is not None:
                log.seek(0)
                raise ConvtuneError(f"server exited during start-up: {log.read().decode()[-500:]}") from None
            time.sleep(0.1)
    proc.kill()
    raise ConvtuneError(f"server did not answer /health within {timeout:.0f} s")
