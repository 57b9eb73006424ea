"""The ingest service: writes to the log. Reads it does not own are forwarded to the query
service when `forward_to` is given (under `hutch serve`, the process owning chDB)."""

from __future__ import annotations

import falcon.asgi

from hutch.metrics import MetricsResource
from hutch.runtime import Runtime
from hutch.web import Route, new_app
from ingest.flag_evaluations import FlagEvaluationIngest
from ingest.flags_api import FlagCommands
from ingest.forward import Forwarded, Forwarder
from ingest.identity_api import AppCommands, TokenCommands, TokenRevocation
from ingest.otlp import routes as otlp_routes
from ingest.telemetry import TelemetryIngest
from query.app import READS, health_checks
from query.flags_sdk import FlagDefinitions
from query.identity_api import AuthStatus
from query.ofrep_api import OfrepFlag, OfrepFlags


def routes(runtime: Runtime, forwarder: Forwarder | None) -> list[Route]:
    auth, ctx, settings = runtime.auth, runtime.commands, runtime.settings
    writes: list[Route] = [
        ("/api/telemetry", TelemetryIngest(runtime.log, auth, settings.max_body_bytes)),
        ("/api/apps", AppCommands(ctx, auth)),
        ("/api/tokens", TokenCommands(ctx, auth)),
        ("/api/tokens/{token_id}", TokenRevocation(ctx, auth)),
        ("/api/auth/status", AuthStatus(auth)),
        ("/metrics", MetricsResource()),
        ("/api/apps/{app}/flags/{name}", FlagCommands(ctx, auth, runtime.flags)),
        ("/v1/flags", FlagDefinitions(auth, runtime.flags)),
        (
            "/v1/flags/eval",
            FlagEvaluationIngest(runtime.log, auth, runtime.flags, settings.max_body_bytes),
        ),
        ("/ofrep/v1/evaluate/flags/{key}", OfrepFlag(auth, runtime.flags)),
        ("/ofrep/v1/evaluate/flags", OfrepFlags(auth, runtime.flags)),
        *otlp_routes(runtime.log, auth, settings.otlp_max_body_bytes),
    ]
    if forwarder is None:
        return [*writes, ("/api/health", health_checks(runtime))]
    return writes + [(uri, Forwarded(forwarder, methods)) for uri, methods in READS]


def create_app(
    runtime: Runtime, forward_to: str | None = None
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    forwarder = Forwarder(forward_to) if forward_to else None

    async def stop() -> None:
        if forwarder is not None:
            await forwarder.close()
        await runtime.close()

    return new_app(routes(runtime, forwarder), start=runtime.start, stop=stop)
