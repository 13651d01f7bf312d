"""What `convtune serve` accepts: its limits (ServeConfig), request bodies read within them,
and the error every refusal raises (ApiError). No FastAPI app here: deploy.serve builds it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from typing import TYPE_CHECKING

from convtune.config import option

if TYPE_CHECKING:  # building the CLI reads ServeConfig: no fastapi import for that
    from fastapi import Request

from convtune.errors import ConvtuneError, text_problem

MAX_BATCH_WAIT_MS = 10_000.0  # waiting longer for company than this only delays every answer


@dataclass
class ServeConfig:
    """The server's limits and batching (`convtune serve` makes one option per field)."""

    max_texts: int = option(256, "texts per request", low=1)
    max_chars: int = option(10_000, "characters per text", low=1)
    max_body: int = option(1_000_000, "request body bytes", low=1)
    batch_wait_ms: float = option(5.0, "how long to gather requests into one batch", low=0, high=10_000,
                                  wants="milliseconds from 0 to 10000")  # inf made requests wait forever
    max_batch: int = option(64, "texts per model call", low=1)
    device: str = "auto"          # where the model runs (a GPU if torch sees one)
    precision: str = "auto"       # autocast precision on that device
    ui: bool = True               # the page at GET / (off: --no-ui)

    def __post_init__(self):
        for name, value in asdict(self).items():
            flag = f"--{name.replace('_', '-')}"
            if name in ("device", "precision", "ui"):
                continue  # device / precision: checked by the model's RuntimeConfig when it loads
            if name == "batch_wait_ms":
                # inf used to be accepted: requests then waited forever and SIGTERM could not stop the server
                if not 0 <= value <= MAX_BATCH_WAIT_MS:
                    raise ConvtuneError(f"serve: {flag} must be between 0 and {MAX_BATCH_WAIT_MS:g}, not {value}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConvtuneError(f"serve: {flag} must be a whole number >= 1, not {value!r}")


# What str.strip() removes (Python's whitespace, which differs from JSON Schema's \s: U+001C-
# U+001F and U+0085 are space to Python, U+FEFF is not), as a regex character class body.
_SPACE = "".join(f"\\u{c:04x}" for c in range(0x10000) if chr(c).isspace())


def explain_schema(cfg: ServeConfig, labels: list) -> dict:
    """The JSON Schema of a POST /explain body: /predict's, plus "top" and "label" (one of the
    model's labels, as /predict answers them)."""
    schema = predict_schema(cfg)
    schema["properties"] |= {"top": {"type": "integer", "minimum": 1, "maximum": MAX_TOP},
                             "label": {"enum": [*labels, None]}}
    return schema


def predict_schema(cfg: ServeConfig) -> dict:
    """The JSON Schema of a POST /predict body, with this server's limits (served in OpenAPI):
    what parse_predict_body accepts, but for the byte limit and lone surrogates (said in words:
    regex engines differ on them)."""
    text = {"type": "string", "minLength": 1, "maxLength": cfg.max_chars,
            "pattern": f"[^{_SPACE}]",  # (unanchored) one character that is not white space
            "description": "valid Unicode (no lone surrogate), not only white space"}
    return {"type": "object", "required": ["texts"], "description": f"at most {cfg.max_body} bytes",
            "properties": {"texts": {"type": "array", "items": text, "minItems": 1, "maxItems": cfg.max_texts}}}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes:
    from Content-Length before reading, or while a chunked upload arrives."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        size = max(size, len(raw))
        if size > limit:
            raise ApiError(413, "body_too_large", f"request body is over {limit} bytes")
    return bytes(raw)


def parse_predict_body(raw: bytes, cfg: ServeConfig) -> list[str]:
    """The texts of a /predict body, or an ApiError saying what is wrong."""
    return body_texts(parse_json(raw), cfg)


def body_texts(body, cfg: ServeConfig) -> list[str]:
    """The checked "texts" of an already parsed convtune body (/predict, /explain)."""
    if not isinstance(body, dict) or "texts" not in body:
        raise ApiError(422, "missing_texts", 'body must be a JSON object with a "texts" list')
    texts = body["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ApiError(422, "wrong_type", '"texts" must be a list of strings')
    return check_texts(texts, cfg)


def parse_json(raw: bytes):
    """A body as JSON, or a 400 ApiError."""
    try:
        return json.loads(raw)
    except RecursionError:  # e.g. 1,000 nested lists: Python's parser gives up, the request is bad
        raise ApiError(400, "malformed_json", "body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:  # ValueError: also an integer of over 4,300 digits
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {str(e)[:200]}") from None


def check_texts(texts: list[str], cfg: ServeConfig, field: str = "texts") -> list[str]:
    """The server's limits on a list of strings: not empty, not too many, each short enough and
    a real text; an ApiError (413 / 422) naming the first text at fault."""
    if not texts:
        raise ApiError(422, "empty_list", f'"{field}" is empty')
    if len(texts) > cfg.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts; at most {cfg.max_texts} per request")
    for i, t in enumerate(texts):
        if len(t) > cfg.max_chars:
            raise ApiError(413, "text_too_long", f"{field}[{i}] has {len(t)} characters; the limit is {cfg.max_chars}")
        problem = text_problem(t)
        if problem is not None:
            raise ApiError(422, "empty_text" if not t.strip() else "invalid_text", f"{field}[{i}] {problem}")
    return texts


MAX_TOP = 50  # n-grams per list in an /explain answer


def parse_explain_body(raw: bytes, cfg: ServeConfig) -> tuple[list[str], int, str | int | None]:
    """(texts, top, label) of an /explain body: /predict's body plus optional "top" (n-grams per
    list, default 5) and "label" (the label to explain instead of the most probable)."""
    body = parse_json(raw)
    texts = body_texts(body, cfg)
    top, label = body.get("top", 5), body.get("label")
    if isinstance(top, float) and top.is_integer():  # 30.0 is an integer to JSON Schema
        top = int(top)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise ApiError(422, "wrong_type", f'"top" must be a whole number from 1 to {MAX_TOP}')
    if label is not None and (isinstance(label, bool) or not isinstance(label, str | int)):
        raise ApiError(422, "wrong_type", '"label" must be a string or an integer')
    return texts, top, label


