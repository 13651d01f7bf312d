"""The request and answer shapes of Hugging Face text-embeddings-inference (TEI), so that its
clients speak to `convtune serve` as they are.

    POST /predict  {"inputs": "text" | ["t1", "t2"], "raw_scores": false, "truncate": false}
                   -> [{"label", "score"}, ...] for one text, [[...], [...]] for a list; highest first
    POST /         {"inputs": "text" | [...], "parameters": {"top_k": k, "function_to_apply": f}}
                   (huggingface_hub.InferenceClient.text_classification) -> [[{"label", "score"}, ...]]
    errors         {"error": "message", "error_type": "Validation" | "Overloaded" | "Backend"}

Scores are the model's probabilities (softmax, or sigmoid per label for multi-label models;
calibrated when the model has a temperature), or its logits with "raw_scores": true or
"function_to_apply": "none"; "softmax" or "sigmoid" applies that function to the (temperature-
scaled) logits instead of the model's own, as the transformers pipeline does. convtune reads every text by its own long-text rule (saved with the
model), so "truncate" is accepted and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convtune.data.labels import softmax
from convtune.deploy.serve_body import ApiError, check_texts, parse_json

FUNCTIONS = ("softmax", "sigmoid", "none")


class TeiError(ApiError):
    """An error answered in TEI's shape."""

    def body(self) -> dict:
        kind = "Overloaded" if self.status == 429 else "Backend" if self.status >= 500 else "Validation"
        return {"error": self.message, "error_type": kind}


@dataclass
class TeiRequest:
    texts: list[str]
    single: bool          # "inputs" was one string: TEI answers one list, not a list of lists
    raw: bool             # logits instead of probabilities
    top_k: int | None     # at most this many labels a text (None: all)
    function: str | None = None  # "softmax" / "sigmoid" over the scaled logits; None: the model's own


def is_tei(body) -> bool:
    """Whether a parsed /predict body is TEI's ({"inputs": ...}) rather than convtune's ({"texts": [...]})."""
    return isinstance(body, dict) and "inputs" in body and "texts" not in body


def parse_json_tei(raw: bytes) -> dict:
    """A TEI body (POST /) as a JSON object, or a TeiError."""
    try:
        body = parse_json(raw)
    except ApiError as e:
        raise TeiError(e.status, e.code, e.message) from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise TeiError(422, "missing_inputs", 'body must be a JSON object with "inputs"')
    return body


def parse_tei(body: dict, cfg) -> TeiRequest:
    """A TEI / InferenceClient body (already parsed JSON) as a request, or a TeiError."""
    try:
        inputs = body["inputs"]
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError(422, "wrong_type", '"inputs" must be a string or a list of strings')
        check_texts(texts, cfg, "inputs")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise ApiError(422, "wrong_type", '"parameters" must be an object')
        function = params.get("function_to_apply")
        if function is not None and function not in FUNCTIONS:
            raise ApiError(422, "wrong_type", f'"function_to_apply" must be one of {", ".join(FUNCTIONS)}')
        top_k = params.get("top_k")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ApiError(422, "wrong_type", '"top_k" must be a whole number >= 1')
        raw = body.get("raw_scores", False)
        if not isinstance(raw, bool) or not isinstance(body.get("truncate", False), bool):
            raise ApiError(422, "wrong_type", '"raw_scores" and "truncate" must be true or false')
        raw = raw or function == "none"
        return TeiRequest(texts, single, raw, top_k, None if raw else function)
    except ApiError as e:
        raise TeiError(e.status, e.code, e.message) from None


def apply_function(function: str, logits: np.ndarray, temperature) -> np.ndarray:
    """`function_to_apply` over (N, C) logits divided by the model's temperature (one, or one a label)."""
    z = np.asarray(logits, dtype=np.float64) / np.asarray(temperature, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z)) if function == "sigmoid" else softmax(z)


def tei_answer(scores: np.ndarray, labels: list, request: TeiRequest, nested: bool) -> list:
    """Each text's [{"label", "score"}] highest first; one text's list alone when the input was
    one string (unless `nested`: the InferenceClient reads [[...]])."""
    rows = []
    for row in np.asarray(scores, dtype=np.float64):
        order = np.argsort(-row, kind="stable")[: request.top_k]
        rows.append([{"label": labels[i], "score": float(row[i])} for i in order])
    return rows[0] if request.single and not nested else rows
