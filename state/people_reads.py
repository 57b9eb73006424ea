"""Reads of the people tables (state/people.py writes them)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.relational import Relational, Transaction
from storage.relational.protocol import Row

Reader = Relational | Transaction


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class GitHubAccount:
    github_id: int
    developer: str
    login: str
    name: str | None
    email: str | None
    avatar_url: str | None
    linked_at: int


_ACCOUNT = (
    "SELECT github_id, developer, login, name, email, avatar_url, linked_at FROM github_accounts"
)


def _account(row: Row) -> GitHubAccount:
    return GitHubAccount(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        _str(row[3]),
        _str(row[4]),
        _str(row[5]),
        int(row[6]),
    )


def account_by_github_id(db: Reader, github_id: int) -> GitHubAccount | None:
    row = db.fetchone(f"{_ACCOUNT} WHERE github_id = :i", {"i": github_id})
    return None if row is None else _account(row)


def account_of(db: Reader, developer: str) -> GitHubAccount | None:
    row = db.fetchone(f"{_ACCOUNT} WHERE developer = :d", {"d": developer})
    return None if row is None else _account(row)


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    developer: str
    created_at: int
    expires_at: int
    revoked_at: int | None

    def live(self, now: int) -> bool:
        return self.revoked_at is None and self.expires_at > now


_SESSION = "SELECT id, developer, created_at, expires_at, revoked_at FROM sessions"


def _session(row: Row) -> Session:
    return Session(str(row[0]), str(row[1]), int(row[2]), int(row[3]), _int(row[4]))


def session_by_hash(db: Reader, token_hash: str) -> Session | None:
    row = db.fetchone(f"{_SESSION} WHERE token_hash = :h", {"h": token_hash})
    return None if row is None else _session(row)


def session_by_id(db: Reader, session_id: str) -> Session | None:
    row = db.fetchone(f"{_SESSION} WHERE id = :i", {"i": session_id})
    return None if row is None else _session(row)


@dataclass(frozen=True, slots=True)
class Installation:
    installation_id: int
    tenant_id: str
    account_login: str
    account_id: int
    account_type: str
    repository_selection: str
    avatar_url: str | None
    linked_at: int
    removed_at: int | None


_INSTALLATION = (
    "SELECT installation_id, tenant_id, account_login, account_id, account_type, "
    "repository_selection, avatar_url, linked_at, removed_at FROM tenant_installations"
)


def _installation(row: Row) -> Installation:
    return Installation(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        str(row[4]),
        str(row[5]),
        _str(row[6]),
        int(row[7]),
        _int(row[8]),
    )


def installation_by_id(db: Reader, installation_id: int) -> Installation | None:
    """The installation, linked or removed (`removed_at`)."""
    row = db.fetchone(f"{_INSTALLATION} WHERE installation_id = :i", {"i": installation_id})
    return None if row is None else _installation(row)


def installation_of_account(db: Reader, account_id: int) -> Installation | None:
    """The live installation on a GitHub account, if any (an account's tenant keeps its id
    across uninstalling and installing again)."""
    row = db.fetchone(
        f"{_INSTALLATION} WHERE account_id = :a ORDER BY removed_at IS NULL DESC, linked_at DESC",
        {"a": account_id},
    )
    return None if row is None else _installation(row)


def installations_of_tenant(db: Reader, tenant_id: str) -> list[Installation]:
    rows = db.fetchall(
        f"{_INSTALLATION} WHERE tenant_id = :t AND removed_at IS NULL ORDER BY installation_id",
        {"t": tenant_id},
    )
    return [_installation(r) for r in rows]


def repositories_of(db: Reader, installation_id: int) -> list[tuple[int, str]]:
    rows = db.fetchall(
        "SELECT repository_id, full_name FROM tenant_repositories WHERE installation_id = :i "
        "ORDER BY full_name",
        {"i": installation_id},
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def tenant_email(db: Reader, tenant_id: str) -> str | None:
    row = db.fetchone("SELECT email FROM tenants WHERE id = :t", {"t": tenant_id})
    return None if row is None else _str(row[0])


@dataclass(frozen=True, slots=True)
class EmailLink:
    jti: str
    tenant_id: str
    email: str
    requested_by: str
    expires_at: int
    used_at: int | None


def email_link(db: Reader, jti: str) -> EmailLink | None:
    row = db.fetchone(
        "SELECT jti, tenant_id, email, requested_by, expires_at, used_at FROM tenant_email_links "
        "WHERE jti = :j",
        {"j": jti},
    )
    if row is None:
        return None
    return EmailLink(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), _int(row[5]))


def delivery_seen(db: Reader, delivery_id: str) -> bool:
    row = db.fetchone("SELECT 1 FROM github_deliveries WHERE delivery_id = :d", {"d": delivery_id})
    return row is not None
