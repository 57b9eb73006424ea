"""Flag definitions for the developer who owns the app (bearer token):
GET /api/apps/{app}/flags and GET /api/apps/{app}/flags/{name}. Writes are in
ingest/flags/api.py; both show a flag as {"flag": <definition>, "createdAt", "updatedAt",
"updatedBy"}, and the definition can be PUT back unchanged."""

from __future__ import annotations

import asyncio

import falcon.asgi
import orjson

from base.client_errors import NotFound
from state.flags import reads as fq
from storage.relational import Relational
from web.auth import Authenticator


class FlagListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        developer = await self._auth.developer(req)
        await self._auth.owned_app(developer.name, app)
        flags = await asyncio.to_thread(fq.flags_of, self._db, app)
        resp.data = orjson.dumps({"app": app, "flags": [fq.flag_json(f) for f in flags]})


class FlagLookup:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str, name: str
    ) -> None:
        developer = await self._auth.developer(req)
        await self._auth.owned_app(developer.name, app)
        stored = await asyncio.to_thread(fq.flag_named, self._db, app, name)
        if stored is None:
            raise NotFound(f"app {app!r} has no flag named {name!r}", field="name")
        resp.data = orjson.dumps(fq.flag_json(stored))
