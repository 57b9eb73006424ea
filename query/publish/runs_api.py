"""GET /api/publish/status/{runId}: a publish run (ingest/publish/runs_worker.py runs it) with
its status, attempt, commit, error and every step's log, for its developer only (a full-access
token or a session); another developer's run, like a missing one, is a 404."""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.asgi
import orjson

from state.publish import reads
from storage.relational import Relational
from web.auth import Authenticator

MAX_RUN_ID_CHARS = 64


class PublishStatus:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, run_id: str
    ) -> None:
        developer = await self._auth.developer(req)
        resp.data = orjson.dumps(await asyncio.to_thread(self._read, developer.name, run_id))

    def _read(self, developer: str, run_id: str) -> dict[str, Any]:
        if len(run_id) > MAX_RUN_ID_CHARS:
            run_id = run_id[:MAX_RUN_ID_CHARS]  # no such id either way: the 404 below
        run = reads.developers_run(self._db, developer, run_id)
        return run.document(reads.steps_of(self._db, run.id))
