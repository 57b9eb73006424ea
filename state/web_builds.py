"""Web-app builds in the builds projection: queue, claims with leases, requeues, results.

    build.created.v1         -> queued
    build.claimed.v1         -> building, held by one claim until its lease runs out
    build.status_changed.v1  -> building (lease renewed), success or failed
    build.requeued.v1        -> queued again: the claim lapsed and a new claim took over

The commands in ingest/web_build_commands.py decide every transition under the command lock;
here they are only recorded.
"""

from __future__ import annotations

import orjson

from schemas.build_events import BuildClaimed, BuildRequeued, BuildStatusChanged, WebBuildCreated
from storage.relational import Transaction


def created(tx: Transaction, e: WebBuildCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO web_builds (id, developer, url, name, bundle_id, version, permissions, "
        "platform, status, created_at) VALUES (:id, :developer, :url, :name, :bundle_id, "
        ":version, :permissions, :platform, 'queued', :at) ON CONFLICT DO NOTHING",
        {
            "id": e.id,
            "developer": e.developer,
            "url": e.url,
            "name": e.name,
            "bundle_id": e.bundle_id,
            "version": e.version,
            "permissions": orjson.dumps(list(e.permissions)).decode(),
            "platform": e.platform,
            "at": at,
        },
    )


def claimed(tx: Transaction, e: BuildClaimed, at: int) -> None:
    tx.execute(
        "UPDATE web_builds SET status = 'building', claim_id = :claim, worker = :worker, "
        "attempt = :attempt, lease_until = :lease, started_at = COALESCE(started_at, :at) "
        "WHERE id = :id",
        {
            "id": e.id,
            "claim": e.claim_id,
            "worker": e.worker,
            "attempt": e.attempt,
            "lease": e.lease_until,
            "at": at,
        },
    )


def requeued(tx: Transaction, e: BuildRequeued) -> None:
    tx.execute(
        "UPDATE web_builds SET status = 'queued', claim_id = NULL, worker = NULL, "
        "lease_until = NULL WHERE id = :id AND claim_id = :claim",
        {"id": e.id, "claim": e.claim_id},
    )


def status_changed(tx: Transaction, e: BuildStatusChanged, at: int) -> None:
    if e.status == "building":
        tx.execute(
            "UPDATE web_builds SET lease_until = :lease WHERE id = :id",
            {"id": e.id, "lease": e.lease_until},
        )
        return
    tx.execute(
        "UPDATE web_builds SET status = :status, completed_at = :at, error = :error, "
        "lease_until = NULL, artifact_key = :key, artifact_size = :size, "
        "artifact_sha256 = :sha WHERE id = :id",
        {
            "id": e.id,
            "status": e.status,
            "at": at,
            "error": e.error,
            "key": e.artifact_key,
            "size": e.artifact_size,
            "sha": e.artifact_sha256,
        },
    )
