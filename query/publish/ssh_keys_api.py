"""GET /api/publish/ssh-keys: the caller's publishing SSH keys (a full-access bearer token,
or a browser session), newest first, as summaries: id, label, type, fingerprint, publicKey,
createdAt. Neither a private key nor its ciphertext is ever answered."""

from __future__ import annotations

import asyncio

import falcon.asgi

from state import ssh_keys as keys
from storage.relational import Relational
from web.auth import Authenticator
from web.body import send_json


class SshKeyListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        found = await asyncio.to_thread(keys.keys_of, self._db, developer.name)
        send_json(resp, 200, {"sshKeys": [k.summary() for k in found]})
