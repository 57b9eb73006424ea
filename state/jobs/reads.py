"""Reads of the jobs tables (state/jobs/projection.py writes them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from base.client_errors import NotFound
from schemas.envelope import iso_micros
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row


def readable_job(db: Relational, number: int, caller: str | None) -> Job:
    """The job numbered `number` if `caller` (None: no credential) may read it: its access
    list allows them, or they are a member of the job's tenant (an organisation's members read
    the jobs its pushes made). A 404 otherwise, the same whether or not it exists. Blocks:
    call from a thread."""
    job = job_by_number(db, number)
    if job is None or not (job.readable_by(caller) or _member(db, job.tenant_id, caller)):
        raise NotFound(f"no job {number} that you can see", code="no_job")
    return job


def _member(db: Reader, tenant_id: str, developer: str | None) -> bool:
    if developer is None:
        return False
    row = db.fetchone(
        "SELECT 1 FROM tenant_members WHERE tenant_id = :t AND developer = :d",
        {"t": tenant_id, "d": developer},
    )
    return row is not None


def job_number(text: str) -> int:
    """A job id in a path: the small integer builds.sr.ht uses (404 for anything else)."""
    # isascii: "²" is a digit to str.isdigit but not to int()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(f"no job {text!r}", code="no_job")
    return int(text)


Reader = Relational | Transaction
EVERYONE = "*"


@dataclass(frozen=True, slots=True)
class Job:
    uuid: str
    number: int
    tenant_id: str
    owner: str
    status: str
    image: str
    note: str | None
    tags: tuple[str, ...]
    read_access: tuple[str, ...]
    write_access: tuple[str, ...]
    execute: bool
    use_secrets: bool
    vcpus: int
    cpu_architecture: str
    timeout_s: int
    triggers: tuple[dict[str, Any], ...]
    created_at: int
    queued_at: int | None
    started_at: int | None
    finished_at: int | None
    lease_id: str | None
    provisioner: str | None
    host: str | None
    lease_until: int | None
    attempt: int
    cancel_requested: bool
    log_lines: int

    def readable_by(self, developer: str | None) -> bool:
        """builds.sr.ht's access:read: the owner, the names listed, or everyone with `*`."""
        return EVERYONE in self.read_access or (
            developer is not None and (developer == self.owner or developer in self.read_access)
        )

    def writable_by(self, developer: str) -> bool:
        return developer == self.owner or developer in self.write_access


_JOB = (
    "SELECT uuid, number, tenant_id, owner, status, image, note, tags, read_access, "
    "write_access, execute, use_secrets, vcpus, cpu_architecture, timeout_s, triggers, "
    "created_at, queued_at, started_at, finished_at, lease_id, provisioner, host, lease_until, "
    "attempt, cancel_requested, log_lines FROM jobs"
)


def _opt(value: object) -> int | None:
    return None if value is None else int(str(value))


def _job(row: Row) -> Job:
    return Job(
        uuid=str(row[0]),
        number=int(row[1]),
        tenant_id=str(row[2]),
        owner=str(row[3]),
        status=str(row[4]),
        image=str(row[5]),
        note=None if row[6] is None else str(row[6]),
        tags=tuple(orjson.loads(str(row[7]))),
        read_access=tuple(orjson.loads(str(row[8]))),
        write_access=tuple(orjson.loads(str(row[9]))),
        execute=bool(row[10]),
        use_secrets=bool(row[11]),
        vcpus=int(row[12]),
        cpu_architecture=str(row[13]),
        timeout_s=int(row[14]),
        triggers=tuple(orjson.loads(str(row[15]))),
        created_at=int(row[16]),
        queued_at=_opt(row[17]),
        started_at=_opt(row[18]),
        finished_at=_opt(row[19]),
        lease_id=None if row[20] is None else str(row[20]),
        provisioner=None if row[21] is None else str(row[21]),
        host=None if row[22] is None else str(row[22]),
        lease_until=_opt(row[23]),
        attempt=int(row[24]),
        cancel_requested=bool(row[25]),
        log_lines=int(row[26]),
    )


def job_by_number(db: Reader, number: int) -> Job | None:
    row = db.fetchone(f"{_JOB} WHERE number = :n", {"n": number})
    return None if row is None else _job(row)


def job_by_uuid(db: Reader, uuid: str) -> Job | None:
    row = db.fetchone(f"{_JOB} WHERE uuid = :u", {"u": uuid})
    return None if row is None else _job(row)


def manifest_of(db: Reader, uuid: str) -> str | None:
    row = db.fetchone("SELECT manifest FROM jobs WHERE uuid = :u", {"u": uuid})
    return None if row is None else str(row[0])


def manifests_of(db: Reader, uuids: list[str]) -> dict[str, str]:
    """Job uuid -> manifest text, for these jobs (one read)."""
    if not uuids:
        return {}
    names = {f"u{i}": uuid for i, uuid in enumerate(uuids)}
    rows = db.fetchall(
        f"SELECT uuid, manifest FROM jobs WHERE uuid IN ({', '.join(':' + n for n in names)})",
        names,
    )
    return {str(r[0]): str(r[1]) for r in rows}


def last_number(db: Reader) -> int:
    row = db.fetchone("SELECT MAX(number) FROM jobs", {})
    return 0 if row is None or row[0] is None else int(row[0])


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    status: str
    started_at: int | None
    finished_at: int | None


def tasks_of(db: Reader, uuid: str) -> list[Task]:
    rows = db.fetchall(
        "SELECT name, status, started_at, finished_at FROM job_tasks WHERE job_uuid = :u "
        "ORDER BY position",
        {"u": uuid},
    )
    return [Task(str(r[0]), str(r[1]), _opt(r[2]), _opt(r[3])) for r in rows]


