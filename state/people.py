"""The identity projection's people events (schemas/people.py): GitHub accounts, sessions,
tenants' installations, repositories and e-mail, webhook deliveries. Called by
state/identity.py's `IdentityProjection.apply`; each write is idempotent, so applying a
record twice changes nothing."""

from __future__ import annotations

from typing import Any

from schemas import people as p
from storage.relational import Transaction

TABLES: tuple[str, ...] = (
    "github_accounts",
    "sessions",
    "tenant_installations",
    "tenant_repositories",
    "tenant_email_links",
    "github_deliveries",
)


def apply(tx: Transaction, type_: str, payload: dict[str, Any], at: int) -> bool:
    """Apply a people event; False if `type_` is not one."""
    match type_:
        case "developer.github_linked.v1":
            github_linked(tx, p.GitHubLinked(**payload), at)
        case "session.created.v1":
            session_created(tx, p.SessionCreated(**payload), at)
        case "session.revoked.v1":
            session_revoked(tx, p.SessionRevoked(**payload), at)
        case "tenant.member_removed.v1":
            member_removed(tx, p.TenantMemberRemoved(**payload))
        case "tenant.installation_linked.v1":
            installation_linked(tx, p.InstallationLinked(**payload), at)
        case "tenant.installation_removed.v1":
            installation_removed(tx, p.InstallationRemoved(**payload), at)
        case "tenant.repositories_changed.v1":
            added = tuple(p.Repository(**r) for r in payload.pop("added", ()))
            removed = tuple(p.Repository(**r) for r in payload.pop("removed", ()))
            repositories_changed(tx, p.RepositoriesChanged(**payload, added=added, removed=removed))
        case "tenant.email_change_requested.v1":
            email_change_requested(tx, p.EmailChangeRequested(**payload), at)
        case "tenant.email_changed.v1":
            email_changed(tx, p.EmailChanged(**payload), at)
        case "github.delivery_received.v1":
            delivery_received(tx, p.DeliveryReceived(**payload), at)
        case _:
            return False
    return True


def github_linked(tx: Transaction, e: p.GitHubLinked, at: int) -> None:
    tx.execute(
        "INSERT INTO github_accounts (github_id, developer, login, name, email, avatar_url, "
        "linked_at, updated_at) VALUES (:id, :d, :login, :name, :email, :avatar, :at, :at) "
        "ON CONFLICT (github_id) DO UPDATE SET login = :login, name = :name, email = :email, "
        "avatar_url = :avatar, updated_at = :at",
        {
            "id": e.github_id,
            "d": e.developer,
            "login": e.login,
            "name": e.name,
            "email": e.email,
            "avatar": e.avatar_url,
            "at": at,
        },
    )


def session_created(tx: Transaction, e: p.SessionCreated, at: int) -> None:
    tx.execute(
        "INSERT INTO sessions (id, developer, token_hash, created_at, expires_at) "
        "VALUES (:id, :d, :h, :at, :until) ON CONFLICT (id) DO NOTHING",
        {"id": e.id, "d": e.developer, "h": e.token_hash, "at": at, "until": e.expires_at},
    )


def session_revoked(tx: Transaction, e: p.SessionRevoked, at: int) -> None:
    tx.execute(
        "UPDATE sessions SET revoked_at = :at "
        "WHERE id = :id AND developer = :d AND revoked_at IS NULL",
        {"at": at, "id": e.id, "d": e.developer},
    )


def member_removed(tx: Transaction, e: p.TenantMemberRemoved) -> None:
    tx.execute(
        "DELETE FROM tenant_members WHERE tenant_id = :t AND developer = :d",
        {"t": e.tenant_id, "d": e.developer},
    )


def installation_linked(tx: Transaction, e: p.InstallationLinked, at: int) -> None:
    tx.execute(
        "INSERT INTO tenant_installations (installation_id, tenant_id, account_login, "
        "account_id, account_type, repository_selection, avatar_url, linked_at) "
        "VALUES (:i, :t, :login, :aid, :type, :sel, :avatar, :at) "
        "ON CONFLICT (installation_id) DO UPDATE SET account_login = :login, "
        "repository_selection = :sel, avatar_url = :avatar, removed_at = NULL "
        "WHERE tenant_installations.tenant_id = :t",
        {
            "i": e.installation_id,
            "t": e.tenant_id,
            "login": e.account_login,
            "aid": e.account_id,
            "type": e.account_type,
            "sel": e.repository_selection,
            "avatar": e.avatar_url,
            "at": at,
        },
    )


def installation_removed(tx: Transaction, e: p.InstallationRemoved, at: int) -> None:
    tx.execute(
        "UPDATE tenant_installations SET removed_at = :at "
        "WHERE installation_id = :i AND tenant_id = :t AND removed_at IS NULL",
        {"at": at, "i": e.installation_id, "t": e.tenant_id},
    )
    tx.execute(
        "DELETE FROM tenant_repositories WHERE installation_id = :i", {"i": e.installation_id}
    )


def repositories_changed(tx: Transaction, e: p.RepositoriesChanged) -> None:
    for repo in e.added:
        tx.execute(
            "INSERT INTO tenant_repositories (installation_id, repository_id, full_name) "
            "VALUES (:i, :r, :n) ON CONFLICT (installation_id, repository_id) "
            "DO UPDATE SET full_name = :n",
            {"i": e.installation_id, "r": repo.id, "n": repo.full_name},
        )
    for repo in e.removed:
        tx.execute(
            "DELETE FROM tenant_repositories WHERE installation_id = :i AND repository_id = :r",
            {"i": e.installation_id, "r": repo.id},
        )


def email_change_requested(tx: Transaction, e: p.EmailChangeRequested, at: int) -> None:
    tx.execute(
        "INSERT INTO tenant_email_links (jti, tenant_id, email, requested_by, requested_at, "
        "expires_at) VALUES (:j, :t, :email, :by, :at, :until) ON CONFLICT (jti) DO NOTHING",
        {
            "j": e.jti,
            "t": e.tenant_id,
            "email": e.email,
            "by": e.requested_by,
            "at": at,
            "until": e.expires_at,
        },
    )


def email_changed(tx: Transaction, e: p.EmailChanged, at: int) -> None:
    tx.execute(
        "UPDATE tenants SET email = :email WHERE id = :t", {"email": e.email, "t": e.tenant_id}
    )
    tx.execute(
        "UPDATE tenant_email_links SET used_at = :at WHERE tenant_id = :t AND used_at IS NULL",
        {"at": at, "t": e.tenant_id},
    )


def delivery_received(tx: Transaction, e: p.DeliveryReceived, at: int) -> None:
    tx.execute(
        "INSERT INTO github_deliveries (delivery_id, event, action, installation_id, "
        "received_at) VALUES (:d, :e, :a, :i, :at) ON CONFLICT (delivery_id) DO NOTHING",
        {"d": e.delivery_id, "e": e.event, "a": e.action, "i": e.installation_id, "at": at},
    )
