"""The one route table: every route Hutch serves, the resource that answers it, and which
service answers it. Each service's app, and what the ingest service forwards, are derived
from it (hutch/apps.py), so a new route is written down once.

- `ingest`: writes, and the reads SDKs and downloads make at volume from the relational
  store alone (flag definitions, OFREP, redirects to builds);
- `query`: reads over the read models; under `hutch serve` the process that owns chDB
  answers them, and the ingest workers forward them there;
- `both`: answered by whichever service is asked (who is calling, /metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from base.keys import derive
from base.keyserver import Keyserver
from hutch.runtime import Runtime
from ingest.bot_challenge import BotChallenge
from ingest.downloads import LatestDownload, PlatformDownload, VersionDownload
from ingest.flags.api import FlagCommands
from ingest.flags.evaluations import FlagEvaluationIngest
from ingest.github_webhooks import GitHubWebhook
from ingest.icons import AppIcon
from ingest.identity_api import (
    AppCommands,
    AppSecret,
    AppSettings,
    PreviousSecrets,
    TokenCommands,
    TokenRevocation,
)
from ingest.jobs.api import JobCancel, JobStart, JobSubmission
from ingest.jobs.runner_api import (
    ProvisionerDequeue,
    RunnerArtifacts,
    RunnerLogs,
    RunnerStatus,
    RunnerTaskStatus,
)
from ingest.objects import SignedObjects
from ingest.otlp import ROUTES as OTLP_ROUTES
from ingest.otlp import OtlpIngest
from ingest.pgp_keys import PgpKeyFetch
from ingest.publish.generate_api import PublishGenerate
from ingest.publish.runs_api import PublishRuns
from ingest.publish.ssh_keys_api import SshKeyCommands, SshKeyDeletion
from ingest.secrets_api import SecretCommands, SecretDeletion
from ingest.sign_in_api import BuildHutLogout, BuiltifulLogout, GitHubCallback, GitHubLogin
from ingest.telemetry import TelemetryIngest
from ingest.tenants_api import GitHubSetup, TenantEmailChange, TenantEmailVerification
from ingest.uploads import Presign, Upload
from ingest.web_builds import BuildCommands, WorkerClaim, WorkerReport
from portal.serve import Portal
from query.analytics_bounds import Bounds
from query.app_info import AppBuildListing, AppInfo, Images
from query.branches import BranchListing
from query.flags.api import FlagListing, FlagLookup
from query.flags.impact import FlagImpact
from query.flags.ofrep_api import OfrepFlag, OfrepFlags
from query.flags.sdk import FlagDefinitions
from query.flags.stats import FlagStats
from query.health import Health, store_checks
from query.identity_api import AppListing, AuthStatus, TokenListing
from query.jobs.api import JobListing, JobLookup, JobManifest, JobReads, TenantJobs
from query.jobs.deliveries import JobDeliveries
from query.jobs.logs import JobSetupLog, JobTaskLog
from query.openapi import OpenApiDocument
from query.otel_logs import LogListing
from query.otel_metrics import MetricQuery
from query.otel_traces import TraceLookup, TraceSearch
from query.publish.runs_api import PublishStatus
from query.publish.ssh_keys_api import SshKeyListing
from query.release_health import ReleaseHealth
from query.secrets_api import SecretListing
from query.sql_api import Admission, SqlQuery
from query.sql_scope import ScopedSql
from query.telemetry import TelemetryListing
from query.tenants_api import TenantEmailLookup, TenantListing
from query.user_api import CurrentUser
from query.web_builds_api import BuildListing, BuildStatusResource
from schemas.otlp.rules import Signal
from storage.analytics import Analytics
from web.request_metrics import MetricsResource

Service = Literal["ingest", "query", "both"]


@dataclass(frozen=True, slots=True)
class Route:
    uri: str
    service: Service
    resource: type
    """Its `on_<method>` responders are the route's methods (what ingest forwards)."""
    make: Callable[[Runtime], object]
    alone: bool = False
    """A query route the ingest service answers itself when it forwards nothing."""
    when: Callable[[Runtime], bool] = lambda runtime: True
    """Whether this deployment has the route at all."""


