"""CI job reads (docs/jobs.md):

    GET /api/jobs/{id}             builds.sr.ht's job: {id, uuid, status, setup_log, note,
                                   tags, runner, owner, tasks: [{name, status, log}], ...}
    GET /api/jobs/{id}/manifest    the original manifest, text/plain
    GET /api/jobs                  the caller's jobs, newest first (?cursor=)
    GET /api/tenants/{tenant_id}/jobs   Builtiful: ?limit=&starting_after=|ending_before=,
                                   {"jobs": [...], "total_count": N}

A job is readable as its `access:read` says: by everyone with `*` (no credential needed), or
by the names listed; a job the caller may not read is a 404. With a credential, the token
needs the scope `jobs:read`.
"""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from typing import Any

import falcon
import falcon.asgi
import orjson

from base.client_errors import BadRequest
from schemas.envelope import iso_micros
from state import identity_reads as qi
from state.jobs import reads as q
from state.jobs.document import job_fields
from storage.objects import ObjectStore
from storage.relational import Relational
from web.auth import Authenticator
from web.query_string import decode_cursor, encode_cursor, limit

READ = "jobs:read"
ARTIFACT_DAYS = 90
ARTIFACT_URL_S = 3600


async def readable_job(
    auth: Authenticator, db: Relational, req: falcon.asgi.Request, id: str
) -> q.Job:
    """The job numbered `id` if the caller may read it (a token needs `jobs:read`; a public
    job needs no credential); a 404 otherwise, the same whether or not it exists."""
    viewer = await auth.viewer(req, READ)
    caller = None if viewer is None else viewer.name
    return await asyncio.to_thread(q.readable_job, db, q.job_number(id), caller)


class JobReads:
    def __init__(self, db: Relational, objects: ObjectStore, auth: Authenticator, public_url: str):
        self._db = db
        self._objects = objects
        self._auth = auth
        self._public = public_url.rstrip("/")

    async def _readable(self, req: falcon.asgi.Request, id: str) -> q.Job:
        return await readable_job(self._auth, self._db, req, id)

    async def summary(
        self, job: q.Job, *, full: bool, tasks: list[q.Task] | None = None
    ) -> dict[str, Any]:
        """The job as builds.sr.ht shows it; `tasks` when a page's were read together."""
        if tasks is None:
            tasks = await asyncio.to_thread(q.tasks_of, self._db, job.uuid)
        found = job_fields(job, tasks, self._public)
        if full:
            found["access:read"] = list(job.read_access)
            found["access:write"] = list(job.write_access)
            found["execute"] = job.execute
            found["secrets"] = job.use_secrets
            found["artifacts"] = await self._artifacts(job)
        return found

    async def _artifacts(self, job: q.Job) -> list[dict[str, Any]]:
        """Each artifact with a download URL, or none once it is ARTIFACT_DAYS old."""
        now = time.time_ns() // 1000
        found = []
        for artifact in await asyncio.to_thread(q.artifacts_of, self._db, job.uuid):
            name = artifact.path.rsplit("/", 1)[-1]
            fresh = now - artifact.created_at <= ARTIFACT_DAYS * 86_400_000_000
            url = None
            if fresh:
                url = self._objects.presign_get(
                    artifact.object_key, ARTIFACT_URL_S, filename=name, sha256=artifact.sha256
                )
            found.append(
                {
                    "name": name,
                    "path": artifact.path,
                    "size": artifact.size,
                    "sha256": artifact.sha256,
                    "created": iso_micros(artifact.created_at),
                    "url": url,
                }
            )
        return found


class JobLookup(JobReads):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        job = await self._readable(req, id)
        resp.data = orjson.dumps(await self.summary(job, full=True))


class JobManifest(JobReads):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        job = await self._readable(req, id)
        text = await asyncio.to_thread(q.manifest_of, self._db, job.uuid)
        resp.content_type = "text/plain; charset=utf-8"
        resp.text = text or ""


class JobListing(JobReads):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req, READ)
        size = limit(req, 20, 100)
        position = decode_cursor(req, (int,))
        before = None if position is None else int(position[0])
        jobs = await asyncio.to_thread(q.jobs_of_owner, self._db, developer.name, before, size + 1)
        page = jobs[:size]
        following = None
        if len(jobs) > size:
            following = encode_cursor([page[-1].number])
        tasks = await asyncio.to_thread(q.tasks_of_jobs, self._db, [job.uuid for job in page])
        results = [await self.summary(job, full=False, tasks=tasks[job.uuid]) for job in page]
        resp.data = orjson.dumps({"results": results, "next": following})


def _uuid_param(req: falcon.asgi.Request, name: str) -> str | None:
    text = req.get_param(name)
    if text is None:
        return None
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise BadRequest(f"{name} must be a job's UUID", field=name, code="bad_cursor") from None


class TenantJobs(JobReads):
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tenant_id: str
    ) -> None:
        developer = await self._auth.developer(req, READ)
        await asyncio.to_thread(qi.member_tenant, self._db, tenant_id, developer.name)
        size = limit(req, 10, 100)
        after = _uuid_param(req, "starting_after")
        before = _uuid_param(req, "ending_before")
        if after is not None and before is not None:
            raise BadRequest(
                "starting_after and ending_before exclude each other: give one",
                field="starting_after",
                code="bad_cursor",
            )
        page = await asyncio.to_thread(q.tenant_page, self._db, tenant_id, after, before, size)
        jobs = [await self.summary(j, full=False, tasks=page.tasks[j.uuid]) for j in page.jobs]
        body = {"jobs": jobs, "total_count": page.total_count}
        resp.data = orjson.dumps(body)
