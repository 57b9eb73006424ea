"""Topics and event types. A type names its family and carries its version (`.v1`)."""

from __future__ import annotations

from typing import Literal, get_args

Topic = Literal[
    "telemetry",
    "otlp.traces",
    "otlp.metrics",
    "otlp.logs",
    "flags",
    "builds",
    "jobs",
    "apps",
]
"""`apps` carries the identity aggregates: developers, their apps, API tokens, tenants and
secrets; `jobs` the CI jobs and the provisioners that run them."""

EventType = Literal[
    "telemetry.event.v1",
    "otlp.traces.v1",
    "otlp.metrics.v1",
    "otlp.logs.v1",
    "flag.defined.v1",
    "flag.deleted.v1",
    "flag.evaluations.v1",
    "developer.created.v1",
    "app.created.v1",
    "app.retention_set.v1",
    "token.created.v1",
    "token.revoked.v1",
    "build.created.v1",
    "build.uploaded.v1",
    "build.downloaded.v1",
    "build.claimed.v1",
    "build.status_changed.v1",
    "job.created.v1",
    "job.status_changed.v1",
    "build.requeued.v1",
    "app.icon_set.v1",
    "worker.created.v1",
    "worker.revoked.v1",
    "app.secret_rotated.v1",
    "app.previous_secrets_revoked.v1",
    "tenant.created.v1",
    "tenant.member_added.v1",
    "job.submitted.v1",
    "job.started.v1",
    "job.leased.v1",
    "job.lease_renewed.v1",
    "job.requeued.v1",
    "job.task_status_changed.v1",
    "job.cancel_requested.v1",
    "job.log.v1",
    "job.artifact_added.v1",
    "job.trigger_delivered.v1",
    "provisioner.created.v1",
    "provisioner.revoked.v1",
    "secret.added.v1",
    "secret.deleted.v1",
]

TOPICS: tuple[Topic, ...] = get_args(Topic)
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

TOPIC_OF: dict[EventType, Topic] = {
    "telemetry.event.v1": "telemetry",
    "otlp.traces.v1": "otlp.traces",
    "otlp.metrics.v1": "otlp.metrics",
    "otlp.logs.v1": "otlp.logs",
    "flag.defined.v1": "flags",
    "flag.deleted.v1": "flags",
    "flag.evaluations.v1": "flags",
    "developer.created.v1": "apps",
    "app.created.v1": "apps",
    "app.retention_set.v1": "apps",
    "token.created.v1": "apps",
    "token.revoked.v1": "apps",
    "build.created.v1": "builds",
    "build.uploaded.v1": "builds",
    "build.downloaded.v1": "builds",
    "build.claimed.v1": "builds",
    "build.status_changed.v1": "builds",
    "job.created.v1": "jobs",
    "job.status_changed.v1": "jobs",
    "build.requeued.v1": "builds",
    "app.icon_set.v1": "apps",
    "worker.created.v1": "builds",
    "worker.revoked.v1": "builds",
    "app.secret_rotated.v1": "apps",
    "app.previous_secrets_revoked.v1": "apps",
    "tenant.created.v1": "apps",
    "tenant.member_added.v1": "apps",
    "job.submitted.v1": "jobs",
    "job.started.v1": "jobs",
    "job.leased.v1": "jobs",
    "job.lease_renewed.v1": "jobs",
    "job.requeued.v1": "jobs",
    "job.task_status_changed.v1": "jobs",
    "job.cancel_requested.v1": "jobs",
    "job.log.v1": "jobs",
    "job.artifact_added.v1": "jobs",
    "job.trigger_delivered.v1": "jobs",
    "provisioner.created.v1": "jobs",
    "provisioner.revoked.v1": "jobs",
    "secret.added.v1": "apps",
    "secret.deleted.v1": "apps",
}

TelemetryKind = Literal["error", "warning", "info", "trace", "debug"]
TELEMETRY_KINDS: tuple[TelemetryKind, ...] = get_args(TelemetryKind)
