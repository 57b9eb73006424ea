"""Builds projection: the `builds` topic (and app icons from `apps`) -> the build tables.

Uploaded builds, their download counts per build and per UTC day, app icons, web-app builds
(state/web_builds.py) and builder workers. Events are facts checked by the commands that
appended them; applying is a pure function of the log, so a replay gives the same rows.

Download counting is where the 30-second debounce lives: a download counts unless the same
client's last counted download of the same build is less than 30 s away, by event time. A
client is its network address (an IPv6 client's /64), hashed at ingest: a client cannot
count again by changing its User-Agent, nor an IPv6 host by picking another address. All
downloads of an app share one partition key, so they are applied in one order everywhere,
whichever ingest process took them, and the same log always gives the same counts.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from schemas.build_events import (
    DOWNLOAD_DEBOUNCE_US,
    AppIconSet,
    BuildClaimed,
    BuildDownloaded,
    BuildRequeued,
    BuildStatusChanged,
    BuildUploaded,
    WebBuildCreated,
    WorkerCreated,
    WorkerRevoked,
)
from schemas.envelope import micros_to_datetime
from schemas.events import Topic
from state import web_builds
from storage.log import Record
from storage.relational import Transaction

log = logging.getLogger(__name__)

PRUNE_EVERY = 512
"""Every this many records (by offset), forget debounce entries older than PRUNE_AFTER_US."""
PRUNE_AFTER_US = 3600 * 1_000_000


class BuildsProjection:
    name = "builds"
    topics: tuple[Topic, ...] = ("builds", "apps")
    tables: tuple[str, ...] = (
        "app_builds",
        "app_build_downloads",
        "download_clients",
        "app_icons",
        "web_builds",
        "builder_workers",
    )

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        try:
            payload: dict[str, Any] = orjson.loads(envelope.payload)
            at = envelope.received_at
            match envelope.type:
                case "build.uploaded.v1":
                    build_uploaded(tx, BuildUploaded(**payload), at)
                case "build.downloaded.v1":
                    build_downloaded(tx, BuildDownloaded(**payload), at)
                    if record.offset % PRUNE_EVERY == 0:
                        prune_debounce(tx, at)
                case "app.icon_set.v1":
                    icon_set(tx, AppIconSet(**payload), at)
                case "build.created.v1":
                    payload["permissions"] = tuple(payload["permissions"])
                    web_builds.created(tx, WebBuildCreated(**payload), at)
                case "build.claimed.v1":
                    web_builds.claimed(tx, BuildClaimed(**payload), at)
                case "build.requeued.v1":
                    web_builds.requeued(tx, BuildRequeued(**payload))
                case "build.status_changed.v1":
                    web_builds.status_changed(tx, BuildStatusChanged(**payload), at)
                case "worker.created.v1":
                    worker_created(tx, WorkerCreated(**payload), at)
                case "worker.revoked.v1":
                    worker_revoked(tx, WorkerRevoked(**payload), at)
                case _:
                    pass  # identity events on `apps` belong to the identity projection
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            log.error(
                "skipping malformed builds record",
                extra={"offset": record.offset, "type": envelope.type, "error": str(exc)},
            )


def build_uploaded(tx: Transaction, e: BuildUploaded, at: int) -> None:
    tx.execute(
        "INSERT INTO app_builds (id, app, developer, version, file_name, object_key, os, "
        "architecture, format, size, sha256, content_type, etag, uploaded_at) VALUES (:id, "
        ":app, :developer, :version, :file_name, :object_key, :os, :architecture, :format, "
        ":size, :sha256, :content_type, :etag, :at) ON CONFLICT DO NOTHING",
        {
            "id": e.id,
            "app": e.app,
            "developer": e.developer,
            "version": e.version,
            "file_name": e.file_name,
            "object_key": e.object_key,
            "os": e.os,
            "architecture": e.architecture,
            "format": e.format,
            "size": e.size,
            "sha256": e.sha256,
            "content_type": e.content_type,
            "etag": e.etag,
            "at": at,
        },
    )


def counts(last_counted: int | None, at: int) -> bool:
    """Whether a download at `at` counts, given the client's last counted one."""
    return last_counted is None or abs(at - last_counted) >= DOWNLOAD_DEBOUNCE_US


def build_downloaded(tx: Transaction, e: BuildDownloaded, at: int) -> None:
    key = {"b": e.build_id, "c": e.client}
    row = tx.fetchone(
        "SELECT counted_at FROM download_clients WHERE build_id = :b AND client = :c", key
    )
    if not counts(None if row is None else int(row[0]), at):
        return
    if not tx.execute("UPDATE app_builds SET downloads = downloads + 1 WHERE id = :b", key):
        return  # no such build: nothing to count
    tx.execute(
        "INSERT INTO download_clients (build_id, client, counted_at) VALUES (:b, :c, :at) "
        "ON CONFLICT (build_id, client) DO UPDATE SET counted_at = :at",
        {**key, "at": at},
    )
    tx.execute(
        "INSERT INTO app_build_downloads (build_id, day, downloads) VALUES (:b, :day, 1) "
        "ON CONFLICT (build_id, day) DO UPDATE "
        "SET downloads = app_build_downloads.downloads + 1",
        {"b": e.build_id, "day": utc_day(at)},
    )


def prune_debounce(tx: Transaction, at: int) -> None:
    """Entries an hour old cannot decide anything any more (the window is 30 s)."""
    tx.execute(
        "DELETE FROM download_clients WHERE counted_at < :cutoff",
        {"cutoff": at - PRUNE_AFTER_US},
    )


def utc_day(micros: int) -> str:
    return micros_to_datetime(micros).date().isoformat()


def icon_set(tx: Transaction, e: AppIconSet, at: int) -> None:
    tx.execute(
        "INSERT INTO app_icons (app, object_key, content_type, updated_at) "
        "VALUES (:app, :key, :type, :at) ON CONFLICT (app) DO UPDATE "
        "SET object_key = :key, content_type = :type, updated_at = :at",
        {"app": e.app, "key": e.object_key, "type": e.content_type, "at": at},
    )


def worker_created(tx: Transaction, e: WorkerCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO builder_workers (id, name, token_hash, prefix, created_at) "
        "VALUES (:id, :name, :hash, :prefix, :at) ON CONFLICT DO NOTHING",
        {"id": e.id, "name": e.name, "hash": e.token_hash, "prefix": e.prefix, "at": at},
    )


def worker_revoked(tx: Transaction, e: WorkerRevoked, at: int) -> None:
    tx.execute(
        "UPDATE builder_workers SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
        {"id": e.id, "at": at},
    )
