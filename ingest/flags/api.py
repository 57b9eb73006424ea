"""Flag definitions over HTTP for the developer who owns the app (bearer token):
PUT and DELETE /api/apps/{app}/flags/{name}. Reads are in query/flags/api.py."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ingest.flags import commands
from state.command_context import CommandContext
from state.flags.cache import FlagCache
from web.auth import Authenticator
from web.body import read_json

MAX_BODY = 1024 * 1024


class FlagCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator, cache: FlagCache) -> None:
        self._ctx = ctx
        self._auth = auth
        self._cache = cache

    async def on_put(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str, name: str
    ) -> None:
        developer = await self._auth.developer(req)
        body = await read_json(req, MAX_BODY)
        created, result = await commands.set_flag(self._ctx, developer.name, app, name, body)
        self._cache.forget(app)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str, name: str
    ) -> None:
        developer = await self._auth.developer(req)
        result = await commands.delete_flag(self._ctx, developer.name, app, name)
        self._cache.forget(app)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result)
