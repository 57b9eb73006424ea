"""Payloads of the people events on the `apps` topic: GitHub accounts, browser sessions,
tenants' GitHub App installations and e-mail, and GitHub webhook deliveries (issue 16).

As in schemas/identity.py: dataclasses as JSON, every new field with a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AccountType = Literal["User", "Organization"]
"""A GitHub account's `type`, as GitHub spells it."""


@dataclass(frozen=True, slots=True)
class GitHubLinked:
    """The developer signs in with this GitHub account; written on first sign-in and again
    whenever the profile GitHub reports has changed."""

    developer: str
    github_id: int
    login: str
    name: str | None = None
    email: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """A browser session: the `session-token` cookie's SHA-256, never the token."""

    id: str
    developer: str
    token_hash: str
    expires_at: int
    """Microseconds since the epoch."""


@dataclass(frozen=True, slots=True)
class SessionRevoked:
    id: str
    developer: str


@dataclass(frozen=True, slots=True)
class TenantMemberRemoved:
    tenant_id: str
    developer: str


@dataclass(frozen=True, slots=True)
class InstallationLinked:
    """The GitHub App installation `installation_id` (checked against GitHub) belongs to the
    tenant; written again when GitHub reports a change (repository selection, avatar)."""

    tenant_id: str
    installation_id: int
    account_login: str
    account_id: int
    account_type: AccountType
    repository_selection: str = "all"
    avatar_url: str | None = None


@dataclass(frozen=True, slots=True)
class InstallationRemoved:
    """The app was uninstalled: the tenant stays (its jobs, its members) but is unlinked."""

    tenant_id: str
    installation_id: int


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    full_name: str


@dataclass(frozen=True, slots=True)
class RepositoriesChanged:
    tenant_id: str
    installation_id: int
    added: tuple[Repository, ...] = ()
    removed: tuple[Repository, ...] = ()


@dataclass(frozen=True, slots=True)
class EmailChangeRequested:
    """A verification link (a JWT with id `jti`) was mailed to `email`."""

    tenant_id: str
    email: str
    jti: str
    expires_at: int
    requested_by: str


@dataclass(frozen=True, slots=True)
class EmailChanged:
    """The link `jti` was followed: the tenant's e-mail is `email` now; every other link
    mailed for the tenant before it stops working."""

    tenant_id: str
    email: str
    jti: str


@dataclass(frozen=True, slots=True)
class DeliveryReceived:
    """A GitHub webhook delivery, its signature verified. Only what Hutch acts on is kept of
    the body; `X-GitHub-Delivery` (`delivery_id`) makes a second delivery a no-op."""

    delivery_id: str
    event: str
    action: str | None = None
    installation_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
