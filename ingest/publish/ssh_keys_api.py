"""Publishing SSH keys over HTTP (a full-access bearer token, or a browser session):

    POST   /api/publish/ssh-keys       {"label", "generate": true}        a new Ed25519 key
                                       {"label", "privateKey": "<text>"}  import (OpenSSH/PEM)
                                       -> 201 the key's summary: id, label, type, fingerprint,
                                          publicKey, createdAt (never the private key)
    DELETE /api/publish/ssh-keys/{id}  -> {"deleted": id}; another developer's key is a 404

A field of the wrong JSON type is a 400 naming it; a key Hutch does not take (a passphrase,
DSA, short RSA, a public key, not a key) is a 422 saying why, quoting nothing of it.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from base.client_errors import BadRequest
from ingest.publish import ssh_keys as commands
from schemas.publish.ssh_keys import MAX_LABEL_CHARS, MAX_PRIVATE_KEY_BYTES
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import read_json_object, send_json

MAX_BODY_BYTES = 2 * MAX_PRIVATE_KEY_BYTES + 4 * MAX_LABEL_CHARS + 1024
"""The key (JSON escapes its line breaks) and the label, with room for the rest."""
_TYPES: dict[str, tuple[type, str]] = {
    "label": (str, "a string"),
    "generate": (bool, "true or false"),
    "privateKey": (str, "a string: the private key's text"),
}


class SshKeyCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = _typed(await read_json_object(req, MAX_BODY_BYTES))
        result = await commands.add_ssh_key(
            self._ctx, developer, body.get("label"), body.get("generate"), body.get("privateKey")
        )
        send_json(resp, 201, result)


class SshKeyDeletion:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key_id: str
    ) -> None:
        developer = await self._auth.developer(req)
        send_json(resp, 200, await commands.delete_ssh_key(self._ctx, developer, key_id))


def _typed(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in body.items():
        if name not in _TYPES:
            raise BadRequest(
                f"unexpected field {name!r}: send label and generate or privateKey",
                field=name,
                code="unknown_field",
            )
        kind, described = _TYPES[name]
        if value is None and name != "label":
            continue
        if not isinstance(value, kind):
            raise BadRequest(f"{name} must be {described}", field=name, code="bad_type")
        found[name] = value
    return found
