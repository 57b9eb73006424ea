"""Secret commands: a developer adds a secret (a file, an SSH key or a PGP key) that CI jobs
whose manifests name its id receive, or deletes one; the dequeue opens the secrets a job names.

A secret is sealed (base/secret_box.py) before its event is made: the log and the relational
store hold only the ciphertext and its key id, and no read answers either. The associated
data binds a ciphertext to its secret's id, owner, kind, path and mode, so it opens as no
other secret. Each command runs under its owner's command lock (state/command_context.py),
re-checking the caller's token there. The CLI and the HTTP resources call the same functions.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from base.client_errors import PayloadTooLarge, Unprocessable
from base.secret_box import SecretBox, SecretBoxError
from ingest import sealed_commands as sealed
from schemas.secrets import MAX_SECRET_BYTES, SECRET_KINDS, SecretAdded, SecretDeleted, SecretKind
from state import identity_reads as q
from state.command_context import CommandContext
from storage.relational import Relational
from web.auth import Developer

MAX_SECRETS = 100
"""Live secrets one developer may have."""
MAX_NAME_CHARS = 128
MAX_PATH_CHARS = 255
MAX_MODE = 0o777
DEFAULT_MODE: dict[SecretKind, int] = {"file": 0o644, "ssh_key": 0o600, "pgp_key": 0o600}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OCTAL = re.compile(r"^(0o|0)?[0-7]{1,4}$")


def associated_data(secret_id: str, owner: str, kind: str, path: str | None, mode: int) -> bytes:
    return orjson.dumps(["hutch:secret:v1", secret_id, owner, kind, path, mode])


def check_name(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_NAME_CHARS
        or _CONTROL.search(value)
    ):
        raise Unprocessable(
            f"name must be 1 to {MAX_NAME_CHARS} characters without control characters",
            field="name",
        )
    return value


def check_kind(value: object) -> SecretKind:
    for kind in SECRET_KINDS:
        if value == kind:
            return kind
    raise Unprocessable(f"type must be one of {', '.join(SECRET_KINDS)}", field="type")


def check_path(kind: SecretKind, value: object) -> str | None:
    """Where a file secret goes in the job's home, as `~/relative/path`; keys take none."""
    if kind != "file":
        if value is not None:
            raise Unprocessable(
                f"path is only for file secrets; a {kind} is installed where its tool looks",
                field="path",
            )
        return None
    if not isinstance(value, str) or not value:
        raise Unprocessable(
            "a file secret needs a path in the job's home, e.g. ~/.netrc", field="path"
        )
    relative = value[2:] if value.startswith("~/") else value
    parts = relative.split("/")
    if (
        len(value) > MAX_PATH_CHARS
        or relative.startswith(("/", "~"))
        or _CONTROL.search(relative)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise Unprocessable(
            f"path must be a file under the job's home (~/dir/file or dir/file, at most "
            f"{MAX_PATH_CHARS} characters), with no '..', '.' or empty parts; got {value!r}",
            field="path",
        )
    return "~/" + relative


def check_mode(kind: SecretKind, value: object) -> int:
    """The file mode: an integer, or octal digits as text ("0600"); a default per kind."""
    if value is None:
        return DEFAULT_MODE[kind]
    if isinstance(value, str) and _OCTAL.match(value):
        value = int(value.removeprefix("0o"), 8)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_MODE:
        raise Unprocessable(
            f"mode must be a file mode from 0 to 0o777 (511): an integer, or octal digits as "
            f'text like "0600"; got {value!r}',
            field="mode",
        )
    return value


def check_data(data: object) -> bytes:
    if not isinstance(data, bytes) or not data:
        raise Unprocessable("data is required: the secret's content", field="data")
    if len(data) > MAX_SECRET_BYTES:
        raise PayloadTooLarge(
            f"the secret is {len(data)} bytes, over the {MAX_SECRET_BYTES}-byte limit; "
            "nothing was stored",
            field="data",
            code="too_large",
        )
    return data


async def add_secret(
    ctx: CommandContext,
    developer: Developer | str,
    name: object,
    kind: object,
    data: object,
    path: object = None,
    mode: object = None,
) -> dict[str, Any]:
    """Seal (with `ctx.secret_box`) and record a new secret; answers its summary (never its
    content)."""
    caller = sealed.caller_of(developer)
    owner = caller.name
    name = check_name(name)
    secret_kind = check_kind(kind)
    where = check_path(secret_kind, path)
    file_mode = check_mode(secret_kind, mode)
    plaintext = check_data(data)
    secret_id = str(uuid.uuid4())
    bound = associated_data(secret_id, owner, secret_kind, where, file_mode)
    ciphertext, key_id = ctx.secret_box.seal(plaintext, bound)
    added = SecretAdded(secret_id, owner, name, secret_kind, where, file_mode, ciphertext, key_id)
    stored = await sealed.add_sealed(
        ctx,
        caller,
        what="secret",
        limit=MAX_SECRETS,
        live=q.secrets_of,
        event="secret.added.v1",
        payload=added,
        stored=lambda db: q.secret_by_id(db, secret_id),
    )
    return stored.summary()


async def delete_secret(
    ctx: CommandContext, developer: Developer | str, secret_id: str
) -> dict[str, Any]:
    """Delete one of the caller's secrets; another's, like a missing one, is a 404."""
    caller = sealed.caller_of(developer)

    def owner_of(db: sealed.Reader) -> str | None:
        found = q.secret_by_id(db, secret_id)
        return None if found is None else found.owner

    await sealed.delete_sealed(
        ctx,
        caller,
        what=f"secret {secret_id!r}",
        owner_of=owner_of,
        event="secret.deleted.v1",
        payload=SecretDeleted(secret_id, caller.name),
    )
    return {"deleted": secret_id}


class JobSecretError(Unprocessable):
    """A secret a job names cannot be handed to it (unknown, another's, or unreadable)."""

    def __init__(self, secret_id: str, message: str, code: str, field: str = "secrets") -> None:
        super().__init__(message, field=field, code=code)
        self.secret_id = secret_id


def _owned(db: Relational, owner: str, ids: Iterable[str]) -> list[q.Secret]:
    found: list[q.Secret] = []
    for secret_id in dict.fromkeys(ids):  # each once, in the manifest's order
        secret = q.secret_by_id(db, secret_id)
        if secret is None or secret.owner != owner:
            raise JobSecretError(
                secret_id,
                f"secret {secret_id} does not exist or does not belong to {owner}",
                "unknown_secret",
            )
        found.append(secret)
    return found


def check_job_secrets(db: Relational, owner: str, ids: Iterable[str]) -> None:
    """Refuse (422 naming the id) a secret id that is not one of `owner`'s live secrets.
    Blocks: call from a thread."""
    listed = list(ids)
    try:
        _owned(db, owner, listed)
    except JobSecretError as exc:
        where = f"manifest.secrets[{listed.index(exc.secret_id)}]"
        raise JobSecretError(exc.secret_id, exc.message, exc.code, where) from None


def secrets_for_job(
    db: Relational, box: SecretBox, owner: str, ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The secrets `ids` names, opened, as docs/jobs.md's `new_job.secrets` entries. Raises
    JobSecretError naming the first id that is unknown, another's, or cannot be opened.
    Blocks: call from a thread."""
    entries: list[dict[str, Any]] = []
    for secret in _owned(db, owner, ids):
        bound = associated_data(secret.id, secret.owner, secret.kind, secret.path, secret.mode)
        try:
            plaintext = box.open(secret.ciphertext, secret.key_id, bound)
        except SecretBoxError as exc:
            raise JobSecretError(
                secret.id, f"secret {secret.id} cannot be opened: {exc}", "unreadable_secret"
            ) from None
        entries.append(
            {
                "id": secret.id,
                "name": secret.name,
                "type": secret.kind,
                "path": secret.path,
                "mode": secret.mode,
                "data": base64.b64encode(plaintext).decode("ascii"),
            }
        )
    return entries
