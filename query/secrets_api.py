"""GET /api/secrets: the caller's CI job secrets (bearer token with the scope `secrets:read`,
or a full-access one), newest first, as summaries: id, name, type, path, mode, createdAt.
Neither a secret nor its ciphertext is ever answered."""

from __future__ import annotations

import asyncio

import falcon.asgi
import orjson

from state import identity_reads as q
from storage.relational import Relational
from web.auth import Authenticator


class SecretListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req, scope="secrets:read")
        secrets = await asyncio.to_thread(q.secrets_of, self._db, developer.name)
        resp.data = orjson.dumps({"secrets": [s.summary() for s in secrets]})
