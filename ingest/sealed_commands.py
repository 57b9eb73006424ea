"""The commands of what a developer owns sealed (base/secret_box.py): CI job secrets
(ingest/secret_commands.py) and publishing SSH keys (ingest/publish/ssh_keys.py). Each is
added under its owner's command lock within a limit, and deleted only by its owner (another's,
like a missing one, is a 404); the caller's token or session is re-checked there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from base.client_errors import ConflictError, NotFound
from schemas.envelope import new_envelope
from schemas.events import EventType
from schemas.identity import encode
from state import identity_reads as q
from state.command_context import IDENTITY, CommandContext
from storage.relational import Relational, Transaction
from web.auth import Developer, confirm

T = TypeVar("T")
Reader = Relational | Transaction


def caller_of(developer: Developer | str) -> Developer:
    """A bare name is a caller without a token to re-check (the operator at the CLI)."""
    return developer if isinstance(developer, Developer) else Developer(developer)


async def confirmed(ctx: CommandContext, caller: Developer) -> None:
    await asyncio.to_thread(confirm, ctx.db, caller)
    if not await asyncio.to_thread(q.developer_exists, ctx.db, caller.name):
        raise NotFound(f"no developer named {caller.name!r}", field="developer")


async def add_sealed(
    ctx: CommandContext,
    caller: Developer,
    *,
    what: str,
    limit: int,
    live: Callable[[Reader, str], Sequence[object]],
    event: EventType,
    payload: object,
    stored: Callable[[Reader], T | None],
) -> T:
    """Append `event` for the caller unless they already have `limit` live `what`s (409);
    answer the stored thing (`stored`, read once the projection holds the event)."""
    async with ctx.command(f"developer:{caller.name}", IDENTITY):
        await confirmed(ctx, caller)
        if len(await asyncio.to_thread(live, ctx.db, caller.name)) >= limit:
            raise ConflictError(
                f"developer {caller.name!r} already has {limit} {what}s, the most allowed; "
                "delete one first",
                code=f"{what.replace(' ', '_').lower()}_limit",
            )
        await ctx.append("apps", [new_envelope(event, encode(payload), key=caller.name)], IDENTITY)
        found = await asyncio.to_thread(stored, ctx.db)
    assert found is not None, "the projection caught up with its own append"
    return found


async def delete_sealed(
    ctx: CommandContext,
    caller: Developer,
    *,
    what: str,
    owner_of: Callable[[Reader], str | None],
    event: EventType,
    payload: object,
    field: str | None = None,
) -> None:
    """Append `event` if the thing `owner_of` finds is the caller's; else 404."""
    async with ctx.command(f"developer:{caller.name}", IDENTITY):
        await confirmed(ctx, caller)
        if await asyncio.to_thread(owner_of, ctx.db) != caller.name:
            raise NotFound(f"no {what} among yours", field=field)
        await ctx.append("apps", [new_envelope(event, encode(payload), key=caller.name)], IDENTITY)
