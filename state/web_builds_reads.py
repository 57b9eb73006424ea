"""Reads of the web-app build queue and the builder workers (state/web_builds.py)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from schemas.builds import BuildPlatform, BuildStatus
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row

Reader = Relational | Transaction


@dataclass(frozen=True, slots=True)
class WebBuild:
    id: str
    developer: str
    url: str
    name: str
    bundle_id: str
    version: str
    permissions: tuple[str, ...]
    platform: BuildPlatform
    status: BuildStatus
    created_at: int
    started_at: int | None
    completed_at: int | None
    error: str | None
    attempt: int
    claim_id: str | None
    worker: str | None
    lease_until: int | None
    artifact_key: str | None
    artifact_size: int | None
    artifact_sha256: str | None

    def lapsed(self, now: int) -> bool:
        """Claimed, but its worker has not reported within the lease."""
        return (
            self.status == "building" and self.lease_until is not None and self.lease_until <= now
        )

    def visible_status(self, now: int) -> BuildStatus:
        """What clients see: a build whose worker went silent is waiting in the queue again
        (it is requeued, as an event, when the next worker claims it)."""
        return "queued" if self.lapsed(now) else self.status


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    name: str
    revoked_at: int | None


_BUILD = (
    "SELECT id, developer, url, name, bundle_id, version, permissions, platform, status, "
    "created_at, started_at, completed_at, error, attempt, claim_id, worker, lease_until, "
    "artifact_key, artifact_size, artifact_sha256 FROM web_builds"
)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _build(row: Row) -> WebBuild:
    return WebBuild(
        id=str(row[0]),
        developer=str(row[1]),
        url=str(row[2]),
        name=str(row[3]),
        bundle_id=str(row[4]),
        version=str(row[5]),
        permissions=tuple(orjson.loads(row[6])),
        platform=row[7],
        status=row[8],
        created_at=int(row[9]),
        started_at=_opt_int(row[10]),
        completed_at=_opt_int(row[11]),
        error=_opt_str(row[12]),
        attempt=int(row[13]),
        claim_id=_opt_str(row[14]),
        worker=_opt_str(row[15]),
        lease_until=_opt_int(row[16]),
        artifact_key=_opt_str(row[17]),
        artifact_size=_opt_int(row[18]),
        artifact_sha256=_opt_str(row[19]),
    )


def web_build(db: Reader, build_id: str) -> WebBuild | None:
    row = db.fetchone(f"{_BUILD} WHERE id = :i", {"i": build_id})
    return None if row is None else _build(row)


def web_builds_of(
    db: Reader, developer: str, limit: int, offset: int
) -> tuple[int, list[WebBuild]]:
    """(total, one page of the developer's builds, newest first)."""
    total = db.fetchone("SELECT COUNT(*) FROM web_builds WHERE developer = :d", {"d": developer})
    rows = db.fetchall(
        f"{_BUILD} WHERE developer = :d ORDER BY created_at DESC, id DESC "
        "LIMIT :limit OFFSET :offset",
        {"d": developer, "limit": limit, "offset": offset},
    )
    return (0 if total is None else int(total[0])), [_build(r) for r in rows]


def versions_in_use(db: Reader, developer: str, bundle_id: str, platform: str) -> list[str]:
    """Versions of the developer's builds of `bundle_id` for `platform` that did not fail."""
    rows = db.fetchall(
        "SELECT version FROM web_builds WHERE developer = :d AND bundle_id = :b "
        "AND platform = :p AND status <> 'failed'",
        {"d": developer, "b": bundle_id, "p": platform},
    )
    return [str(r[0]) for r in rows]


def claimable(db: Reader, platform: str, now: int, limit: int) -> list[WebBuild]:
    """Queued builds and builds whose lease lapsed, oldest first."""
    rows = db.fetchall(
        f"{_BUILD} WHERE platform = :p AND (status = 'queued' OR "
        "(status = 'building' AND lease_until <= :now)) ORDER BY created_at, id LIMIT :limit",
        {"p": platform, "now": now, "limit": limit},
    )
    return [_build(r) for r in rows]


def worker_by_hash(db: Reader, token_hash: str) -> Worker | None:
    row = db.fetchone(
        "SELECT id, name, revoked_at FROM builder_workers WHERE token_hash = :h",
        {"h": token_hash},
    )
    return None if row is None else Worker(str(row[0]), str(row[1]), _opt_int(row[2]))


def worker_by_id(db: Reader, worker_id: str) -> Worker | None:
    row = db.fetchone(
        "SELECT id, name, revoked_at FROM builder_workers WHERE id = :i", {"i": worker_id}
    )
    return None if row is None else Worker(str(row[0]), str(row[1]), _opt_int(row[2]))