def analytics(runtime: Runtime) -> Analytics:
    assert runtime.analytics is not None, "the query service needs the analytics store"
    return runtime.analytics


def sql(rt: Runtime) -> SqlQuery:
    s = rt.settings
    scoped = ScopedSql(
        analytics(rt),
        timeout_s=s.sql_timeout_s,
        max_memory_bytes=s.sql_max_memory,
        max_result_bytes=s.sql_max_result_bytes,
    )
    admission = Admission(s.sql_max_concurrent, s.sql_max_per_developer)
    return SqlQuery(scoped, rt.auth, s.sql_max_rows, admission)


def signed_objects(rt: Runtime) -> SignedObjects:
    return SignedObjects(rt.objects, derive(rt.secret, "objects"))


def otlp(signal: Signal) -> Callable[[Runtime], OtlpIngest]:
    def make(rt: Runtime) -> OtlpIngest:
        return OtlpIngest(signal, rt.log, rt.auth, rt.settings.otlp_max_body_bytes)

    return make


def jobs(kind: type[JobReads]) -> Callable[[Runtime], JobReads]:
    """A job read: the relational store, objects for artifact URLs, auth, the public URL."""

    def make(rt: Runtime) -> JobReads:
        return kind(rt.db, rt.objects, rt.auth, rt.settings.public_url)

    return make


def bounds(rt: Runtime) -> Bounds:
    """The limits of Hutch's own aggregations: those of POST /api/sql."""
    return Bounds(rt.settings.sql_timeout_s, rt.settings.sql_max_memory)


def health(rt: Runtime) -> Health:
    return store_checks(rt.log, rt.db, rt.analytics)


