"""GET /api/jobs/{id}/deliveries: every attempt at the job's triggers (ingest/job_triggers.py),
oldest first, as `{"deliveries": [{action, target, attempt, ok, detail, at}]}`.

Readable as the job is (query/jobs/api.py): by everyone for a public job, else by the names its
`access:read` lists, with a token holding `jobs:read`; anyone else gets the job's 404. A target
is what the manifest says (a webhook's URL, an e-mail's `to`), which the job's readers can read
in its manifest already.
"""

from __future__ import annotations

import asyncio

import falcon.asgi
import orjson

from query.jobs.api import JobReads
from state.jobs.reads import deliveries_of


class JobDeliveries(JobReads):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        job = await self._readable(req, id)
        deliveries = await asyncio.to_thread(deliveries_of, self._db, job.uuid)
        resp.data = orjson.dumps({"deliveries": deliveries})
