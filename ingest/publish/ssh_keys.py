"""Publishing SSH keys: a developer generates (Ed25519) or imports a private key that publish
runs push with (and `GET /api/branches` reads SSH remotes with), or deletes one.

The key is sealed (base/secret_box.py, the same keys and rotation as CI job secrets) before
its event is made, so the log and the relational store hold only ciphertext; no read answers
the private key, and no message or log line quotes it. The associated data binds a ciphertext
to its key's id, owner and fingerprint, so it opens as no other key. Each command runs under
its owner's command lock (state/command_context.py), re-checking the caller's token there.

`open_ssh_key` is how a publish run gets a key back: only the owner's live key opens; any
other id, like a missing or deleted one, is a 404.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from base.client_errors import PayloadTooLarge, Unprocessable
from ingest import sealed_commands as sealed
from ingest.publish import ssh_key_material as material
from schemas.publish.ssh_keys import (
    MAX_LABEL_CHARS,
    MAX_PRIVATE_KEY_BYTES,
    SshKeyAdded,
    SshKeyDeleted,
)
from state import ssh_keys as keys
from state.command_context import IDENTITY, CommandContext
from state.ssh_keys import SshKey, UnreadableKey, associated_data
from web.auth import Developer

MAX_KEYS = 50
"""Live SSH keys one developer may have."""
__all__ = ["SshKey", "UnreadableKey", "add_ssh_key", "delete_ssh_key", "open_ssh_key"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_label(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_LABEL_CHARS
        or _CONTROL.search(value)
    ):
        raise Unprocessable(
            f"label must be 1 to {MAX_LABEL_CHARS} characters without control characters",
            field="label",
        )
    return value


def _material(generate: object, private_key: object) -> material.KeyMaterial:
    if generate is not None and not isinstance(generate, bool):
        raise Unprocessable("generate must be true or false", field="generate")
    if generate and private_key is not None:
        raise Unprocessable(
            "send either generate: true or privateKey, not both", field="privateKey"
        )
    if generate:
        return material.generate()
    if private_key is None:
        raise Unprocessable(
            "send generate: true (a new Ed25519 key) or privateKey (an OpenSSH or PEM "
            "private key to import)",
            field="privateKey",
        )
    if isinstance(private_key, str) and len(private_key) > MAX_PRIVATE_KEY_BYTES:
        raise PayloadTooLarge(
            f"privateKey is over {MAX_PRIVATE_KEY_BYTES} characters, larger than any SSH key; "
            "nothing was stored",
            field="privateKey",
            code="too_large",
        )
    return material.import_key(private_key)


async def add_ssh_key(
    ctx: CommandContext,
    developer: Developer | str,
    label: object,
    generate: object = None,
    private_key: object = None,
) -> dict[str, Any]:
    """Generate or import, seal and record a key; answers its summary (the public key, never
    the private one)."""
    caller = sealed.caller_of(developer)
    owner = caller.name
    label = check_label(label)
    made = _material(generate, private_key)
    key_id = str(uuid.uuid4())
    bound = associated_data(key_id, owner, made.fingerprint)
    ciphertext, box_key = ctx.secret_box.seal(made.private_key.encode("ascii"), bound)
    added = SshKeyAdded(
        key_id, owner, label, made.key_type, made.fingerprint, made.public_key, ciphertext, box_key
    )
    stored = await sealed.add_sealed(
        ctx,
        caller,
        what="SSH key",
        limit=MAX_KEYS,
        live=keys.keys_of,
        event="ssh_key.added.v1",
        payload=added,
        stored=lambda db: keys.key_by_id(db, key_id),
    )
    return stored.summary()


async def delete_ssh_key(
    ctx: CommandContext, developer: Developer | str, key_id: str
) -> dict[str, Any]:
    """Delete one of the caller's keys; another's, like a missing one, is a 404."""
    caller = sealed.caller_of(developer)

    def owner_of(db: sealed.Reader) -> str | None:
        found = keys.key_by_id(db, key_id)
        return None if found is None else found.owner

    await sealed.delete_sealed(
        ctx,
        caller,
        what=f"SSH key {key_id!r}",
        owner_of=owner_of,
        event="ssh_key.deleted.v1",
        payload=SshKeyDeleted(key_id, caller.name),
        field="id",
    )
    return {"deleted": key_id}


async def open_ssh_key(ctx: CommandContext, developer: str, key_id: str) -> SshKey:
    """The developer's live key `key_id`, opened. NotFound (404) for a missing, deleted or
    another developer's key; UnreadableKey (422) when its secrets key is gone."""
    await ctx.catch_up(IDENTITY)
    return await asyncio.to_thread(keys.open_key, ctx.db, ctx.secret_box, developer, key_id)
