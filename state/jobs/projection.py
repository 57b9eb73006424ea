"""Jobs projection: the `jobs` topic -> jobs, their tasks, artifacts and trigger deliveries,
and the provisioners that run them (docs/jobs.md).

The commands in ingest/jobs/ decide every transition under the command lock; here they are
only recorded. Log lines (`job.log.v1`) only count here (`log_lines`): their text goes to
ClickHouse (projections/job_logs.py).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from schemas.events import Topic
from schemas.jobs.events import (
    SETUP,
    JobArtifactAdded,
    JobCancelRequested,
    JobLeased,
    JobLeaseRenewed,
    JobLog,
    JobRequeued,
    JobStarted,
    JobStatusChanged,
    JobSubmitted,
    JobTaskStatusChanged,
    JobTriggerDelivered,
    LogLine,
    ProvisionerCreated,
    ProvisionerRevoked,
)
from storage.log import Record
from storage.relational import Transaction

log = logging.getLogger(__name__)


class JobsProjection:
    name = "jobs"
    topics: tuple[Topic, ...] = ("jobs",)
    tables: tuple[str, ...] = (
        "job_trigger_deliveries",
        "job_artifacts",
        "job_tasks",
        "jobs",
        "tenant_job_counts",
        "provisioners",
    )

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        try:
            payload = orjson.loads(envelope.payload)
            at = envelope.received_at
            match envelope.type:
                case "job.submitted.v1":
                    submitted(tx, _submitted(payload), at)
                case "job.started.v1":
                    started(tx, JobStarted(**payload), at)
                case "job.leased.v1":
                    leased(tx, JobLeased(**payload), at)
                case "job.lease_renewed.v1":
                    renewed(tx, JobLeaseRenewed(**payload))
                case "job.requeued.v1":
                    requeued(tx, JobRequeued(**payload), at)
                case "job.status_changed.v1":
                    status_changed(tx, JobStatusChanged(**payload), at)
                case "job.task_status_changed.v1":
                    task_status_changed(tx, JobTaskStatusChanged(**payload), at)
                case "job.cancel_requested.v1":
                    cancel_requested(tx, JobCancelRequested(**payload))
                case "job.log.v1":
                    logged(tx, job_log(payload))
                case "job.artifact_added.v1":
                    artifact_added(tx, JobArtifactAdded(**payload), at)
                case "job.trigger_delivered.v1":
                    delivered(tx, JobTriggerDelivered(**payload), at)
                case "provisioner.created.v1":
                    provisioner_created(tx, ProvisionerCreated(**payload), at)
                case "provisioner.revoked.v1":
                    provisioner_revoked(tx, ProvisionerRevoked(**payload), at)
                case _:
                    pass
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.error(
                "skipping malformed jobs record",
                extra={"offset": record.offset, "type": envelope.type, "error": str(exc)},
            )


_LISTS = frozenset({"tasks", "tags", "read_access", "write_access", "triggers"})


def _submitted(payload: dict[str, Any]) -> JobSubmitted:
    fields: dict[str, Any] = {k: tuple(v) if k in _LISTS else v for k, v in payload.items()}
    return JobSubmitted(**fields)


def job_log(payload: dict[str, Any]) -> JobLog:
    lines = tuple(LogLine(**line) for line in payload.get("lines", ()))
    return JobLog(**{**payload, "lines": lines})


def _json(values: tuple[object, ...]) -> str:
    return orjson.dumps(list(values)).decode()


def submitted(tx: Transaction, e: JobSubmitted, at: int) -> None:
    status = "queued" if e.execute else "pending"
    inserted = tx.execute(
        "INSERT INTO jobs (uuid, number, tenant_id, owner, status, manifest, image, note, tags, "
        "read_access, write_access, execute, use_secrets, vcpus, cpu_architecture, timeout_s, "
        "triggers, created_at, queued_at, attempt, cancel_requested, log_lines) VALUES (:uuid, "
        ":number, :tenant, :owner, :status, :manifest, :image, :note, :tags, :read, :write, "
        ":execute, :secrets, :vcpus, :arch, :timeout, :triggers, :at, :queued, 0, 0, 0) "
        "ON CONFLICT (uuid) DO NOTHING",
        {
            "uuid": e.uuid,
            "number": e.number,
            "tenant": e.tenant_id,
            "owner": e.owner,
            "status": status,
            "manifest": e.manifest,
            "image": e.image,
            "note": e.note,
            "tags": _json(e.tags),
            "read": _json(e.read_access),
            "write": _json(e.write_access),
            "execute": int(e.execute),
            "secrets": int(e.secrets),
            "vcpus": e.vcpus,
            "arch": e.cpu_architecture,
            "timeout": e.timeout_s,
            "triggers": _json(e.triggers),
            "at": at,
            "queued": at if e.execute else None,
        },
    )
    if inserted:
        tx.execute(
            "INSERT INTO tenant_job_counts (tenant_id, jobs) VALUES (:tenant, 1) "
            "ON CONFLICT (tenant_id) DO UPDATE SET jobs = tenant_job_counts.jobs + 1",
            {"tenant": e.tenant_id},
        )
    for position, name in enumerate((SETUP, *e.tasks)):
        tx.execute(
            "INSERT INTO job_tasks (job_uuid, position, name, status) "
            "VALUES (:uuid, :position, :name, 'pending') ON CONFLICT DO NOTHING",
            {"uuid": e.uuid, "position": position, "name": name},
        )


def started(tx: Transaction, e: JobStarted, at: int) -> None:
    tx.execute(
        "UPDATE jobs SET status = 'queued', queued_at = :at WHERE uuid = :uuid "
        "AND status = 'pending'",
        {"uuid": e.uuid, "at": at},
    )


def leased(tx: Transaction, e: JobLeased, at: int) -> None:
    tx.execute(
        "UPDATE jobs SET status = 'running', lease_id = :lease, provisioner = :provisioner, "
        "host = :host, lease_until = :until, attempt = :attempt, "
        "started_at = COALESCE(started_at, :at) WHERE uuid = :uuid AND status = 'queued'",
        {
            "uuid": e.uuid,
            "lease": e.lease_id,
            "provisioner": e.provisioner,
            "host": e.host,
            "until": e.lease_until,
            "attempt": e.attempt,
            "at": at,
        },
    )


def renewed(tx: Transaction, e: JobLeaseRenewed) -> None:
    tx.execute(
        "UPDATE jobs SET lease_until = :until WHERE uuid = :uuid AND lease_id = :lease",
        {"uuid": e.uuid, "lease": e.lease_id, "until": e.lease_until},
    )


def requeued(tx: Transaction, e: JobRequeued, at: int) -> None:
    tx.execute(
        "UPDATE jobs SET status = 'queued', queued_at = :at, lease_id = NULL, "
        "lease_until = NULL WHERE uuid = :uuid AND lease_id = :lease",
        {"uuid": e.uuid, "lease": e.lease_id, "at": at},
    )
    tx.execute(
        "UPDATE job_tasks SET status = 'pending', started_at = NULL, finished_at = NULL "
        "WHERE job_uuid = :uuid",
        {"uuid": e.uuid},
    )


def status_changed(tx: Transaction, e: JobStatusChanged, at: int) -> None:
    tx.execute(
        "UPDATE jobs SET status = :status, finished_at = :at, lease_until = NULL "
        "WHERE uuid = :uuid",
        {"uuid": e.uuid, "status": e.status, "at": at},
    )
    tx.execute(
        "UPDATE job_tasks SET status = 'skipped', finished_at = :at "
        "WHERE job_uuid = :uuid AND status = 'pending'",
        {"uuid": e.uuid, "at": at},
    )
    tx.execute(
        "UPDATE job_tasks SET status = 'failed', finished_at = :at "
        "WHERE job_uuid = :uuid AND status = 'running'",
        {"uuid": e.uuid, "at": at},
    )


def task_status_changed(tx: Transaction, e: JobTaskStatusChanged, at: int) -> None:
    moment = "started_at" if e.status == "running" else "finished_at"
    tx.execute(
        f"UPDATE job_tasks SET status = :status, {moment} = :at "
        "WHERE job_uuid = :uuid AND name = :task",
        {"uuid": e.uuid, "task": e.task, "status": e.status, "at": at},
    )


def cancel_requested(tx: Transaction, e: JobCancelRequested) -> None:
    tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE uuid = :uuid", {"uuid": e.uuid})


def logged(tx: Transaction, e: JobLog) -> None:
    tx.execute(
        "UPDATE jobs SET log_lines = :next WHERE uuid = :uuid AND log_lines < :next",
        {"uuid": e.uuid, "next": e.first + len(e.lines)},
    )


def artifact_added(tx: Transaction, e: JobArtifactAdded, at: int) -> None:
    tx.execute(
        "INSERT INTO job_artifacts (job_uuid, path, object_key, size, sha256, created_at) "
        "VALUES (:uuid, :path, :key, :size, :sha256, :at) ON CONFLICT DO NOTHING",
        {
            "uuid": e.uuid,
            "path": e.path,
            "key": e.object_key,
            "size": e.size,
            "sha256": e.sha256,
            "at": at,
        },
    )


def delivered(tx: Transaction, e: JobTriggerDelivered, at: int) -> None:
    tx.execute(
        "INSERT INTO job_trigger_deliveries (job_uuid, action, target, attempt, ok, detail, at) "
        "VALUES (:uuid, :action, :target, :attempt, :ok, :detail, :at) ON CONFLICT DO NOTHING",
        {
            "uuid": e.uuid,
            "action": e.action,
            "target": e.target,
            "attempt": e.attempt,
            "ok": int(e.ok),
            "detail": e.detail,
            "at": at,
        },
    )


def provisioner_created(tx: Transaction, e: ProvisionerCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO provisioners (id, name, token_hash, created_at) "
        "VALUES (:id, :name, :hash, :at) ON CONFLICT (id) DO NOTHING",
        {"id": e.id, "name": e.name, "hash": e.token_hash, "at": at},
    )


def provisioner_revoked(tx: Transaction, e: ProvisionerRevoked, at: int) -> None:
    tx.execute(
        "UPDATE provisioners SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
        {"id": e.id, "at": at},
    )
