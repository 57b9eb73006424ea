"""Identity projection: the `apps` topic -> developers, apps (with every secret they have had,
in `app_secrets`) and tokens tables."""

from __future__ import annotations

import logging

import orjson

from schemas.events import Topic
from schemas.identity import (
    AppCreated,
    AppPreviousSecretsRevoked,
    AppRetentionSet,
    AppSecretRotated,
    DeveloperCreated,
    TenantCreated,
    TenantMemberAdded,
    TokenCreated,
    TokenRevoked,
)
from schemas.secrets import SecretAdded, SecretDeleted
from state import people, ssh_keys
from storage.log import Record
from storage.relational import Transaction

log = logging.getLogger(__name__)


class IdentityProjection:
    name = "identity"
    topics: tuple[Topic, ...] = ("apps",)
    tables: tuple[str, ...] = (
        "tokens",
        "app_secrets",
        "apps",
        "developers",
        "tenant_members",
        "tenants",
        "secrets",
        *people.TABLES,
        *ssh_keys.TABLES,
    )

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        try:
            payload = orjson.loads(envelope.payload)
            at = envelope.received_at
            match envelope.type:
                case "developer.created.v1":
                    developer_created(tx, DeveloperCreated(**payload), at)
                case "app.created.v1":
                    app_created(tx, AppCreated(**payload), at)
                case "app.retention_set.v1":
                    retention_set(tx, AppRetentionSet(**payload))
                case "app.secret_rotated.v1":
                    secret_rotated(tx, AppSecretRotated(**payload), at)
                case "app.previous_secrets_revoked.v1":
                    previous_secrets_revoked(tx, AppPreviousSecretsRevoked(**payload), at)
                case "token.created.v1":
                    token_created(tx, TokenCreated(**payload), at)
                case "token.revoked.v1":
                    token_revoked(tx, TokenRevoked(**payload), at)
                case "tenant.created.v1":
                    tenant_created(tx, TenantCreated(**payload), at)
                case "tenant.member_added.v1":
                    member_added(tx, TenantMemberAdded(**payload), at)
                case "secret.added.v1":
                    secret_added(tx, SecretAdded(**payload), at)
                case "secret.deleted.v1":
                    secret_deleted(tx, SecretDeleted(**payload), at)
                case _:
                    # people events (sessions, GitHub, tenants' installations and e-mail),
                    # publishing's (SSH keys, source repositories); any other type belongs
                    # to a future version
                    if not people.apply(tx, envelope.type, payload, at):
                        ssh_keys.apply(tx, envelope.type, payload, at)
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.error(
                "skipping malformed identity record",
                extra={"offset": record.offset, "type": envelope.type, "error": str(exc)},
            )


def developer_created(tx: Transaction, e: DeveloperCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO developers (name, created_at) VALUES (:name, :at) "
        "ON CONFLICT (name) DO NOTHING",
        {"name": e.name, "at": at},
    )


def app_created(tx: Transaction, e: AppCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO apps (name, developer, secret_hash, retention_days, created_at) "
        "VALUES (:name, :developer, :secret_hash, :retention_days, :at) "
        "ON CONFLICT (name) DO NOTHING",
        {
            "name": e.name,
            "developer": e.developer,
            "secret_hash": e.secret_hash,
            "retention_days": e.retention_days,
            "at": at,
        },
    )
    _add_secret(tx, e.name, e.secret_hash, at)


def _add_secret(tx: Transaction, app: str, secret_hash: str, at: int) -> None:
    # Through the apps row, so a secret never outlives or precedes its app (and a second
    # `app.created.v1` for a taken name, which commands never append, adds no secret).
    tx.execute(
        "INSERT INTO app_secrets (secret_hash, app, created_at) "
        "SELECT secret_hash, name, :at FROM apps WHERE name = :app AND secret_hash = :h "
        "ON CONFLICT (secret_hash) DO NOTHING",
        {"h": secret_hash, "app": app, "at": at},
    )


