"""Identity commands over HTTP for an authenticated developer (the portal's needs):
POST /api/apps, PATCH /api/apps/{app}, POST /api/apps/{app}/secret (rotate),
DELETE /api/apps/{app}/secret/previous, POST /api/tokens, DELETE /api/tokens/{token_id}.

A body field of the wrong JSON type (a number where a string belongs, null, an object...) is
a 400 naming the field; a well-typed value the command cannot accept is a 422 (the command's
own check). Each resource passes the caller's `Developer`, token included, so the command can
re-check the token against the store; one that revokes or replaces a credential then drops
this process's cached copy of it.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from base.client_errors import BadRequest
from ingest import identity_commands as commands
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import read_json_object, send_json

_STRING = "a string"
_INTEGER = "an integer"
_STRINGS = "a list of strings"


def typed(body: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """The body's values for `fields` (name -> "a string" | "an integer"), those absent
    left out; 400 for a present one of another JSON type (null included: leave the field
    out for its default)."""
    found: dict[str, Any] = {}
    for name, kind in fields.items():
        if name not in body:
            continue
        value = body[name]
        if kind == _STRING:
            fits = isinstance(value, str)
        elif kind == _STRINGS:
            fits = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:  # JSON has no integer type of its own: true and 1.0 are not integers here
            fits = isinstance(value, int) and not isinstance(value, bool)
        if not fits:
            raise BadRequest(f"{name} must be {kind}", field=name, code="bad_type")
        found[name] = value
    return found


async def _optional_object(req: falcon.asgi.Request) -> dict[str, Any]:
    """The JSON object body, or {} for a request without a body."""
    if req.content_length == 0 or (
        req.content_length is None and req.get_header("Transfer-Encoding") is None
    ):
        return {}
    return await read_json_object(req)


class AppCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = typed(await read_json_object(req), {"name": _STRING, "retentionDays": _INTEGER})
        result = await commands.create_app(
            self._ctx, body.get("name"), developer, body.get("retentionDays")
        )
        send_json(resp, 201, result)


class TokenCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        fields = {"name": _STRING, "expires": _STRING, "scopes": _STRINGS}
        body = typed(await read_json_object(req), fields)
        result = await commands.create_token(
            self._ctx, developer, body.get("name"), body.get("expires", "never"), body.get("scopes")
        )
        send_json(resp, 201, result)


class TokenRevocation:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, token_id: str
    ) -> None:
        developer = await self._auth.developer(req)
        result = await commands.revoke_token(self._ctx, developer, token_id)
        self._auth.forget_token(token_id)
        send_json(resp, 200, result)


class AppSettings:
    """PATCH /api/apps/{app}: the owner changes the app's settings: `retentionDays`, and
    `sourceRepository` (a git URL: https://, ssh:// or scp-like; null removes it). Both are
    checked before either is changed."""

    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str
    ) -> None:
        developer = await self._auth.developer(req)
        raw = await read_json_object(req)
        body = typed(raw, {"retentionDays": _INTEGER})
        source = raw.get("sourceRepository")
        if source is not None and not isinstance(source, str):
            raise BadRequest(
                "sourceRepository must be a string (a git URL) or null",
                field="sourceRepository",
                code="bad_type",
            )
        result: dict[str, Any] = {"app": app}
        if "sourceRepository" not in raw or "retentionDays" in raw:
            commands.check_source_repository(self._ctx, source)  # refuse before any change
            result |= await commands.set_retention(
                self._ctx, developer, app, body.get("retentionDays")
            )
        if "sourceRepository" in raw:
            result |= await commands.set_source_repository(self._ctx, developer, app, source)
        send_json(resp, 200, result)


class AppSecret:
    """POST /api/apps/{app}/secret: the owner rotates the app's secret. The new secret is in
    this answer only; `{"graceSeconds": N}` (default 0) keeps the earlier ones working N
    seconds more. A POST, not a PUT: each call makes a different secret."""

    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        developer = await self._auth.developer(req)
        body = typed(await _optional_object(req), {"graceSeconds": _INTEGER})
        result = await commands.rotate_secret(
            self._ctx, developer, app, body.get("graceSeconds", 0)
        )
        self._auth.forget_secrets(app)
        send_json(resp, 201, result)


class PreviousSecrets:
    """DELETE /api/apps/{app}/secret/previous: end the grace period of the app's earlier
    secrets now (after a rotation with grace, once every client has the new one)."""

    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str
    ) -> None:
        developer = await self._auth.developer(req)
        result = await commands.revoke_previous_secrets(self._ctx, developer, app)
        self._auth.forget_secrets(app)
        send_json(resp, 200, result)
