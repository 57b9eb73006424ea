"""The web-app build service's writes:

    POST /api/v1/builds                       developer token: queue a build
    POST /api/v1/worker/claim                 worker token: {platform} -> a build, or 204
    POST /api/v1/worker/builds/{id}/status    worker token: {claimId, status[, error]}

Reads (GET /api/v1/builds, GET /api/v1/builds/{id}) are in query/web_builds_api.py.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from ingest import web_build_commands as commands
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import read_json_object, send_json
from web.worker_auth import WorkerAuth


class BuildCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req)
        send_json(resp, 201, await commands.create_build(self._ctx, developer.name, body))


class WorkerClaim:
    def __init__(self, ctx: CommandContext, workers: WorkerAuth) -> None:
        self._ctx = ctx
        self._workers = workers

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        worker = await self._workers.worker(req)
        body = await read_json_object(req)
        claimed = await commands.claim(self._ctx, worker, body.get("platform"))
        if claimed is None:
            resp.status = falcon.HTTP_204
            return
        send_json(resp, 200, claimed)


class WorkerReport:
    def __init__(self, ctx: CommandContext, workers: WorkerAuth) -> None:
        self._ctx = ctx
        self._workers = workers

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, build_id: str
    ) -> None:
        worker = await self._workers.worker(req)
        body = await read_json_object(req)
        send_json(resp, 200, await commands.report(self._ctx, worker, build_id, body))
