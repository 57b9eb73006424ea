"""Tenant commands (issue 16): GitHub App installations linked to tenants, and the
memberships, repositories and uninstalls GitHub reports. Sign-in (`sync_memberships`), the
setup handler (`link_installation`) and webhooks (all four) call these.

One tenant per GitHub account: an installation found by id, else by its account (an uninstall
and a new install keep the tenant id), else a new tenant of kind "organisation" or "user"
named after the account. Membership follows GitHub: a User account's tenant has that user
(their developer) as member; an Organization's has whoever GitHub lists. Personal tenants
are never touched here.

Every command takes the one `tenants` command lock (state/command_context.py), so they must
not be called from inside another command (the command lock does not nest). Events of an
installation tenant are keyed by the tenant id: one partition, in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from base.github import GitHubInstallation
from schemas import identity as s
from schemas import people as p
from schemas.envelope import Envelope, new_envelope, uuid7
from schemas.events import EventType
from schemas.people import Repository
from state import identity_reads as qi
from state import people_reads as q
from state.command_context import IDENTITY, CommandContext

LOCK = "tenants"
KINDS: dict[str, s.TenantKind] = {"Organization": "organisation", "User": "user"}


@dataclass
class _Batch:
    """The events one command appends together (one append, so all or nothing)."""

    envelopes: list[Envelope] = field(default_factory=list)

    def add(self, type_: EventType, key: str, payload: object) -> None:
        self.envelopes.append(new_envelope(type_, s.encode(payload), key=key))


def _account_type(installation: GitHubInstallation) -> p.AccountType:
    if installation.account_type == "Organization":
        return "Organization"
    return "User"


async def _link(
    ctx: CommandContext, batch: _Batch, installation: GitHubInstallation, owner: str
) -> tuple[str, bool]:
    """(tenant id, whether it is new) for `installation`, adding to `batch` what links it.
    Call under the lock, caught up."""
    current = await asyncio.to_thread(q.installation_by_id, ctx.db, installation.id)
    known = current
    if known is None:
        known = await asyncio.to_thread(q.installation_of_account, ctx.db, installation.account_id)
    new = known is None
    tenant_id = uuid7() if known is None else known.tenant_id
    if current is None and known is not None and known.removed_at is None:
        # An account has one installation of the App: a new id means the old one is gone
        # (its uninstall webhook was missed).
        gone = p.InstallationRemoved(tenant_id, known.installation_id)
        batch.add("tenant.installation_removed.v1", tenant_id, gone)
    if new:
        kind = KINDS.get(installation.account_type, "user")
        created = s.TenantCreated(tenant_id, installation.account_login, kind, owner)
        batch.add("tenant.created.v1", tenant_id, created)
    linked = p.InstallationLinked(
        tenant_id=tenant_id,
        installation_id=installation.id,
        account_login=installation.account_login,
        account_id=installation.account_id,
        account_type=_account_type(installation),
        repository_selection=installation.repository_selection,
        avatar_url=installation.avatar_url,
    )
    if current is None or current.removed_at is not None or _changed(current, linked):
        batch.add("tenant.installation_linked.v1", tenant_id, linked)
    return tenant_id, new


def _changed(current: q.Installation, linked: p.InstallationLinked) -> bool:
    return (
        current.account_login,
        current.repository_selection,
        current.avatar_url,
    ) != (linked.account_login, linked.repository_selection, linked.avatar_url)


async def _add_member(
    ctx: CommandContext, batch: _Batch, tenant_id: str, developer: str, new: bool
) -> None:
    if new or not await asyncio.to_thread(qi.is_member, ctx.db, tenant_id, developer):
        member = s.TenantMemberAdded(tenant_id, developer, role="owner" if new else "member")
        batch.add("tenant.member_added.v1", tenant_id, member)


async def link_installation(
    ctx: CommandContext, installation: GitHubInstallation, linked_by: str | None
) -> str:
    """Link `installation` (already checked against GitHub) to its account's tenant, made if
    new; answer the tenant id. `linked_by` is a developer whose membership the caller has
    checked with GitHub: they become a member (the owner, if the tenant is new). None (a
    webhook linked it): no member is added, a new tenant's owner is the account login."""
    async with ctx.command(LOCK, IDENTITY):
        batch = _Batch()
        owner = installation.account_login if linked_by is None else linked_by
        tenant_id, new = await _link(ctx, batch, installation, owner)
        if linked_by is not None:
            await _add_member(ctx, batch, tenant_id, linked_by, new)
        if batch.envelopes:
            await ctx.append("apps", batch.envelopes, IDENTITY)
    return tenant_id


