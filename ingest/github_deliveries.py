"""GitHub webhook deliveries as events: each accepted delivery is one
`github.delivery_received.v1` (schemas/people.DeliveryReceived) on the `apps` topic, so its
`X-GitHub-Delivery` id is known after a replay of the log and a second copy changes nothing.

A delivery is recorded after what it did (jobs, installations): a crash in between leaves it
unrecorded, and GitHub's redelivery does the work again, which is idempotent (the jobs of a
push have UUIDs derived from the delivery: ingest/github_push.py).
"""

from __future__ import annotations

import asyncio

from schemas import identity
from schemas.envelope import Envelope, new_envelope
from schemas.people import DeliveryReceived
from state import people_reads as q
from state.command_context import IDENTITY, CommandContext


def envelope(received: DeliveryReceived, key: str | None = None) -> Envelope:
    """The delivery's event, keyed by its tenant when it has one (that tenant's events stay in
    order), else by the delivery."""
    payload = identity.encode(received)
    return new_envelope("github.delivery_received.v1", payload, key=key or received.delivery_id)


async def seen(ctx: CommandContext, delivery_id: str) -> bool:
    """Whether the delivery was recorded (the projection caught up first)."""
    await ctx.catch_up(IDENTITY)
    return await asyncio.to_thread(q.delivery_seen, ctx.db, delivery_id)


async def record(ctx: CommandContext, received: DeliveryReceived, key: str | None = None) -> bool:
    """Record the delivery unless a copy of it was recorded first (False then), under the
    delivery's command so that of two copies arriving together one only is recorded."""
    async with ctx.command(f"github-delivery:{received.delivery_id}", IDENTITY):
        if await asyncio.to_thread(q.delivery_seen, ctx.db, received.delivery_id):
            return False
        await ctx.append("apps", [envelope(received, key)], IDENTITY)
    return True
