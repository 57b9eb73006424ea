"""builds.sr.ht's job writes, for a developer's token with the scope `jobs:write`:

    POST /api/jobs                {manifest, note?, tags?, access:read?, access:write?,
                                   execute?, secrets?}  -> 201 {"id": 7}
    POST /api/jobs/{id}/start     a pending job is queued -> {}
    POST /api/jobs/{id}/cancel    -> {}

Reads (GET /api/jobs, /api/jobs/{id}, its manifest and logs) are in query/jobs/.
"""

from __future__ import annotations

import falcon.asgi

from ingest.jobs import commands
from schemas.jobs.job_manifest import MAX_MANIFEST_BYTES
from state.command_context import CommandContext
from state.jobs import reads as q
from web.auth import Authenticator
from web.body import read_json_object, send_json

WRITE = "jobs:write"
MAX_BODY = MAX_MANIFEST_BYTES + 64 * 1024


class JobSubmission:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req, scope=WRITE)
        body = await read_json_object(req, MAX_BODY)
        number = await commands.submit(self._ctx, developer, body)
        send_json(resp, 201, {"id": number})


class JobStart:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        developer = await self._auth.developer(req, scope=WRITE)
        await commands.start(self._ctx, developer.name, q.job_number(id))
        send_json(resp, 200, {})


class JobCancel:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        developer = await self._auth.developer(req, scope=WRITE)
        await commands.cancel(self._ctx, developer.name, q.job_number(id))
        send_json(resp, 200, {})
