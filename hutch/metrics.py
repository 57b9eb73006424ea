"""Prometheus metrics. Under `hutch serve` every process writes to one multiprocess directory
(PROMETHEUS_MULTIPROC_DIR) and `GET /metrics` adds them up; alone, a process serves its own."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
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


class Tally:
    """Hot-path counting in plain integers, added to the Prometheus counters in one go.

    A Prometheus increment takes a lock (and, across gunicorn workers, writes to a shared
    memory map); at tens of thousands of requests a second that is a visible share of a
    worker's time. Requests add to a dict instead, and `flush` — every second, and before
    each scrape — moves the sums into the counters.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}

    def add(self, counter: Counter, labels: tuple[str, ...], amount: int = 1) -> None:
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0) + amount

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for key, amount in counts.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = key[0].labels(*key[1])
            child.inc(amount)


TALLY = Tally()
FLUSH_EVERY_S = 1.0


async def flush_forever() -> None:
    """Flush the tally every second, for as long as the process serves."""
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        TALLY.flush()


def appended(topic: str, count: int) -> None:
    TALLY.add(APPENDED, (topic,), count)


class RequestMetrics:
    """Falcon middleware counting every answer by route template, method and status."""

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, ok: bool
    ) -> None:
        if getattr(req.context, "forwarded", False):
            return  # the query service that answered counts it
        route = req.uri_template or "unmatched"
        status = str(resp.status)[:3] if resp.status else "200"
        TALLY.add(REQUESTS, (route, req.method, status))
        code = getattr(req.context, "error_code", None)
        if code is not None and status.startswith("4"):
            TALLY.add(REJECTED, (route, code))


class MetricsResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        TALLY.flush()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            resp.data = generate_latest(registry)
        else:
            resp.data = generate_latest(REGISTRY)
        resp.content_type = CONTENT_TYPE_LATEST
