"""Prometheus metrics. Under `hutch serve` every process writes to one multiprocess directory
(PROMETHEUS_MULTIPROC_DIR) and `GET /metrics` adds them up; alone, a process serves its own."""

from __future__ import annotations

import os
import time
from typing import Any

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "hutch_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
APPENDED = Counter("hutch_events_appended_total", "Events appended to the log", ["topic"])
REJECTED = Counter(
    "hutch_rejected_inputs_total", "Requests refused as bad input", ["route", "code"]
)
PROJECTED = Counter(
    "hutch_projector_records_total", "Log records applied by projectors", ["projection"]
)
LAG = Gauge(
    "hutch_projector_lag_records",
    "Records appended but not yet applied, per projection",
    ["projection"],
    multiprocess_mode="livemax",
)
APPEND_SECONDS = Histogram(
    "hutch_append_seconds",
    "Time from request to durable append",
    ["topic"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class RequestMetrics:
    """Falcon middleware counting every answer by route template, method and status."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], Any] = {}  # labels() costs a lookup

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, ok: bool
    ) -> None:
        if getattr(req.context, "forwarded", False):
            return  # the query service that answered counts it
        route = req.uri_template or "unmatched"
        status = str(resp.status)[:3] if resp.status else "200"
        key = (route, req.method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = REQUESTS.labels(*key)
        child.inc()
        code = getattr(req.context, "error_code", None)
        if code is not None and status.startswith("4"):
            REJECTED.labels(route, code).inc()


class MetricsResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            resp.data = generate_latest(registry)
        else:
            resp.data = generate_latest(REGISTRY)
        resp.content_type = CONTENT_TYPE_LATEST


def elapsed_since(started: float) -> float:
    return time.perf_counter() - started
