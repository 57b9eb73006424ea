"""Reads and writes in one app, for a process that holds every store itself: tests, and
deployments whose analytics store is a ClickHouse server (no single-process owner)."""

from __future__ import annotations

import falcon.asgi

from hutch.runtime import Runtime
from hutch.web import new_app
from ingest import app as ingest_app
from query import app as query_app


def create_app(runtime: Runtime) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    routes = query_app.routes(runtime) + ingest_app.routes(runtime, None)
    return new_app(routes, start=runtime.start, stop=runtime.close)
