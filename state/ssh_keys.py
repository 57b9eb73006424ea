"""The identity projection's publishing events: SSH keys (`ssh_key.added.v1`,
`ssh_key.deleted.v1`) and apps' source repositories (`app.source_set.v1`), and their reads.
Called by state/identity.py's `IdentityProjection.apply`; each write is idempotent.

`open_key` is the one place a sealed key is opened (publish runs through
ingest/publish/ssh_keys.py's `open_ssh_key`, `GET /api/branches` for SSH remotes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from base.client_errors import NotFound, Unprocessable
from base.secret_box import SecretBox, SecretBoxError
from schemas.envelope import iso_micros
from schemas.publish.app_sources import AppSourceSet
from schemas.publish.ssh_keys import SshKeyAdded, SshKeyDeleted
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row

TABLES: tuple[str, ...] = ("ssh_keys",)


def apply(tx: Transaction, type_: str, payload: dict[str, Any], at: int) -> bool:
    """Apply a publishing event; False if `type_` is not one."""
    match type_:
        case "ssh_key.added.v1":
            key_added(tx, SshKeyAdded(**payload), at)
        case "ssh_key.deleted.v1":
            key_deleted(tx, SshKeyDeleted(**payload), at)
        case "app.source_set.v1":
            source_set(tx, AppSourceSet(**payload))
        case _:
            return False
    return True


def key_added(tx: Transaction, e: SshKeyAdded, at: int) -> None:
    tx.execute(
        "INSERT INTO ssh_keys (id, owner, label, key_type, fingerprint, public_key, ciphertext, "
        "key_id, created_at) VALUES (:id, :owner, :label, :type, :fp, :public, :ciphertext, "
        ":key_id, :at) ON CONFLICT (id) DO NOTHING",
        {
            "id": e.id,
            "owner": e.owner,
            "label": e.label,
            "type": e.key_type,
            "fp": e.fingerprint,
            "public": e.public_key,
            "ciphertext": e.ciphertext,
            "key_id": e.key_id,
            "at": at,
        },
    )


def key_deleted(tx: Transaction, e: SshKeyDeleted, at: int) -> None:
    tx.execute(
        "UPDATE ssh_keys SET deleted_at = :at WHERE id = :id AND owner = :owner "
        "AND deleted_at IS NULL",
        {"id": e.id, "owner": e.owner, "at": at},
    )


def source_set(tx: Transaction, e: AppSourceSet) -> None:
    tx.execute(
        "UPDATE apps SET source_repository = :r WHERE name = :app",
        {"r": e.repository, "app": e.app},
    )


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    owner: str
    label: str
    key_type: str
    fingerprint: str
    public_key: str
    ciphertext: str
    key_id: str
    created_at: int

    def summary(self) -> dict[str, object]:
        """What a read may show: never the private key or its ciphertext."""
        return {
            "id": self.id,
            "label": self.label,
            "type": self.key_type,
            "fingerprint": self.fingerprint,
            "publicKey": self.public_key,
            "createdAt": iso_micros(self.created_at),
        }


_KEY = (
    "SELECT id, owner, label, key_type, fingerprint, public_key, ciphertext, key_id, "
    "created_at FROM ssh_keys WHERE deleted_at IS NULL"
)


def _key(row: Row) -> StoredKey:
    id_, owner, label, key_type, fingerprint, public, ciphertext, box_key = (
        str(v) for v in row[:8]
    )
    return StoredKey(
        id_, owner, label, key_type, fingerprint, public, ciphertext, box_key, int(row[8])
    )


def keys_of(db: Relational | Transaction, owner: str) -> list[StoredKey]:
    rows = db.fetchall(f"{_KEY} AND owner = :o ORDER BY created_at DESC, id", {"o": owner})
    return [_key(r) for r in rows]


def key_by_id(db: Relational | Transaction, key_id: str) -> StoredKey | None:
    row = db.fetchone(f"{_KEY} AND id = :i", {"i": key_id})
    return None if row is None else _key(row)


def source_repository(db: Relational | Transaction, app: str) -> str | None:
    row = db.fetchone("SELECT source_repository FROM apps WHERE name = :a", {"a": app})
    return None if row is None or row[0] is None else str(row[0])


def source_repositories(db: Relational | Transaction, developer: str) -> dict[str, str]:
    """The developer's apps that have a source repository: app -> repository."""
    rows = db.fetchall(
        "SELECT name, source_repository FROM apps WHERE developer = :d "
        "AND source_repository IS NOT NULL",
        {"d": developer},
    )
    return {str(r[0]): str(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class SshKey:
    id: str
    label: str
    fingerprint: str
    """`SHA256:<base64, unpadded>`, as `ssh-keygen -l` prints it."""
    public_key: str
    """One OpenSSH line: `ssh-ed25519 AAAA...`."""
    private_key: str = field(repr=False)
    """OpenSSH PEM text (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted: never logged,
    never answered."""


class UnreadableKey(Unprocessable):
    """A stored key that this configuration's secrets keys cannot open (rotated away)."""


def associated_data(key_id: str, owner: str, fingerprint: str) -> bytes:
    """What a key's ciphertext is bound to: it opens as no other key, nor as a CI secret."""
    return orjson.dumps(["hutch:ssh-key:v1", key_id, owner, fingerprint])


def open_key(db: Relational | Transaction, box: SecretBox, owner: str, key_id: str) -> SshKey:
    """`owner`'s live key `key_id`, opened. NotFound (404) for a missing, deleted or another
    developer's key; UnreadableKey (422) when its secrets key is gone. Blocks: call from a
    thread."""
    found = key_by_id(db, key_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no SSH key {key_id!r} among yours", field="sshKeyId")
    bound = associated_data(found.id, found.owner, found.fingerprint)
    try:
        private = box.open(found.ciphertext, found.key_id, bound)
    except SecretBoxError as exc:
        raise UnreadableKey(
            f"SSH key {key_id} cannot be opened: {exc}", field="sshKeyId", code="unreadable_key"
        ) from None
    return SshKey(
        found.id, found.label, found.fingerprint, found.public_key, private.decode("ascii")
    )
