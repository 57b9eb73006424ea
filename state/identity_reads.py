"""Reads of the identity tables (state/identity.py writes them)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from base.client_errors import NotFound
from schemas.envelope import iso_micros
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row


@dataclass(frozen=True, slots=True)
class App:
    name: str
    developer: str
    retention_days: int
    created_at: int


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    developer: str
    name: str
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    scopes: tuple[str, ...] | None = None
    """None: a full-access token."""

    def live(self, now: int) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


_APP = "SELECT name, developer, retention_days, created_at FROM apps"
_TOKEN = (
    "SELECT id, developer, name, prefix, created_at, expires_at, revoked_at, scopes FROM tokens"  # noqa: S105 (a query)
)


def _app(row: Row) -> App:
    return App(str(row[0]), str(row[1]), int(row[2]), int(row[3]))


def _token(row: Row) -> Token:
    return Token(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        int(row[4]),
        None if row[5] is None else int(row[5]),
        None if row[6] is None else int(row[6]),
        None if row[7] is None else tuple(orjson.loads(str(row[7]))),
    )


def developer_exists(db: Relational | Transaction, name: str) -> bool:
    return db.fetchone("SELECT 1 FROM developers WHERE name = :n", {"n": name}) is not None


def app_named(db: Relational | Transaction, name: str) -> App | None:
    row = db.fetchone(f"{_APP} WHERE name = :n", {"n": name})
    return None if row is None else _app(row)


@dataclass(frozen=True, slots=True)
class AppSecret:
    """The app a secret belongs to, and when the secret stops working (None: it is the
    app's current secret; a time: a rotation replaced it and that is its grace's end)."""

    app: App
    expires_at: int | None

    def live(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


def app_by_secret_hash(db: Relational, secret_hash: str) -> AppSecret | None:
    row = db.fetchone(
        "SELECT a.name, a.developer, a.retention_days, a.created_at, s.expires_at "
        "FROM app_secrets s JOIN apps a ON a.name = s.app WHERE s.secret_hash = :h",
        {"h": secret_hash},
    )
    if row is None:
        return None
    return AppSecret(_app(row), None if row[4] is None else int(row[4]))


def previous_secrets_live(db: Relational | Transaction, app: str, now: int) -> int:
    """How many of the app's earlier secrets still work (within a rotation's grace)."""
    row = db.fetchone(
        "SELECT COUNT(*) FROM app_secrets WHERE app = :a AND expires_at > :now",
        {"a": app, "now": now},
    )
    return 0 if row is None else int(row[0])


def apps_of(db: Relational, developer: str) -> list[App]:
    rows = db.fetchall(f"{_APP} WHERE developer = :d ORDER BY name", {"d": developer})
    return [_app(r) for r in rows]


def retention_days(db: Relational) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in db.fetchall("SELECT name, retention_days FROM apps")}


def token_by_hash(db: Relational, token_hash: str) -> Token | None:
    row = db.fetchone(f"{_TOKEN} WHERE token_hash = :h", {"h": token_hash})
    return None if row is None else _token(row)


def token_by_id(db: Relational | Transaction, token_id: str) -> Token | None:
    row = db.fetchone(f"{_TOKEN} WHERE id = :i", {"i": token_id})
    return None if row is None else _token(row)


def tokens_of(db: Relational | Transaction, developer: str) -> list[Token]:
    rows = db.fetchall(f"{_TOKEN} WHERE developer = :d ORDER BY created_at DESC", {"d": developer})
    return [_token(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    kind: str
    owner: str
    created_at: int


_TENANT = "SELECT id, name, kind, owner, created_at FROM tenants"


def _tenant(row: Row) -> Tenant:
    return Tenant(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]))


def personal_tenant(db: Relational | Transaction, developer: str) -> Tenant | None:
    row = db.fetchone(
        f"{_TENANT} WHERE owner = :d AND kind = 'personal' ORDER BY id LIMIT 1", {"d": developer}
    )
    return None if row is None else _tenant(row)


def tenant_by_id(db: Relational | Transaction, tenant_id: str) -> Tenant | None:
    row = db.fetchone(f"{_TENANT} WHERE id = :i", {"i": tenant_id})
    return None if row is None else _tenant(row)


def tenants_of(db: Relational | Transaction, developer: str) -> list[Tenant]:
    rows = db.fetchall(
        "SELECT t.id, t.name, t.kind, t.owner, t.created_at FROM tenants t "
        "JOIN tenant_members m ON m.tenant_id = t.id WHERE m.developer = :d ORDER BY t.id",
        {"d": developer},
    )
    return [_tenant(r) for r in rows]


def is_member(db: Relational | Transaction, tenant_id: str, developer: str) -> bool:
    row = db.fetchone(
        "SELECT 1 FROM tenant_members WHERE tenant_id = :t AND developer = :d",
        {"t": tenant_id, "d": developer},
    )
    return row is not None


def member_tenant(db: Relational | Transaction, tenant_id: str, developer: str) -> Tenant:
    """The tenant if `developer` is a member; a 404 otherwise, the same whether or not it
    exists (every tenant path: another's tenant id tells nothing). Blocks."""
    tenant = tenant_by_id(db, tenant_id)
    if tenant is None or not is_member(db, tenant_id, developer):
        raise NotFound("no such tenant among yours", field="tenant_id", code="no_tenant")
    return tenant


@dataclass(frozen=True, slots=True)
class Secret:
    id: str
    owner: str
    name: str
    kind: str
    path: str | None
    mode: int
    ciphertext: str
    key_id: str
    created_at: int

    def summary(self) -> dict[str, object]:
        """What a read may show: never the secret."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "path": self.path,
            "mode": self.mode,
            "createdAt": iso_micros(self.created_at),
        }


_SECRET = (  # a query, not a secret
    "SELECT id, owner, name, kind, path, mode, ciphertext, key_id, created_at FROM secrets "  # noqa: S105
    "WHERE deleted_at IS NULL"
)


def _secret(row: Row) -> Secret:
    return Secret(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        None if row[4] is None else str(row[4]),
        int(row[5]),
        str(row[6]),
        str(row[7]),
        int(row[8]),
    )


def secrets_of(db: Relational | Transaction, owner: str) -> list[Secret]:
    rows = db.fetchall(f"{_SECRET} AND owner = :o ORDER BY created_at DESC", {"o": owner})
    return [_secret(r) for r in rows]


def secret_by_id(db: Relational | Transaction, secret_id: str) -> Secret | None:
    row = db.fetchone(f"{_SECRET} AND id = :i", {"i": secret_id})
    return None if row is None else _secret(row)


def secrets_per_key(db: Relational | Transaction, table: str = "secrets") -> dict[str, int]:
    """Live sealed things (`secrets`, or publishing `ssh_keys`) per secrets-key id they are
    sealed with (which keys rotation must keep)."""
    assert table in ("secrets", "ssh_keys"), table  # a table name, never input
    rows = db.fetchall(
        f"SELECT key_id, COUNT(*) FROM {table} WHERE deleted_at IS NULL GROUP BY key_id "
        "ORDER BY key_id"
    )
    return {str(r[0]): int(r[1]) for r in rows}
