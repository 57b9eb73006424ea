"""Publish projection: the `publish` topic -> publish runs, their steps, and the host keys
trusted on first use (schemas/relational/0011_publish_runs.sql).

The request command (ingest/publish/runs.py) and the consumer that runs them
(ingest/publish/runs_worker.py) decide every transition; here they are only recorded.
"""

from __future__ import annotations

import logging

import orjson

from schemas.events import Topic
from schemas.publish.runs import (
    PublishAttemptStarted,
    PublishFinished,
    PublishHostKeyStored,
    PublishRequested,
    PublishRetrying,
    PublishStep,
)
from storage.log import Record
from storage.relational import Transaction

log = logging.getLogger(__name__)


class PublishProjection:
    name = "publish"
    topics: tuple[Topic, ...] = ("publish",)
    tables: tuple[str, ...] = ("publish_steps", "publish_runs", "publish_known_hosts")

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        try:
            payload = orjson.loads(envelope.payload)
            at = envelope.received_at
            match envelope.type:
                case "publish.requested.v1":
                    payload["files"] = tuple(payload["files"])
                    requested(tx, PublishRequested(**payload), at)
                case "publish.attempt_started.v1":
                    attempt_started(tx, PublishAttemptStarted(**payload), at)
                case "publish.step.v1":
                    step(tx, PublishStep(**payload))
                case "publish.retrying.v1":
                    retrying(tx, PublishRetrying(**payload))
                case "publish.host_key_stored.v1":
                    payload["fingerprints"] = tuple(payload["fingerprints"])
                    host_key_stored(tx, PublishHostKeyStored(**payload), at)
                case "publish.finished.v1":
                    finished(tx, PublishFinished(**payload), at)
                case _:
                    pass
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            log.error(
                "skipping malformed publish record",
                extra={"offset": record.offset, "type": envelope.type, "error": str(exc)},
            )


def requested(tx: Transaction, e: PublishRequested, at: int) -> None:
    tx.execute(
        "INSERT INTO publish_runs (id, developer, app, version, remote, branch, ssh_key_id, "
        "files, known_hosts, author_name, author_email, options, status, attempt, created_at) "
        "VALUES (:id, :developer, :app, :version, :remote, :branch, :key, :files, "
        ":known_hosts, :author_name, :author_email, :options, 'queued', 0, :at) "
        "ON CONFLICT (id) DO NOTHING",
        {
            "id": e.run_id,
            "developer": e.developer,
            "app": e.app,
            "version": e.version,
            "remote": e.remote,
            "branch": e.branch,
            "key": e.ssh_key_id,
            "files": orjson.dumps(list(e.files)).decode(),
            "known_hosts": e.known_hosts,
            "author_name": e.author_name,
            "author_email": e.author_email,
            "options": orjson.dumps(e.options).decode(),
            "at": at,
        },
    )


def attempt_started(tx: Transaction, e: PublishAttemptStarted, at: int) -> None:
    tx.execute(
        "UPDATE publish_runs SET status = 'running', attempt = :attempt, "
        "started_at = COALESCE(started_at, :at) WHERE id = :id "
        "AND status NOT IN ('succeeded', 'failed')",
        {"id": e.run_id, "attempt": e.attempt, "at": at},
    )


def step(tx: Transaction, e: PublishStep) -> None:
    tx.execute(
        "INSERT INTO publish_steps (run_id, attempt, name, status, started_at, ended_at, log) "
        "VALUES (:id, :attempt, :name, :status, :started, :ended, :log) "
        "ON CONFLICT (run_id, attempt, name) DO UPDATE SET status = excluded.status, "
        "started_at = excluded.started_at, ended_at = excluded.ended_at, log = excluded.log",
        {
            "id": e.run_id,
            "attempt": e.attempt,
            "name": e.name,
            "status": e.status,
            "started": e.started_at,
            "ended": e.ended_at,
            "log": e.log,
        },
    )


def retrying(tx: Transaction, e: PublishRetrying) -> None:
    tx.execute(
        "UPDATE publish_runs SET status = 'retrying', error = :error WHERE id = :id "
        "AND status NOT IN ('succeeded', 'failed')",
        {"id": e.run_id, "error": e.error},
    )


def host_key_stored(tx: Transaction, e: PublishHostKeyStored, at: int) -> None:
    tx.execute(
        "INSERT INTO publish_known_hosts (developer, host, port, known_hosts, fingerprints, "
        "stored_at) VALUES (:developer, :host, :port, :known_hosts, :fingerprints, :at) "
        "ON CONFLICT (developer, host, port) DO NOTHING",
        {
            "developer": e.developer,
            "host": e.host,
            "port": e.port,
            "known_hosts": e.known_hosts,
            "fingerprints": orjson.dumps(list(e.fingerprints)).decode(),
            "at": at,
        },
    )


def finished(tx: Transaction, e: PublishFinished, at: int) -> None:
    tx.execute(
        "UPDATE publish_runs SET status = :status, commit_sha = :commit, message = :message, "
        "error = :error, finished_at = :at WHERE id = :id "
        "AND status NOT IN ('succeeded', 'failed')",
        {
            "id": e.run_id,
            "status": e.status,
            "commit": e.commit,
            "message": e.message,
            "error": e.error,
            "at": at,
        },
    )