def tasks_of_jobs(db: Reader, uuids: list[str]) -> dict[str, list[Task]]:
    """The tasks of each of these jobs, in order: a page's in one read."""
    found: dict[str, list[Task]] = {uuid: [] for uuid in uuids}
    if not uuids:
        return found
    names = {f"u{i}": uuid for i, uuid in enumerate(uuids)}
    rows = db.fetchall(
        "SELECT job_uuid, name, status, started_at, finished_at FROM job_tasks "
        f"WHERE job_uuid IN ({', '.join(':' + n for n in names)}) ORDER BY job_uuid, position",
        names,
    )
    for r in rows:
        found[str(r[0])].append(Task(str(r[1]), str(r[2]), _opt(r[3]), _opt(r[4])))
    return found


@dataclass(frozen=True, slots=True)
class TenantPage:
    jobs: list[Job]
    tasks: dict[str, list[Task]]
    total_count: int


def tenant_page(
    db: Reader, tenant_id: str, starting_after: str | None, ending_before: str | None, limit: int
) -> TenantPage:
    """A page of the tenant's jobs with their tasks and the tenant's job count."""
    jobs = jobs_of_tenant(db, tenant_id, starting_after, ending_before, limit)
    tasks = tasks_of_jobs(db, [job.uuid for job in jobs])
    return TenantPage(jobs, tasks, tenant_job_count(db, tenant_id))


@dataclass(frozen=True, slots=True)
class Artifact:
    path: str
    object_key: str
    size: int
    sha256: str
    created_at: int


def artifacts_of(db: Reader, uuid: str) -> list[Artifact]:
    rows = db.fetchall(
        "SELECT path, object_key, size, sha256, created_at FROM job_artifacts "
        "WHERE job_uuid = :u ORDER BY path",
        {"u": uuid},
    )
    return [Artifact(str(r[0]), str(r[1]), int(r[2]), str(r[3]), int(r[4])) for r in rows]


def jobs_of_owner(db: Reader, owner: str, before: int | None, limit: int) -> list[Job]:
    """The owner's jobs, newest first, numbered below `before` when given."""
    rows = db.fetchall(
        f"{_JOB} WHERE owner = :o AND number < :before ORDER BY number DESC LIMIT :limit",
        {"o": owner, "before": before if before is not None else 2**62, "limit": limit},
    )
    return [_job(r) for r in rows]


def jobs_of_tenant(
    db: Reader, tenant_id: str, starting_after: str | None, ending_before: str | None, limit: int
) -> list[Job]:
    """A tenant's jobs, newest first (UUIDv7 order is creation order). `starting_after`: the
    page after that job (older ones); `ending_before`: the page before it (newer ones)."""
    if ending_before is not None:
        rows = db.fetchall(
            f"{_JOB} WHERE tenant_id = :t AND uuid > :c ORDER BY uuid ASC LIMIT :limit",
            {"t": tenant_id, "c": ending_before, "limit": limit},
        )
        return [_job(r) for r in reversed(rows)]
    bound = starting_after if starting_after is not None else "~"
    rows = db.fetchall(
        f"{_JOB} WHERE tenant_id = :t AND uuid < :c ORDER BY uuid DESC LIMIT :limit",
        {"t": tenant_id, "c": bound, "limit": limit},
    )
    return [_job(r) for r in rows]


def tenant_job_count(db: Reader, tenant_id: str) -> int:
    row = db.fetchone("SELECT jobs FROM tenant_job_counts WHERE tenant_id = :t", {"t": tenant_id})
    return 0 if row is None else int(row[0])


def queued(db: Reader, architecture: str, vcpus: int, limit: int) -> list[Job]:
    """Queued jobs a host of `architecture` with `vcpus` free can run, oldest first."""
    rows = db.fetchall(
        f"{_JOB} WHERE status = 'queued' AND cpu_architecture = :a AND vcpus <= :v "
        "ORDER BY number LIMIT :limit",
        {"a": architecture, "v": vcpus, "limit": limit},
    )
    return [_job(r) for r in rows]


def lapsed(db: Reader, now: int, limit: int) -> list[Job]:
    """Running jobs whose lease ran out: their host went silent."""
    rows = db.fetchall(
        f"{_JOB} WHERE status = 'running' AND lease_until < :now ORDER BY number LIMIT :limit",
        {"now": now, "limit": limit},
    )
    return [_job(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Provisioner:
    id: str
    name: str
    revoked_at: int | None


def provisioner_by_hash(db: Reader, token_hash: str) -> Provisioner | None:
    row = db.fetchone(
        "SELECT id, name, revoked_at FROM provisioners WHERE token_hash = :h", {"h": token_hash}
    )
    return None if row is None else Provisioner(str(row[0]), str(row[1]), _opt(row[2]))


def provisioner_by_id(db: Reader, provisioner_id: str) -> Provisioner | None:
    row = db.fetchone(
        "SELECT id, name, revoked_at FROM provisioners WHERE id = :i", {"i": provisioner_id}
    )
    return None if row is None else Provisioner(str(row[0]), str(row[1]), _opt(row[2]))


def deliveries_of(db: Reader, uuid: str) -> list[dict[str, Any]]:
    rows = db.fetchall(
        "SELECT action, target, attempt, ok, detail, at FROM job_trigger_deliveries "
        "WHERE job_uuid = :u ORDER BY at, action, target, attempt",
        {"u": uuid},
    )
    return [
        {
            "action": str(r[0]),
            "target": str(r[1]),
            "attempt": int(r[2]),
            "ok": bool(r[3]),
            "detail": str(r[4]),
            "at": iso_micros(int(r[5])),
        }
        for r in rows
    ]
