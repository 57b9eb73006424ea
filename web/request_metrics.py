"""Request metrics for every Falcon app, and `GET /metrics`, which serves every Prometheus
metric of the process (or, under `hutch serve`, of every process: base/prometheus.py)."""

from __future__ import annotations

import os
from typing import Any

import falcon.asgi
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from base.prometheus import REJECTED, REQUESTS, TALLY


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
