"""Identity commands: create developers, apps (with their secret) and API tokens; rotate an
app's secret; revoke tokens and an app's previous secrets.

Each command runs as every command does (state/command_context.py: lock, catch up, validate, append,
catch up), and first checks that the caller's token is still live in the caught-up store
(`confirm`: no cache, so a token revoked by a command that has answered can change nothing).
The CLI and the HTTP resources call the same functions; the CLI's caller is the operator, a
`Developer` without a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable
from typing import Any

from base.client_errors import ConflictError, Forbidden, NotFound, Unprocessable
from base.git_remote import parse_remote
from base.net_guard import parse_allowed_networks
from schemas import identity as s
from schemas.envelope import Envelope, iso_micros, new_envelope, now_micros, uuid7
from schemas.events import EventType
from schemas.publish.app_sources import AppSourceSet
from state import identity_reads as q
from state.command_context import IDENTITY, CommandContext
from state.ssh_keys import source_repository
from web.auth import Developer, confirm


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not s.NAME.match(value):
        raise Unprocessable(
            f"{field} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter "
            "or digit",
            field=field,
        )
    return value


def _caller(developer: Developer | str) -> Developer:
    """A bare name is a caller without a token to re-check: the operator, or a command that
    authenticated its caller itself."""
    return developer if isinstance(developer, Developer) else Developer(developer)


def _confirmed(ctx: CommandContext, caller: Developer) -> Awaitable[None]:
    """Refuse a caller whose token is no longer live in the store (read after catching up)."""
    return asyncio.to_thread(confirm, ctx.db, caller)


async def _append(ctx: CommandContext, type_: EventType, key: str, payload: object) -> None:
    envelope = new_envelope(type_, s.encode(payload), key=key)
    await ctx.append("apps", [envelope], IDENTITY)


async def create_developer(ctx: CommandContext, name: object) -> dict[str, Any]:
    name = _check_name(name, "name")
    async with ctx.command(f"developer:{name}", IDENTITY):
        if await asyncio.to_thread(q.developer_exists, ctx.db, name):
            raise ConflictError(f"developer {name!r} already exists", field="name")
        envelopes, tenant = new_developer(name)
        await ctx.append("apps", envelopes, IDENTITY)
    return {"developer": name, "tenant": tenant}


def new_developer(name: str) -> tuple[list[Envelope], str]:
    """The events that make developer `name` with their personal tenant, and that tenant's
    id. Append them (with any of the caller's own, in one batch) under the developer's
    command, once the name is known to be free: the CLI's `developer create` and the
    sign-in with GitHub (ingest/sign_in_commands.py) both make developers so."""
    tenant = s.TenantCreated(id=uuid7(), name=name, kind="personal", owner=name)
    member = s.TenantMemberAdded(tenant.id, name, role="owner")
    envelopes = [
        new_envelope("developer.created.v1", s.encode(s.DeveloperCreated(name)), key=name),
        new_envelope("tenant.created.v1", s.encode(tenant), key=name),
        new_envelope("tenant.member_added.v1", s.encode(member), key=name),
    ]
    return envelopes, tenant.id


async def _personal_tenant(ctx: CommandContext, developer: str) -> str:
    """The developer's personal tenant, made now if they have none (developers made before
    tenants existed). Call under the developer's command."""
    found = await asyncio.to_thread(q.personal_tenant, ctx.db, developer)
    if found is not None:
        return found.id
    tenant = s.TenantCreated(id=uuid7(), name=developer, kind="personal", owner=developer)
    member = s.TenantMemberAdded(tenant.id, developer, role="owner")
    envelopes = [
        new_envelope("tenant.created.v1", s.encode(tenant), key=developer),
        new_envelope("tenant.member_added.v1", s.encode(member), key=developer),
    ]
    await ctx.append("apps", envelopes, IDENTITY)
    return tenant.id


