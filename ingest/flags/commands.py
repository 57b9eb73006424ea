"""Flag commands: define (create or replace) and delete an app's flag definitions.

Each runs as every command does (state/command_context.py), under a command lock per app's flags:
catch the flags projection up, validate against that state, append the event, catch up again
so the answer (and the next read) sees it. The developer must own the app. The CLI and the
HTTP resources call the same functions.
"""

from __future__ import annotations

import asyncio
from typing import Any

from base.client_errors import ConflictError, Forbidden, NotFound, Unprocessable
from schemas.envelope import new_envelope
from schemas.events import EventType
from schemas.flags.definitions import NAME, FlagError, flag_to_json, parse_flag
from schemas.flags.events import FlagDefined, FlagDeleted, encode
from state import identity_reads as q
from state.command_context import FLAGS, IDENTITY, CommandContext
from state.flags import reads as fq

MAX_FLAGS_PER_APP = 1000


def invalid(exc: FlagError) -> Unprocessable:
    """A FlagError as the 422 every endpoint answers; the empty path is the body itself."""
    return Unprocessable(exc.message, field=exc.field or None, code="invalid_flag")


async def owned_app(ctx: CommandContext, developer: str, app: str) -> None:
    """404 if there is no such app, 403 if another developer owns it."""
    await ctx.catch_up(IDENTITY)
    found = await asyncio.to_thread(q.app_named, ctx.db, app)
    if found is None:
        raise NotFound(f"no app named {app!r}", field="app")
    if found.developer != developer:
        raise Forbidden(f"app {app!r} belongs to another developer", field="app")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise Unprocessable(
            "flag names are 1-128 letters, digits, '_', '.' or '-', starting with a letter or "
            "digit",
            field="name",
        )
    return name


async def _append(ctx: CommandContext, type_: EventType, app: str, payload: object) -> None:
    await ctx.append("flags", [new_envelope(type_, encode(payload), key=app, app=app)], FLAGS)


async def set_flag(
    ctx: CommandContext, developer: str, app: str, name: str, body: object
) -> tuple[bool, dict[str, Any]]:
    """Create or replace a definition; returns (created, the stored flag). The body's `name`
    may be left out; if given it must be the URL's. Setting what is already there appends
    nothing (and leaves the ETag of GET /v1/flags unchanged)."""
    await owned_app(ctx, developer, app)
    check_name(name)
    if not isinstance(body, dict):
        raise Unprocessable("the definition must be a JSON object", code="invalid_flag")
    if "name" in body and body["name"] != name:
        raise Unprocessable(
            f"the body names flag {body['name']!r} but the URL names {name!r}", field="name"
        )
    try:
        definition = parse_flag({**body, "name": name})
    except FlagError as exc:
        raise invalid(exc) from None
    async with ctx.command(f"flags:{app}", FLAGS):
        current = await asyncio.to_thread(fq.flag_named, ctx.db, app, name)
        if current is not None and current.definition == definition:
            return False, fq.flag_json(current)
        if current is None:
            count = await asyncio.to_thread(fq.flag_count, ctx.db, app)
            if count >= MAX_FLAGS_PER_APP:
                raise ConflictError(
                    f"app {app!r} already has {MAX_FLAGS_PER_APP} flags, the most allowed; "
                    "delete one first",
                    code="flag_limit",
                )
        event = FlagDefined(app=app, flag=flag_to_json(definition), developer=developer)
        await _append(ctx, "flag.defined.v1", app, event)
        stored = await asyncio.to_thread(fq.flag_named, ctx.db, app, name)
    assert stored is not None, "the projection has caught up with the append"
    return current is None, fq.flag_json(stored)


async def delete_flag(ctx: CommandContext, developer: str, app: str, name: str) -> dict[str, Any]:
    await owned_app(ctx, developer, app)
    async with ctx.command(f"flags:{app}", FLAGS):
        if await asyncio.to_thread(fq.flag_named, ctx.db, app, name) is None:
            raise NotFound(f"app {app!r} has no flag named {name!r}", field="name")
        await _append(ctx, "flag.deleted.v1", app, FlagDeleted(app, name, developer))
    return {"app": app, "deleted": name}


async def list_flags(ctx: CommandContext, developer: str, app: str) -> dict[str, Any]:
    await owned_app(ctx, developer, app)
    await ctx.catch_up(FLAGS)
    flags = await asyncio.to_thread(fq.flags_of, ctx.db, app)
    return {"app": app, "flags": [fq.flag_json(f) for f in flags]}
