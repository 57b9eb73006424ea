"""Identity commands over HTTP for an authenticated developer (the portal's needs):
POST /api/apps, POST /api/tokens, DELETE /api/tokens/{token_id}."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ingest import identity_commands as commands
from ingest.auth import Authenticator
from ingest.body import read_json_object, send_json


class AppCommands:
    def __init__(self, ctx: commands.Context, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req)
        result = await commands.create_app(
            self._ctx, body.get("name"), developer.name, body.get("retentionDays")
        )
        send_json(resp, 201, result)


class TokenCommands:
    def __init__(self, ctx: commands.Context, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req)
        result = await commands.create_token(
            self._ctx, developer.name, body.get("name"), body.get("expires", "never")
        )
        send_json(resp, 201, result)


class TokenRevocation:
    def __init__(self, ctx: commands.Context, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, token_id: str
    ) -> None:
        developer = await self._auth.developer(req)
        result = await commands.revoke_token(self._ctx, developer.name, token_id)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result)


class AppSettings:
    """PATCH /api/apps/{app}: the owner changes the app's settings (`retentionDays`)."""

    def __init__(self, ctx: commands.Context, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str
    ) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req)
        result = await commands.set_retention(
            self._ctx, developer.name, app, body.get("retentionDays")
        )
        send_json(resp, 200, result)
