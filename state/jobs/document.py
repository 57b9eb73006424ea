"""A job as builds.sr.ht's API and webhooks show it, in one shape for both: `GET /api/jobs/:id`
answers it (with the access lists and artifacts added), and a webhook trigger POSTs it when the
job ends (man.sr.ht/builds.sr.ht/triggers.md).

Logs are links to the API under the public URL (`HUTCH_PUBLIC_URL`); `runner` is the host that
ran the job (null until one took it); the implicit `setup` step is not among `tasks`: its log
is `setup_log`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.envelope import iso_micros
from schemas.jobs.events import SETUP
from state.jobs.reads import Job, Reader, Task, tasks_of


def job_url(public_url: str, number: int) -> str:
    return f"{public_url.rstrip('/')}/api/jobs/{number}"


def log_url(public_url: str, number: int, task: str) -> str:
    url = job_url(public_url, number)
    return f"{url}/log" if task == SETUP else f"{url}/tasks/{task}/log"


def job_fields(job: Job, tasks: Iterable[Task], public_url: str) -> dict[str, Any]:
    """The job with these tasks (its own, read together with others' for a page)."""
    return {
        "id": job.number,
        "uuid": job.uuid,
        "status": job.status,
        "setup_log": log_url(public_url, job.number, SETUP),
        "note": job.note,
        "tags": list(job.tags),
        "runner": job.host,
        "owner": job.owner,
        "tenant_id": job.tenant_id,
        "image": job.image,
        "created": iso_micros(job.created_at),
        "updated": iso_micros(job.finished_at or job.started_at or job.created_at),
        "tasks": [
            {"name": t.name, "status": t.status, "log": log_url(public_url, job.number, t.name)}
            for t in tasks
            if t.name != SETUP
        ],
    }


def job_document(db: Reader, job: Job, public_url: str) -> dict[str, Any]:
    return job_fields(job, tasks_of(db, job.uuid), public_url)
