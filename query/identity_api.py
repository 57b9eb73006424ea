"""Identity listings for an authenticated developer: GET /api/apps, GET /api/tokens,
and ANY /api/auth/status (public: says who the credentials name, if anyone: a bearer token,
else the session cookies, with the session's X-CSRF-Token, else an app secret)."""

from __future__ import annotations

import asyncio

import falcon.asgi
import orjson

from base.client_errors import HutchError
from schemas.envelope import iso_micros, now_micros
from state import identity_reads as q
from state.ssh_keys import source_repositories
from storage.relational import Relational
from web.auth import Authenticator
from web.cookies import SESSION_COOKIE


class AppListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        apps = await asyncio.to_thread(q.apps_of, self._db, developer.name)
        sources = await asyncio.to_thread(source_repositories, self._db, developer.name)
        resp.data = orjson.dumps(
            {
                "apps": [
                    {
                        "name": a.name,
                        "retentionDays": a.retention_days,
                        "sourceRepository": sources.get(a.name),
                        "createdAt": iso_micros(a.created_at),
                    }
                    for a in apps
                ]
            }
        )


class TokenListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        tokens = await asyncio.to_thread(q.tokens_of, self._db, developer.name)
        now = now_micros()
        resp.data = orjson.dumps(
            {
                "tokens": [
                    {
                        "id": t.id,
                        "name": t.name,
                        "prefix": t.prefix,
                        "createdAt": iso_micros(t.created_at),
                        "expiresAt": None if t.expires_at is None else iso_micros(t.expires_at),
                        "expired": t.expires_at is not None and t.expires_at <= now,
                        "scopes": None if t.scopes is None else list(t.scopes),
                    }
                    for t in tokens
                    if t.revoked_at is None
                ]
            }
        )


class AuthStatus:
    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    async def _answer(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: dict[str, object] = {"authenticated": False, "method": None}
        if req.get_header("Authorization"):
            try:
                developer = await self._auth.developer(req)
                body = {"authenticated": True, "method": "bearer", "developer": developer.name}
            except HutchError as exc:
                body["error"] = exc.code
        elif SESSION_COOKIE in req.cookies:
            try:  # a read whatever the method: no CSRF proof needed to ask
                developer = await self._auth.session(req)
                body = {
                    "authenticated": True,
                    "method": "session",
                    "developer": developer.name,
                    "csrfToken": self._auth.csrf_token(developer),
                }
            except HutchError as exc:
                body["error"] = exc.code
        elif secret := req.get_header("X-Secret") or req.get_param("secret"):
            try:
                app = await self._auth.app_for_secret(secret, None)
                body = {"authenticated": True, "method": "secret", "app": app.name}
            except HutchError as exc:
                body["error"] = exc.code
        resp.data = orjson.dumps(body)

    on_get = on_post = on_put = on_delete = on_patch = on_head = _answer