async def personal_tenant(ctx: CommandContext, developer: str) -> str:
    """The id of the developer's personal tenant (made if missing)."""
    found = await asyncio.to_thread(q.personal_tenant, ctx.db, developer)
    if found is not None:
        return found.id
    async with ctx.command(f"developer:{developer}", IDENTITY):
        return await _personal_tenant(ctx, developer)


def _check_retention(days: object) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
        raise Unprocessable(
            "retentionDays must be an integer from 1 to 3650", field="retentionDays"
        )
    return days


async def create_app(
    ctx: CommandContext, name: object, developer: Developer | str, retention_days: object = None
) -> dict[str, Any]:
    caller = _caller(developer)
    developer = caller.name
    name = _check_name(name, "name")
    days = _check_retention(
        ctx.settings.retention_days if retention_days is None else retention_days
    )
    secret = "hs_" + secrets.token_hex(32)
    async with ctx.command(f"app:{name}", IDENTITY):
        await _confirmed(ctx, caller)
        if not await asyncio.to_thread(q.developer_exists, ctx.db, developer):
            raise NotFound(f"no developer named {developer!r}", field="developer")
        if await asyncio.to_thread(q.app_named, ctx.db, name) is not None:
            raise ConflictError(f"an app named {name!r} already exists", field="name")
        await _append(
            ctx, "app.created.v1", name, s.AppCreated(name, developer, digest(secret), days)
        )
    return {"app": name, "secret": secret, "retentionDays": days}


async def _owned(ctx: CommandContext, caller: Developer, app: str) -> q.App:
    """The caller's app (read under its command, caught up): 404 if no such app, 403 if
    another's."""
    await _confirmed(ctx, caller)
    found = await asyncio.to_thread(q.app_named, ctx.db, app)
    if found is None:
        raise NotFound(f"no app named {app!r}")
    if found.developer != caller.name:
        raise Forbidden(f"app {app!r} belongs to another developer")
    return found


async def set_retention(
    ctx: CommandContext, developer: Developer | str, app: str, retention_days: object
) -> dict[str, Any]:
    """Change how long an app's analytics rows are kept. Rows projected from now on carry the
    new retention; a replay applies it to every row."""
    days = _check_retention(retention_days)
    async with ctx.command(f"app:{app}", IDENTITY):
        found = await _owned(ctx, _caller(developer), app)
        if found.retention_days != days:
            await _append(ctx, "app.retention_set.v1", app, s.AppRetentionSet(app, days))
    return {"app": app, "retentionDays": days}


def check_source_repository(ctx: CommandContext, repository: object) -> str | None:
    """A source repository Hutch will read (base/git_remote.py: https://, ssh:// or scp-like,
    no credentials, no address the builder's guard refuses by its text); None clears it."""
    if repository is None:
        return None
    allowed = parse_allowed_networks(ctx.settings.builder_allow_networks)
    try:
        return parse_remote(repository, allowed).url
    except ValueError as exc:
        raise Unprocessable(
            f"sourceRepository {exc}", field="sourceRepository", code="bad_repository"
        ) from None


async def set_source_repository(
    ctx: CommandContext, developer: Developer | str, app: str, repository: object
) -> dict[str, Any]:
    """Set (or, with None, clear) the git repository `GET /api/branches?app=` lists."""
    url = check_source_repository(ctx, repository)
    async with ctx.command(f"app:{app}", IDENTITY):
        await _owned(ctx, _caller(developer), app)
        if await asyncio.to_thread(source_repository, ctx.db, app) != url:
            await _append(ctx, "app.source_set.v1", app, AppSourceSet(app, url))
    return {"app": app, "sourceRepository": url}


