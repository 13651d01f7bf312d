"""GET /metrics for `convtune serve`: Prometheus's text format, from prometheus-client.

    convtune_requests_total{route, status}      requests answered, by route template and status
    convtune_request_seconds{route}             latency histogram (request read to answer sent)
    convtune_texts_per_model_call               histogram: how many texts each batched model call took
    convtune_queue_length                       requests waiting for the model now
    convtune_model_info{encoder, head, ...}     what is being served

Each app has its own registry (not prometheus-client's global one), so several servers in one
process (the tests) never count each other's requests. With --workers N each worker process
counts its own requests; a scraper sees whichever worker answered.
"""

from __future__ import annotations

from collections.abc import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TEXT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self, info: dict, queue_length: Callable[[], int]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("convtune_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("convtune_request_seconds", "time from request to answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.texts = Histogram("convtune_texts_per_model_call", "texts in each batched model call",
                               buckets=TEXT_BUCKETS, registry=self.registry)
        queue = Gauge("convtune_queue_length", "requests waiting for the model", registry=self.registry)
        queue.set_function(queue_length)
        Info("convtune_model", "the model being served", registry=self.registry).info(
            {k: str(info.get(k)) for k in ("encoder", "head", "mode", "kind", "convtune_version")}
            | {"labels": ",".join(map(str, info.get("labels", [])))[:500]})

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