def _member_of(installation: GitHubInstallation, github_id: int) -> bool:
    """Whether GitHub listing `installation` for user `github_id` makes them a member: an
    organisation's, yes; a user account's only if it is theirs."""
    return installation.account_type == "Organization" or installation.account_id == github_id


async def sync_memberships(
    ctx: CommandContext, developer: str, github_id: int, installations: list[GitHubInstallation]
) -> None:
    """Make `developer` (GitHub account `github_id`) a member of exactly the installation
    tenants GitHub lists for them (`installations`, from /user/installations), linking
    installations not seen before (the developer owns a tenant made so); memberships of other
    installation tenants end (tenant.member_removed.v1). Personal tenants are never touched."""
    async with ctx.command(LOCK, IDENTITY):
        batch = _Batch()
        keep: set[str] = set()
        accounts = {i.account_id: i for i in installations}  # one installation per account
        for installation in accounts.values():
            tenant_id, new = await _link(ctx, batch, installation, developer)
            if _member_of(installation, github_id):
                keep.add(tenant_id)
                await _add_member(ctx, batch, tenant_id, developer, new)
        for tenant in await asyncio.to_thread(qi.tenants_of, ctx.db, developer):
            if tenant.kind != "personal" and tenant.id not in keep:
                removed = p.TenantMemberRemoved(tenant.id, developer)
                batch.add("tenant.member_removed.v1", tenant.id, removed)
        if batch.envelopes:
            await ctx.append("apps", batch.envelopes, IDENTITY)


async def remove_installation(ctx: CommandContext, installation_id: int) -> str | None:
    """Unlink an uninstalled installation; answer its tenant id (None if unknown). The tenant
    keeps its jobs and members; installing the App again links it anew."""
    async with ctx.command(LOCK, IDENTITY):
        known = await asyncio.to_thread(q.installation_by_id, ctx.db, installation_id)
        if known is None:
            return None
        if known.removed_at is None:
            removed = p.InstallationRemoved(known.tenant_id, installation_id)
            batch = _Batch()
            batch.add("tenant.installation_removed.v1", known.tenant_id, removed)
            await ctx.append("apps", batch.envelopes, IDENTITY)
    return known.tenant_id


async def change_repositories(
    ctx: CommandContext, installation_id: int, added: list[Repository], removed: list[Repository]
) -> None:
    """Record repositories added to or removed from a linked installation. An unknown or
    removed installation, or a change already recorded, appends nothing."""
    async with ctx.command(LOCK, IDENTITY):
        known = await asyncio.to_thread(q.installation_by_id, ctx.db, installation_id)
        if known is None or known.removed_at is not None:
            return
        have = dict(await asyncio.to_thread(q.repositories_of, ctx.db, installation_id))
        gone = {r.id for r in removed}
        new = tuple(r for r in added if r.id not in gone and have.get(r.id) != r.full_name)
        dropped = tuple(r for r in removed if r.id in have)
        if new or dropped:
            changed = p.RepositoriesChanged(known.tenant_id, installation_id, new, dropped)
            batch = _Batch()
            batch.add("tenant.repositories_changed.v1", known.tenant_id, changed)
            await ctx.append("apps", batch.envelopes, IDENTITY)