async def create_token(
    ctx: CommandContext,
    developer: Developer | str,
    label: object = None,
    expires: object = "never",
    scopes: object = None,
) -> dict[str, Any]:
    caller = _caller(developer)
    developer = caller.name
    try:
        limited = s.parse_scopes(scopes)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="scopes") from None
    label = "default" if label is None else label
    if not isinstance(label, str) or not 1 <= len(label) <= 64:
        raise Unprocessable("name must be a string of 1 to 64 characters", field="name")
    # Checked as a string first: `in` on a dict hashes its operand, and a list cannot be.
    if not isinstance(expires, str) or expires not in s.TOKEN_EXPIRY_DAYS:
        raise Unprocessable(
            "expires must be one of " + ", ".join(s.TOKEN_EXPIRY_DAYS), field="expires"
        )
    days = s.TOKEN_EXPIRY_DAYS[expires]
    token = "bh_" + secrets.token_hex(32)
    async with ctx.command(f"developer:{developer}", IDENTITY):
        await _confirmed(ctx, caller)
        if not await asyncio.to_thread(q.developer_exists, ctx.db, developer):
            raise NotFound(f"no developer named {developer!r}", field="developer")
        now = now_micros()
        tokens = await asyncio.to_thread(q.tokens_of, ctx.db, developer)
        live = [t for t in tokens if t.live(now)]
        if len(live) >= s.MAX_LIVE_TOKENS:
            raise ConflictError(
                f"developer {developer!r} already has {s.MAX_LIVE_TOKENS} live tokens, the "
                "most allowed; revoke one first",
                code="token_limit",
            )
        expires_at = None if days is None else now + days * 86_400_000_000
        created = s.TokenCreated(
            id=uuid7(),
            developer=developer,
            name=label,
            token_hash=digest(token),
            prefix=token[:10],
            expires_at=expires_at,
            scopes=limited,
        )
        await _append(ctx, "token.created.v1", developer, created)
    return {
        "token": token,
        "id": created.id,
        "name": label,
        "expires": expires,
        "expiresAt": None if expires_at is None else iso_micros(expires_at),
        "scopes": None if limited is None else list(limited),
    }


async def revoke_token(
    ctx: CommandContext, developer: Developer | str, token_id: str
) -> dict[str, Any]:
    caller = _caller(developer)
    developer = caller.name
    async with ctx.command(f"developer:{developer}", IDENTITY):
        await _confirmed(ctx, caller)
        token = await asyncio.to_thread(q.token_by_id, ctx.db, token_id)
        if token is None or token.developer != developer:
            raise NotFound(f"no token {token_id!r} among yours")
        if token.revoked_at is not None:
            return {"revoked": token_id}
        await _append(ctx, "token.revoked.v1", developer, s.TokenRevoked(token_id, developer))
    return {"revoked": token_id}


def _check_grace(grace: object) -> int:
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= s.MAX_GRACE_S:
        raise Unprocessable(
            f"graceSeconds must be an integer from 0 to {s.MAX_GRACE_S}", field="graceSeconds"
        )
    return grace


async def rotate_secret(
    ctx: CommandContext, developer: Developer | str, app: str, grace_seconds: object = 0
) -> dict[str, Any]:
    """Give the app a new secret (answered once); its earlier secrets keep working for
    `grace_seconds` more (0: they stop now), so clients can move over without a gap."""
    grace = _check_grace(grace_seconds)
    secret = "hs_" + secrets.token_hex(32)
    async with ctx.command(f"app:{app}", IDENTITY):
        await _owned(ctx, _caller(developer), app)
        until = now_micros() + grace * 1_000_000
        rotated = s.AppSecretRotated(app, digest(secret), previous_expires_at=until)
        await _append(ctx, "app.secret_rotated.v1", app, rotated)
    return {
        "app": app,
        "secret": secret,
        "graceSeconds": grace,
        "previousExpiresAt": iso_micros(until),
    }


async def revoke_previous_secrets(
    ctx: CommandContext, developer: Developer | str, app: str
) -> dict[str, Any]:
    """End the grace period of the app's earlier secrets now; the current one keeps working."""
    async with ctx.command(f"app:{app}", IDENTITY):
        await _owned(ctx, _caller(developer), app)
        live = await asyncio.to_thread(q.previous_secrets_live, ctx.db, app, now_micros())
        if live:
            await _append(
                ctx, "app.previous_secrets_revoked.v1", app, s.AppPreviousSecretsRevoked(app)
            )
    return {"app": app, "previousSecretsRevoked": live}
