"""The server's routes: the model's (/predict, the TEI routes /, /explain) and the service's
(the page at /, /metrics, /health, /info), each group added to the app by one function so that
`deploy.serve.create_app` reads as what it assembles."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from convtune.deploy.serve_body import (
    ApiError,
    body_texts,
    explain_schema,
    parse_explain_body,
    parse_json,
    predict_schema,
    read_capped_body,
)
from convtune.deploy.tei import apply_function, is_tei, parse_json_tei, parse_tei, tei_answer


class Prediction(BaseModel):
    label: str | int | None = None               # int when the model was trained on integer labels
    labels: list[str | int] | None = None        # multi-label models: every label over its threshold
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def add_service_routes(app, cfg, info: dict, metrics, batcher) -> None:
    """Request counting (middleware), the page at / (unless --no-ui), /metrics, /health, /info."""

    @app.middleware("http")
    async def count(request: Request, call_next):
        start = time.perf_counter()
        status = 500  # an exception no handler turned into an answer
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            metrics.observe(getattr(route, "path", "unmatched"), status, time.perf_counter() - start)

    if cfg.ui:
        page = (Path(__file__).parent / "ui.html").read_text(encoding="utf-8")

        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def ui():
            return page

    @app.get("/metrics", include_in_schema=False)  # Prometheus's text format, not JSON
    async def get_metrics():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/health")
    async def health():
        status = "draining" if getattr(app.state, "draining", False) else "ok"
        return {"status": status, "requests": batcher.requests, "batches": batcher.batches}

    @app.get("/info")
    async def get_info():
        return info



def _responses() -> dict:
    """/predict's documented answers (documented, not validated: a response_model would run
    every answer through pydantic)."""
    return {status: {"model": model, "description": what} for status, model, what in (
        (200, PredictResponse, "each text's label and probabilities"), (400, ErrorResponse, "malformed JSON"),
        (413, ErrorResponse, "too many texts, a text or the body too long"),
        (422, ErrorResponse, "wrong types, an empty list, an empty or invalid text"),
        (500, ErrorResponse, "the model failed"))}


def add_model_routes(app, clf, cfg, batcher, not_explainable: str | None) -> None:
    """POST /predict (convtune's body or TEI's), POST / (InferenceClient), POST /explain."""
    responses = _responses()

    async def tei(body: dict, nested: bool) -> list:
        request = parse_tei(body, cfg)
        if request.raw or request.function:
            scores = await asyncio.get_running_loop().run_in_executor(batcher.pool, clf.decision_function, request.texts)
            if request.function:
                scores = apply_function(request.function, scores, clf.label_space_.temperature)
        else:
            scores = await batcher.submit(request.texts)
        return tei_answer(scores, list(clf.label_space_.labels), request, nested)

    # Not in the OpenAPI schema: a compatibility shim whose body is TEI's, not convtune's.
    @app.post("/", include_in_schema=False)
    async def tei_root(request: Request):
        """Hugging Face InferenceClient.text_classification: {"inputs", "parameters"} -> [[{label, score}]]."""
        return await tei(parse_json_tei(await read_capped_body(request, cfg.max_body)), nested=True)

    @app.post("/predict", responses=responses, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": predict_schema(cfg)}}}})
    async def predict(request: Request):
        """Each text's label and every class's probability, in input order ({"texts": [...]}); or
        TEI's body ({"inputs": ...}) answered in TEI's shape."""
        body = parse_json(await read_capped_body(request, cfg.max_body))  # parsed once, either shape
        if is_tei(body):
            return await tei(body, nested=False)
        texts = body_texts(body, cfg)
        proba = await batcher.submit(texts)
        space, key = clf.decision_space(), "labels" if clf.multi_label_ else "label"  # multi-label: a list
        return {"predictions": [{key: label, "probabilities": space.scores(p)}
                                for label, p in zip(space.decode(proba), proba)]}

    _add_explain_route(app, clf, cfg, batcher, not_explainable, responses)


def _add_explain_route(app, clf, cfg, batcher, not_explainable: str | None, responses: dict) -> None:
    explained = {"type": "object", "required": ["explanations"],
                 "properties": {"explanations": {"type": "array", "items": {"type": "object"}}}}
    explain_responses = {**responses, 501: {"model": ErrorResponse, "description": "this model's head cannot explain"},
                         200: {"description": "each text's decisive n-grams",
                               "content": {"application/json": {"schema": explained}}}}

    @app.post("/explain", responses=explain_responses, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": explain_schema(cfg, clf.label_space_.values)}}}})
    async def explain(request: Request):
        """For each text, the n-grams that decided its label: exact contributions to the logit,
        as character spans (models with a CNN head; body: /predict's plus "top" and "label")."""
        texts, top, label = parse_explain_body(await read_capped_body(request, cfg.max_body), cfg)
        if not_explainable:
            raise ApiError(501, "not_available", not_explainable)
        loop = asyncio.get_running_loop()
        return {"explanations": await loop.run_in_executor(batcher.pool, partial(clf.explain, texts, label, top))}

