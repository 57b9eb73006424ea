"""Reads of the publish tables (state/publish/projection.py writes them). Block: call from a
thread in async code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from base.client_errors import NotFound
from schemas.envelope import iso_micros
from storage.relational import Relational, Transaction

Reader = Relational | Transaction

_RUN_COLUMNS = (
    "id, developer, app, version, remote, branch, ssh_key_id, files, known_hosts, "
    "author_name, author_email, status, attempt, commit_sha, message, error, created_at, "
    "started_at, finished_at, options"
)


@dataclass(frozen=True, slots=True)
class Step:
    attempt: int
    name: str
    status: str
    started_at: int
    ended_at: int
    log: str

    def document(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "name": self.name,
            "status": self.status,
            "startedAt": iso_micros(self.started_at),
            "endedAt": iso_micros(self.ended_at),
            "log": self.log,
        }


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    developer: str
    app: str
    version: str
    remote: str
    branch: str
    ssh_key_id: str
    files: tuple[str, ...]
    known_hosts: str | None
    author_name: str
    author_email: str
    status: str
    attempt: int
    commit: str | None
    message: str | None
    error: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    options: dict[str, Any]
    """The generate options the run was asked with (schemas/publish/runs.py)."""

    def document(self, steps: list[Step]) -> dict[str, Any]:
        """GET /api/publish/status/{runId}'s answer (no key, no known hosts' text)."""
        return {
            "runId": self.id,
            "app": self.app,
            "version": self.version,
            "remote": self.remote,
            "branch": self.branch,
            "sshKeyId": self.ssh_key_id,
            "files": list(self.files),
            "status": self.status,
            "attempt": self.attempt,
            "commit": self.commit,
            "message": self.message,
            "error": self.error,
            "createdAt": iso_micros(self.created_at),
            "startedAt": None if self.started_at is None else iso_micros(self.started_at),
            "finishedAt": None if self.finished_at is None else iso_micros(self.finished_at),
            "steps": [s.document() for s in steps],
        }


def _run(row: tuple[Any, ...]) -> Run:
    values = list(row)
    values[7] = tuple(orjson.loads(values[7]))
    values[19] = orjson.loads(values[19] or "{}")
    return Run(*values)


def run_by_id(db: Reader, run_id: str) -> Run | None:
    row = db.fetchone(f"SELECT {_RUN_COLUMNS} FROM publish_runs WHERE id = :id", {"id": run_id})
    return None if row is None else _run(row)


def developers_run(db: Reader, developer: str, run_id: str) -> Run:
    """The run `run_id` if it is `developer`'s; a 404 otherwise, the same whether or not it
    exists."""
    run = run_by_id(db, run_id)
    if run is None or run.developer != developer:
        raise NotFound(f"no publish run {run_id!r} among yours", code="no_run")
    return run


def steps_of(db: Reader, run_id: str) -> list[Step]:
    rows = db.fetchall(
        "SELECT attempt, name, status, started_at, ended_at, log FROM publish_steps "
        "WHERE run_id = :id ORDER BY attempt, started_at, name",
        {"id": run_id},
    )
    return [Step(*row) for row in rows]


def unfinished_runs(db: Reader) -> list[str]:
    """Ids of the runs not ended (queued, running, retrying), oldest first."""
    rows = db.fetchall(
        "SELECT id FROM publish_runs WHERE status IN ('queued', 'running', 'retrying') "
        "ORDER BY created_at, id"
    )
    return [str(row[0]) for row in rows]


def active_runs(db: Reader, developer: str) -> int:
    row = db.fetchone(
        "SELECT COUNT(*) FROM publish_runs WHERE developer = :d "
        "AND status IN ('queued', 'running', 'retrying')",
        {"d": developer},
    )
    return 0 if row is None else int(row[0])


@dataclass(frozen=True, slots=True)
class KnownHosts:
    known_hosts: str
    fingerprints: tuple[str, ...]


def known_hosts_of(db: Reader, developer: str, host: str, port: int) -> KnownHosts | None:
    """The host keys trusted on first use for `developer`'s remote at host:port."""
    row = db.fetchone(
        "SELECT known_hosts, fingerprints FROM publish_known_hosts "
        "WHERE developer = :d AND host = :h AND port = :p",
        {"d": developer, "h": host, "p": port},
    )
    if row is None:
        return None
    return KnownHosts(str(row[0]), tuple(orjson.loads(row[1])))
