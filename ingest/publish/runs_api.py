"""POST /api/publish/publish: request a publish run (a full-access token or a session).

    {"app", "version"?, "remote": "ssh://user@host[:port]/path.git" | "user@host:path.git",
     "sshKeyId", "branch"? ("master"), "knownHosts"?, "files"? (["PKGBUILD", ".SRCINFO"])}
    -> 202 {"runId", "status": "queued", "statusUrl"}

What can be checked at once is (ingest/publish/runs.py): a field of the wrong JSON type is a
400 naming it, a value that cannot be used a 422, another developer's app, build or SSH key a
403/404; the run itself goes on in the background: poll `statusUrl`.
"""

from __future__ import annotations

import falcon.asgi

from ingest.publish.runs import request_run
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import read_json_object, send_json

MAX_BODY_BYTES = 64 * 1024


class PublishRuns:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req, MAX_BODY_BYTES)
        send_json(resp, 202, await request_run(self._ctx, developer, body))