def retention_set(tx: Transaction, e: AppRetentionSet) -> None:
    tx.execute(
        "UPDATE apps SET retention_days = :days WHERE name = :name",
        {"days": e.retention_days, "name": e.name},
    )


def secret_rotated(tx: Transaction, e: AppSecretRotated, at: int) -> None:
    # Every earlier secret still working ends at the new grace's end, unless it ends sooner:
    # a second rotation within a grace period never lengthens the first one's.
    tx.execute(
        "UPDATE app_secrets SET expires_at = :until WHERE app = :app AND secret_hash <> :h "
        "AND (expires_at IS NULL OR expires_at > :until)",
        {"until": e.previous_expires_at, "app": e.name, "h": e.secret_hash},
    )
    tx.execute(
        "UPDATE apps SET secret_hash = :h WHERE name = :app", {"h": e.secret_hash, "app": e.name}
    )
    _add_secret(tx, e.name, e.secret_hash, at)


def previous_secrets_revoked(tx: Transaction, e: AppPreviousSecretsRevoked, at: int) -> None:
    tx.execute(
        "UPDATE app_secrets SET expires_at = :at WHERE app = :app "
        "AND secret_hash <> (SELECT secret_hash FROM apps WHERE name = :app) "
        "AND (expires_at IS NULL OR expires_at > :at)",
        {"at": at, "app": e.name},
    )


def token_created(tx: Transaction, e: TokenCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO tokens (id, developer, name, token_hash, prefix, created_at, expires_at, "
        "scopes) VALUES (:id, :developer, :name, :token_hash, :prefix, :at, :expires_at, "
        ":scopes) ON CONFLICT (id) DO NOTHING",
        {
            "id": e.id,
            "developer": e.developer,
            "name": e.name,
            "token_hash": e.token_hash,
            "prefix": e.prefix,
            "at": at,
            "expires_at": e.expires_at,
            "scopes": None if e.scopes is None else orjson.dumps(list(e.scopes)).decode(),
        },
    )


def token_revoked(tx: Transaction, e: TokenRevoked, at: int) -> None:
    tx.execute(
        "UPDATE tokens SET revoked_at = :at "
        "WHERE id = :id AND developer = :developer AND revoked_at IS NULL",
        {"at": at, "id": e.id, "developer": e.developer},
    )


def tenant_created(tx: Transaction, e: TenantCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO tenants (id, name, kind, owner, created_at) "
        "VALUES (:id, :name, :kind, :owner, :at) ON CONFLICT (id) DO NOTHING",
        {"id": e.id, "name": e.name, "kind": e.kind, "owner": e.owner, "at": at},
    )


def member_added(tx: Transaction, e: TenantMemberAdded, at: int) -> None:
    tx.execute(
        "INSERT INTO tenant_members (tenant_id, developer, role, added_at) "
        "VALUES (:t, :d, :r, :at) ON CONFLICT (tenant_id, developer) DO NOTHING",
        {"t": e.tenant_id, "d": e.developer, "r": e.role, "at": at},
    )


def secret_added(tx: Transaction, e: SecretAdded, at: int) -> None:
    tx.execute(
        "INSERT INTO secrets (id, owner, name, kind, path, mode, ciphertext, key_id, "
        "created_at) VALUES (:id, :owner, :name, :kind, :path, :mode, :ciphertext, :key_id, "
        ":at) ON CONFLICT (id) DO NOTHING",
        {
            "id": e.id,
            "owner": e.owner,
            "name": e.name,
            "kind": e.kind,
            "path": e.path,
            "mode": e.mode,
            "ciphertext": e.ciphertext,
            "key_id": e.key_id,
            "at": at,
        },
    )


def secret_deleted(tx: Transaction, e: SecretDeleted, at: int) -> None:
    tx.execute(
        "UPDATE secrets SET deleted_at = :at WHERE id = :id AND owner = :owner "
        "AND deleted_at IS NULL",
        {"id": e.id, "owner": e.owner, "at": at},
    )
