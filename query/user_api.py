"""GET /api/user (Builtiful's current user): who the session or bearer token names, with
the GitHub profile they signed in with (null fields for a developer made at the CLI)."""

from __future__ import annotations

import asyncio

import falcon.asgi

from state import identity_reads as q
from state import people_reads as people
from storage.relational import Relational
from web.auth import Authenticator
from web.body import send_json


class CurrentUser:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        caller = await self._auth.developer(req)
        account = await asyncio.to_thread(people.account_of, self._db, caller.name)
        tenant = await asyncio.to_thread(q.personal_tenant, self._db, caller.name)
        user = {
            "developer": caller.name,
            "github_id": None if account is None else account.github_id,
            "login": None if account is None else account.login,
            "name": None if account is None else account.name,
            "email": None if account is None else account.email,
            "avatar_url": None if account is None else account.avatar_url,
            "personal_tenant_id": None if tenant is None else tenant.id,
        }
        send_json(resp, 200, {"user": user})
