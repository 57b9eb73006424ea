"""Payloads of the build events: uploaded app builds and their downloads (BuildHut
distribution), web-app builds and the builder workers that run them, and app icons.

Topics and keys (so one aggregate stays in order):
    builds  build.uploaded.v1, build.downloaded.v1            key: the app name
    builds  build.created.v1, build.claimed.v1,
            build.requeued.v1, build.status_changed.v1        key: the web-app build id
    builds  worker.created.v1, worker.revoked.v1              key: the worker id
    apps    app.icon_set.v1                                   key: the app name

Payloads are these dataclasses as JSON; a new field must have a default, so older records
still decode. Times are the envelope's `received_at`, except leases, which are decided by the
command that appends the event and carried in it, so applying stays a pure function of the log.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from schemas.builds import BuildPlatform, BuildStatus

DOWNLOAD_DEBOUNCE_US = 30_000_000
"""A client's repeated download of one build within 30 s of its last counted one is not
counted again (judged by event times, in log order, by the projection). A client is its
address, whatever it says its User-Agent is (ingest/downloads.py `client_id`)."""


@dataclass(frozen=True, slots=True)
class BuildUploaded:
    id: str
    app: str
    developer: str
    version: str
    file_name: str
    object_key: str
    os: str
    architecture: str
    format: str
    size: int
    sha256: str
    content_type: str
    etag: str | None = None
    """The object store's tag for the version hashed (ObjectInfo.etag): downloads check the
    object still has it, or still hashes to `sha256`. None in records older than it."""


@dataclass(frozen=True, slots=True)
class BuildDownloaded:
    build_id: str
    app: str
    client: str
    """A keyed hash of the client's network address (an IPv6 client's /64): stable, but not
    reversible. Records written before 2026-12 hashed the User-Agent in as well."""


@dataclass(frozen=True, slots=True)
class AppIconSet:
    app: str
    object_key: str
    content_type: str


@dataclass(frozen=True, slots=True)
class WebBuildCreated:
    """build.created.v1: a web app to package, queued for a builder worker."""

    id: str
    developer: str
    url: str
    name: str
    bundle_id: str
    version: str
    permissions: tuple[str, ...]
    platform: BuildPlatform


@dataclass(frozen=True, slots=True)
class BuildClaimed:
    id: str
    claim_id: str
    worker: str
    attempt: int
    lease_until: int
    """Microseconds: past this, without a report from the worker, the build may be claimed
    again (and is requeued first)."""


@dataclass(frozen=True, slots=True)
class BuildRequeued:
    id: str
    claim_id: str
    """The lapsed claim."""
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class BuildStatusChanged:
    """A worker's report (building renews the lease), or the queue failing a build."""

    id: str
    claim_id: str | None
    status: BuildStatus
    lease_until: int | None = None
    error: str | None = None
    artifact_key: str | None = None
    artifact_size: int | None = None
    artifact_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerCreated:
    id: str
    name: str
    token_hash: str
    prefix: str


@dataclass(frozen=True, slots=True)
class WorkerRevoked:
    id: str


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)
