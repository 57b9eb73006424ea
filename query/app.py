"""The query service: reads over the read models. `create_app` wires it in a few lines."""

from __future__ import annotations

import asyncio

import falcon.asgi

from hutch.metrics import MetricsResource
from hutch.runtime import Runtime
from hutch.web import Route, new_app
from query.app_info import AppBuildListing, AppInfo, Images
from query.flag_stats import FlagStats
from query.flags_api import FlagListing, FlagLookup
from query.health import Health
from query.identity_api import AppListing, AuthStatus, TokenListing
from query.logs import LogListing
from query.metrics import MetricQuery
from query.openapi import OpenApiDocument
from query.sql_api import Admission, SqlQuery
from query.sql_scope import ScopedSql
from query.telemetry import TelemetryListing
from query.traces import TraceLookup, TraceSearch
from query.web_builds_api import BuildListing, BuildStatusResource

READS: list[tuple[str, tuple[str, ...]]] = [
    ("/api/telemetry", ("get",)),
    ("/api/apps", ("get",)),
    ("/api/tokens", ("get",)),
    ("/api/health", ("get",)),
    ("/api/apps/{app}/flags", ("get",)),
    ("/api/apps/{app}/flags/{name}", ("get",)),
    ("/api/flags/{name}/stats", ("get",)),
    ("/api/sql", ("post",)),
    ("/api/traces", ("get",)),
    ("/api/traces/{traceId}", ("get",)),
    ("/api/logs", ("get",)),
    ("/api/metrics", ("get",)),
    ("/api/app/{id}", ("get",)),
    ("/api/apps/{app}/builds", ("get",)),
    ("/api/img/{key}", ("get",)),
    ("/api/v1/builds", ("get",)),
    ("/api/v1/builds/{id}", ("get",)),
    ("/api/openapi.json", ("get",)),
]
"""Routes this service answers that ingest forwards to it (see ingest/forward.py)."""


def health_checks(runtime: Runtime) -> Health:
    async def log() -> str:
        await runtime.log.end_offset("apps", 0)
        return "ok"

    async def relational() -> str:
        return await asyncio.to_thread(runtime.db.ping)

    checks = {"log": log, "relational": relational}
    analytics = runtime.analytics
    if analytics is not None:

        async def analytics_check() -> str:
            return await asyncio.to_thread(analytics.ping)

        checks["analytics"] = analytics_check
    return Health(checks)


def routes(runtime: Runtime) -> list[Route]:
    assert runtime.analytics is not None, "the query service needs the analytics store"
    auth = runtime.auth
    return [
        ("/api/telemetry", TelemetryListing(runtime.analytics, auth)),
        ("/api/apps", AppListing(runtime.db, auth)),
        ("/api/tokens", TokenListing(runtime.db, auth)),
        ("/api/health", health_checks(runtime)),
        ("/api/openapi.json", OpenApiDocument()),
        ("/api/auth/status", AuthStatus(auth)),
        ("/metrics", MetricsResource()),
        ("/api/apps/{app}/flags", FlagListing(runtime.db, auth)),
        ("/api/apps/{app}/flags/{name}", FlagLookup(runtime.db, auth)),
        ("/api/flags/{name}/stats", FlagStats(runtime.analytics, auth)),
        (
            "/api/sql",
            SqlQuery(
                ScopedSql(
                    runtime.analytics,
                    timeout_s=runtime.settings.sql_timeout_s,
                    max_memory_bytes=runtime.settings.sql_max_memory,
                    max_result_bytes=runtime.settings.sql_max_result_bytes,
                ),
                auth,
                runtime.settings.sql_max_rows,
                Admission(
                    runtime.settings.sql_max_concurrent, runtime.settings.sql_max_per_developer
                ),
            ),
        ),
        ("/api/traces", TraceSearch(runtime.analytics, auth)),
        ("/api/traces/{traceId}", TraceLookup(runtime.analytics, auth)),
        ("/api/logs", LogListing(runtime.analytics, auth)),
        ("/api/metrics", MetricQuery(runtime.analytics, auth)),
        *build_routes(runtime),
    ]


def build_routes(runtime: Runtime) -> list[Route]:
    db, objects, auth = runtime.db, runtime.objects, runtime.auth
    return [
        ("/api/app/{id}", AppInfo(db, objects, runtime.settings.public_url)),
        ("/api/apps/{app}/builds", AppBuildListing(db, auth)),
        ("/api/img/{key}", Images(objects)),
        ("/api/v1/builds", BuildListing(db, objects, auth)),
        ("/api/v1/builds/{id}", BuildStatusResource(db, objects, auth)),
    ]


def create_app(runtime: Runtime) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    return new_app(routes(runtime), start=runtime.start, stop=runtime.close)