ROUTES: list[Route] = [
    # who is calling, the metrics, the API itself
    Route("/api/auth/status", "both", AuthStatus, lambda rt: AuthStatus(rt.auth)),
    Route("/metrics", "both", MetricsResource, lambda rt: MetricsResource()),
    Route("/api/health", "query", Health, health, alone=True),
    Route("/api/openapi.json", "query", OpenApiDocument, lambda rt: OpenApiDocument()),
    # the web portal's files (portal/): pages, not API operations
    Route("/portal", "both", Portal, lambda rt: Portal()),
    Route("/portal/{path:path}", "both", Portal, lambda rt: Portal()),
    # sign-in with GitHub, sessions and the current user (ingest/sign_in_api.py)
    Route(
        "/api/auth/github/login",
        "ingest",
        GitHubLogin,
        lambda rt: GitHubLogin(rt.settings, rt.github, derive(rt.secret, "oauth-state")),
    ),
    Route(
        "/api/auth/github/callback",
        "ingest",
        GitHubCallback,
        lambda rt: GitHubCallback(rt.command_context, rt.github, derive(rt.secret, "oauth-state")),
    ),
    Route(
        "/api/auth/logout",
        "ingest",
        BuiltifulLogout,
        lambda rt: BuiltifulLogout(rt.command_context, rt.auth),
    ),
    Route(
        "/api/logout",
        "ingest",
        BuildHutLogout,
        lambda rt: BuildHutLogout(rt.command_context, rt.auth),
    ),
    Route("/api/user", "query", CurrentUser, lambda rt: CurrentUser(rt.db, rt.auth)),
    # identity
    Route("/api/apps", "ingest", AppCommands, lambda rt: AppCommands(rt.command_context, rt.auth)),
    Route("/api/apps", "query", AppListing, lambda rt: AppListing(rt.db, rt.auth)),
    Route(
        "/api/apps/{app}",
        "ingest",
        AppSettings,
        lambda rt: AppSettings(rt.command_context, rt.auth),
    ),
    Route(
        "/api/apps/{app}/secret",
        "ingest",
        AppSecret,
        lambda rt: AppSecret(rt.command_context, rt.auth),
    ),
    Route(
        "/api/apps/{app}/secret/previous",
        "ingest",
        PreviousSecrets,
        lambda rt: PreviousSecrets(rt.command_context, rt.auth),
    ),
    Route(
        "/api/tokens",
        "ingest",
        TokenCommands,
        lambda rt: TokenCommands(rt.command_context, rt.auth),
    ),
    Route("/api/tokens", "query", TokenListing, lambda rt: TokenListing(rt.db, rt.auth)),
    Route(
        "/api/tokens/{token_id}",
        "ingest",
        TokenRevocation,
        lambda rt: TokenRevocation(rt.command_context, rt.auth),
    ),
    # telemetry and OTLP
    Route(
        "/api/telemetry",
        "ingest",
        TelemetryIngest,
        lambda rt: TelemetryIngest(rt.log, rt.auth, rt.settings.max_body_bytes),
    ),
    Route(
        "/api/telemetry",
        "query",
        TelemetryListing,
        lambda rt: TelemetryListing(analytics(rt), rt.auth),
    ),
    *(Route(uri, "ingest", OtlpIngest, otlp(signal)) for signal, uri in OTLP_ROUTES.items()),
    Route("/api/traces", "query", TraceSearch, lambda rt: TraceSearch(analytics(rt), rt.auth)),
    Route(
        "/api/traces/{traceId}",
        "query",
        TraceLookup,
        lambda rt: TraceLookup(analytics(rt), rt.auth),
    ),
    Route("/api/logs", "query", LogListing, lambda rt: LogListing(analytics(rt), rt.auth)),
    Route("/api/metrics", "query", MetricQuery, lambda rt: MetricQuery(analytics(rt), rt.auth)),
    Route("/api/sql", "query", SqlQuery, sql),
    # flags
    Route(
        "/api/apps/{app}/flags",
        "query",
        FlagListing,
        lambda rt: FlagListing(rt.db, rt.auth),
    ),
    Route(
        "/api/apps/{app}/flags/{name}",
        "ingest",
        FlagCommands,
        lambda rt: FlagCommands(rt.command_context, rt.auth, rt.flags),
    ),
    Route(
        "/api/apps/{app}/flags/{name}",
        "query",
        FlagLookup,
        lambda rt: FlagLookup(rt.db, rt.auth),
    ),
    Route(
        "/api/flags/{name}/stats",
        "query",
        FlagStats,
        lambda rt: FlagStats(analytics(rt), rt.auth),
    ),
    Route(
        "/api/flags/{name}/impact",
        "query",
        FlagImpact,
        lambda rt: FlagImpact(analytics(rt), rt.auth, bounds(rt)),
    ),
    Route("/v1/flags", "ingest", FlagDefinitions, lambda rt: FlagDefinitions(rt.auth, rt.flags)),
    Route(
        "/v1/flags/eval",
        "ingest",
        FlagEvaluationIngest,
        lambda rt: FlagEvaluationIngest(rt.log, rt.auth, rt.flags, rt.settings.max_body_bytes),
    ),
    Route(
        "/ofrep/v1/evaluate/flags/{key}",
        "ingest",
        OfrepFlag,
        lambda rt: OfrepFlag(rt.auth, rt.flags),
    ),
    Route(
        "/ofrep/v1/evaluate/flags", "ingest", OfrepFlags, lambda rt: OfrepFlags(rt.auth, rt.flags)
    ),
    # builds: uploads, downloads (GETs that append a download event), icons, public info
    Route(
        "/api/upload/presign", "ingest", Presign, lambda rt: Presign(rt.command_context, rt.auth)
    ),
    Route("/api/upload", "ingest", Upload, lambda rt: Upload(rt.command_context, rt.auth)),
    Route(
        "/api/apps/{app}/latest",
        "ingest",
        LatestDownload,
        lambda rt: LatestDownload(rt.command_context),
    ),
    Route(
        "/api/apps/{app}/latest/{os}/{arch}/{format}",
        "ingest",
        PlatformDownload,
        lambda rt: PlatformDownload(rt.command_context),
    ),
    Route(
        "/api/apps/{app}/versions/{version}/{fileName}",
        "ingest",
        VersionDownload,
        lambda rt: VersionDownload(rt.command_context),
    ),
    Route(
        "/api/apps/{app}/icon", "ingest", AppIcon, lambda rt: AppIcon(rt.command_context, rt.auth)
    ),
    Route(
        "/api/app/{id}",
        "query",
        AppInfo,
        lambda rt: AppInfo(rt.db, rt.objects, rt.settings.public_url),
    ),
    Route(
        "/api/apps/{app}/builds",
        "query",
        AppBuildListing,
        lambda rt: AppBuildListing(rt.db, rt.auth),
    ),
    Route(
        "/api/apps/{app}/release-health",
        "query",
        ReleaseHealth,
        lambda rt: ReleaseHealth(analytics(rt), rt.db, rt.auth, bounds(rt)),
    ),
    Route("/api/img/{key}", "query", Images, lambda rt: Images(rt.objects)),
    Route(
        "/objects/{key:path}",
        "ingest",
        SignedObjects,
        signed_objects,
        when=lambda rt: rt.objects_served_here,
    ),
    # the web-app build service and its workers
    Route(
        "/api/v1/builds",
        "ingest",
        BuildCommands,
        lambda rt: BuildCommands(rt.command_context, rt.auth),
    ),
    Route(
        "/api/v1/builds",
        "query",
        BuildListing,
        lambda rt: BuildListing(rt.db, rt.objects, rt.auth),
    ),
    Route(
        "/api/v1/builds/{id}",
        "query",
        BuildStatusResource,
        lambda rt: BuildStatusResource(rt.db, rt.objects, rt.auth),
    ),
    Route(
        "/api/v1/worker/claim",
        "ingest",
        WorkerClaim,
        lambda rt: WorkerClaim(rt.command_context, rt.workers),
    ),
    Route(
        "/api/v1/worker/builds/{build_id}/status",
        "ingest",
        WorkerReport,
        lambda rt: WorkerReport(rt.command_context, rt.workers),
    ),
    # CI jobs: builds.sr.ht's and Builtiful's, and the runners' side (docs/jobs.md)
    Route(
        "/api/jobs", "ingest", JobSubmission, lambda rt: JobSubmission(rt.command_context, rt.auth)
    ),
    Route("/api/jobs", "query", JobListing, jobs(JobListing)),
    Route("/api/jobs/{id}", "query", JobLookup, jobs(JobLookup)),
    Route("/api/jobs/{id}/manifest", "query", JobManifest, jobs(JobManifest)),
    Route(
        "/api/jobs/{id}/start", "ingest", JobStart, lambda rt: JobStart(rt.command_context, rt.auth)
    ),
    Route(
        "/api/jobs/{id}/cancel",
        "ingest",
        JobCancel,
        lambda rt: JobCancel(rt.command_context, rt.auth),
    ),
    Route("/api/jobs/{id}/deliveries", "query", JobDeliveries, jobs(JobDeliveries)),
    Route(
        "/api/jobs/{id}/log",
        "query",
        JobSetupLog,
        lambda rt: JobSetupLog(analytics(rt), rt.db, rt.auth),
    ),
    Route(
        "/api/jobs/{id}/tasks/{name}/log",
        "query",
        JobTaskLog,
        lambda rt: JobTaskLog(analytics(rt), rt.db, rt.auth),
    ),
    Route("/api/tenants/{tenant_id}/jobs", "query", TenantJobs, jobs(TenantJobs)),
    # GitHub's webhooks: installations, repositories, pushes -> jobs (ingest/github_webhooks.py)
    Route(
        "/api/github/webhook",
        "ingest",
        GitHubWebhook,
        lambda rt: GitHubWebhook(rt.command_context, rt.github),
    ),
    # tenants: the GitHub App setup handler, the listing, the e-mail (ingest/tenants_api.py)
    Route(
        "/api/auth/github/setup",
        "ingest",
        GitHubSetup,
        lambda rt: GitHubSetup(rt.command_context, rt.auth, rt.github, rt.settings),
    ),
    Route("/api/tenants", "query", TenantListing, lambda rt: TenantListing(rt.db, rt.auth)),
    Route(
        "/api/tenants/{tenant_id}/email",
        "query",
        TenantEmailLookup,
        lambda rt: TenantEmailLookup(rt.db, rt.auth),
    ),
    Route(
        "/api/tenants/{tenant_id}/email",
        "ingest",
        TenantEmailChange,
        lambda rt: TenantEmailChange(
            rt.command_context, rt.auth, derive(rt.secret, "tenant-email"), rt.settings
        ),
    ),
    Route(
        "/api/tenants/{tenant_id}/email/verify",
        "ingest",
        TenantEmailVerification,
        lambda rt: TenantEmailVerification(rt.command_context, derive(rt.secret, "tenant-email")),
    ),
    Route(
        "/api/secrets",
        "ingest",
        SecretCommands,
        lambda rt: SecretCommands(rt.command_context, rt.auth),
    ),
    Route("/api/secrets", "query", SecretListing, lambda rt: SecretListing(rt.db, rt.auth)),
    Route(
        "/api/secrets/{secret_id}",
        "ingest",
        SecretDeletion,
        lambda rt: SecretDeletion(rt.command_context, rt.auth),
    ),
    Route(
        "/api/publish/ssh-keys",
        "ingest",
        SshKeyCommands,
        lambda rt: SshKeyCommands(rt.command_context, rt.auth),
    ),
    Route(
        "/api/publish/ssh-keys", "query", SshKeyListing, lambda rt: SshKeyListing(rt.db, rt.auth)
    ),
    Route(
        "/api/publish/ssh-keys/{key_id}",
        "ingest",
        SshKeyDeletion,
        lambda rt: SshKeyDeletion(rt.command_context, rt.auth),
    ),
    Route(
        "/api/branches",
        "query",
        BranchListing,
        lambda rt: BranchListing(rt.command_context, rt.auth),
    ),
    # publish runs: a build's PKGBUILD and .SRCINFO pushed over SSH (ingest/publish/runs*.py)
    Route(
        "/api/publish/publish",
        "ingest",
        PublishRuns,
        lambda rt: PublishRuns(rt.command_context, rt.auth),
    ),
    Route(
        "/api/publish/status/{run_id}",
        "query",
        PublishStatus,
        lambda rt: PublishStatus(rt.db, rt.auth),
    ),
    # publishing: a build's package files (ingest/publish/generate_api.py)
    Route(
        "/api/publish/generate",
        "ingest",
        PublishGenerate,
        lambda rt: PublishGenerate(rt.command_context, rt.auth),
    ),
    # utilities: a public key from the keyserver, the bot challenge (public)
    Route(
        "/api/pgp/fetch-key",
        "ingest",
        PgpKeyFetch,
        lambda rt: PgpKeyFetch(rt.auth, Keyserver.from_settings(rt.settings)),
    ),
    Route(
        "/api/validate",
        "ingest",
        BotChallenge,
        lambda rt: BotChallenge(rt.command_context, derive(rt.secret, "bot-challenge")),
    ),
    Route(
        "/api/provisioner/dequeue",
        "ingest",
        ProvisionerDequeue,
        lambda rt: ProvisionerDequeue(rt.command_context, rt.provisioners),
    ),
    Route(
        "/api/runner/jobs/{uuid}/status",
        "ingest",
        RunnerStatus,
        lambda rt: RunnerStatus(rt.command_context, rt.provisioners),
    ),
    Route(
        "/api/runner/jobs/{uuid}/tasks/{name}/status",
        "ingest",
        RunnerTaskStatus,
        lambda rt: RunnerTaskStatus(rt.command_context, rt.provisioners),
    ),
    Route(
        "/api/runner/jobs/{uuid}/logs",
        "ingest",
        RunnerLogs,
        lambda rt: RunnerLogs(rt.command_context, rt.provisioners),
    ),
    Route(
        "/api/runner/jobs/{uuid}/artifacts",
        "ingest",
        RunnerArtifacts,
        lambda rt: RunnerArtifacts(rt.command_context, rt.provisioners),
    ),
]
