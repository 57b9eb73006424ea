"""The ingest service: writes to the log. Reads it does not own are forwarded to the query
service when `forward_to` is given (under `hutch serve`, the process owning chDB)."""

from __future__ import annotations

import falcon.asgi

from hutch.keys import derive
from hutch.metrics import MetricsResource
from hutch.runtime import Runtime
from hutch.web import Route, new_app
from ingest.downloads import LatestDownload, PlatformDownload
from ingest.flag_evaluations import FlagEvaluationIngest
from ingest.flags_api import FlagCommands
from ingest.forward import Forwarded, Forwarder
from ingest.icons import AppIcon
from ingest.identity_api import (
    AppCommands,
    AppSecret,
    AppSettings,
    PreviousSecrets,
    TokenCommands,
    TokenRevocation,
)
from ingest.objects import SignedObjects
from ingest.otlp import routes as otlp_routes
from ingest.telemetry import TelemetryIngest
from ingest.uploads import Presign, Upload
from ingest.web_builds import BuildCommands, WorkerClaim, WorkerReport
from query.app import READS, health_checks
from query.flags_sdk import FlagDefinitions
from query.identity_api import AuthStatus
from query.ofrep_api import OfrepFlag, OfrepFlags


def routes(runtime: Runtime, forwarder: Forwarder | None) -> list[Route]:
    auth, ctx, settings = runtime.auth, runtime.commands, runtime.settings
    writes: list[Route] = [
        ("/api/telemetry", TelemetryIngest(runtime.log, auth, settings.max_body_bytes)),
        ("/api/apps", AppCommands(ctx, auth)),
        ("/api/apps/{app}", AppSettings(ctx, auth)),
        ("/api/apps/{app}/secret", AppSecret(ctx, auth)),
        ("/api/apps/{app}/secret/previous", PreviousSecrets(ctx, auth)),
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
        *build_routes(runtime),
    ]
    if forwarder is None:
        return [*writes, ("/api/health", health_checks(runtime))]
    return writes + [(uri, Forwarded(forwarder, methods)) for uri, methods in READS]


def build_routes(runtime: Runtime) -> list[Route]:
    """Uploads, downloads (GETs that append a download event), icons, the web-app build
    service and its worker API, and the filesystem store's signed URLs."""
    auth, builds = runtime.auth, runtime.builds
    routes: list[Route] = [
        ("/api/upload/presign", Presign(builds, auth)),
        ("/api/upload", Upload(builds, auth)),
        ("/api/apps/{app}/latest", LatestDownload(builds)),
        ("/api/apps/{app}/latest/{os}/{arch}/{format}", PlatformDownload(builds)),
        ("/api/apps/{app}/icon", AppIcon(builds, auth)),
        ("/api/v1/builds", BuildCommands(builds, auth)),
        ("/api/v1/worker/claim", WorkerClaim(builds, runtime.workers)),
        ("/api/v1/worker/builds/{build_id}/status", WorkerReport(builds, runtime.workers)),
    ]
    if runtime.objects_served_here:
        signing = derive(runtime.secret, "objects")
        routes.append(("/objects/{key:path}", SignedObjects(runtime.objects, signing)))
    return routes


def create_app(
    runtime: Runtime, forward_to: str | None = None
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    forwarder = Forwarder(forward_to) if forward_to else None

    async def stop() -> None:
        if forwarder is not None:
            await forwarder.close()
        await runtime.close()

    return new_app(routes(runtime, forwarder), start=runtime.start, stop=stop)
