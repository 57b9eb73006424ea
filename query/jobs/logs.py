"""A CI job's logs, as builds.sr.ht serves them: text, one line per line, in order.

    GET /api/jobs/{id}/log                the setup log (`setup_log`)
    GET /api/jobs/{id}/tasks/{name}/log   a task's log

Lines come from job_logs (projections/job_logs.py), one per line number: a batch the runner
sent twice shows once (`LIMIT 1 BY Seq`, whether or not the engine has merged the copies
away). Access is the job's, as for `GET /api/jobs/{id}` (query/jobs/api.py): a job the caller
may not read is a 404; a public job (`*`) needs no credential; a token needs `jobs:read`.

To follow a running job: `?since=<n>` answers only the lines numbered n and after (lines are
numbered across the whole job, setup and tasks together), and every answer's
`Hutch-Log-Next` header is the `since` to ask with next. An answer holds at most MAX_LINES
lines; `Hutch-Log-Truncated: true` says more are there.
"""

from __future__ import annotations

import asyncio

import falcon.asgi

from base.client_errors import BadRequest, NotFound
from query.jobs.api import readable_job
from schemas.jobs.events import SETUP
from state.jobs import reads as q
from storage.analytics import Analytics
from storage.relational import Relational
from web.auth import Authenticator

MAX_LINES = 100_000
"""Lines in one answer (about 10 MB of typical build output); the rest by `since`."""
NEXT = "Hutch-Log-Next"
TRUNCATED = "Hutch-Log-Truncated"
UINT64_MAX = (1 << 64) - 1

_LINES = """
SELECT Seq, Line
FROM job_logs
WHERE Tenant = {tenant:String} AND JobUuid = {job:String} AND Task = {task:String}
  AND Seq >= {since:UInt64}
ORDER BY Seq
LIMIT 1 BY Seq
LIMIT {limit:UInt32}
"""


def since(req: falcon.asgi.Request) -> int:
    raw = req.get_param("since")
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()) or int(raw) > UINT64_MAX:
        raise BadRequest(
            f"since must be a line number (0 or more), got {raw!r}", field="since", code="bad_since"
        )
    return int(raw)


class JobLogText:
    """The log of one step of a job; `on_get` with a task name for tasks, without for setup."""

    def __init__(self, analytics: Analytics, db: Relational, auth: Authenticator) -> None:
        self._analytics = analytics
        self._db = db
        self._auth = auth

    async def readable(self, req: falcon.asgi.Request, id: str) -> q.Job:
        return await readable_job(self._auth, self._db, req, id)

    async def answer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, job: q.Job, task: str
    ) -> None:
        first = since(req)
        bound = {
            "tenant": job.tenant_id,
            "job": job.uuid,
            "task": task,
            "since": first,
            "limit": MAX_LINES + 1,
        }
        rows = (await asyncio.to_thread(self._analytics.query, _LINES, bound)).rows
        shown = rows[:MAX_LINES]
        resp.content_type = "text/plain; charset=utf-8"
        resp.set_header(NEXT, str(int(shown[-1][0]) + 1 if shown else first))
        if len(rows) > MAX_LINES:
            resp.set_header(TRUNCATED, "true")
        resp.data = "".join(f"{row[1]}\n" for row in shown).encode()


class JobSetupLog(JobLogText):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        job = await self.readable(req, id)
        await self.answer(req, resp, job, SETUP)


class JobTaskLog(JobLogText):
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str, name: str
    ) -> None:
        job = await self.readable(req, id)
        tasks = await asyncio.to_thread(q.tasks_of, self._db, job.uuid)
        if name == SETUP or name not in {t.name for t in tasks}:
            raise NotFound(f"job {job.number} has no task {name!r}", field="name", code="no_task")
        await self.answer(req, resp, job, name)
