"""Relational projections: log records applied to SQL tables exactly once, in log order.

Each batch is applied in one transaction together with its tracking record (the next offset
per projection, topic and partition, in `projection_positions`). A record is applied only if
its offset is at or past the tracked one, so two processes catching up at once — the
background projector and a command handler wanting to read its own write — never apply a
record twice, and a crash rolls rows and position back together.

Events are facts: validation happened in the command that appended them (ingest/commands),
under the command lock, so applying never refuses one. Replay gives the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from schemas.events import Topic
from storage.log import EventLog, Record
from storage.relational import Relational, Transaction

log = logging.getLogger(__name__)

READ_BATCH = 1000


class RelationalProjection(Protocol):
    name: str
    topics: tuple[Topic, ...]
    tables: tuple[str, ...]
    """Tables it owns; replay empties them."""

    def apply(self, tx: Transaction, record: Record) -> None:
        """Apply one record's effect. Must not raise for a well-formed fact; a malformed
        record is skipped (and logged) so it cannot stop the projection."""


def position(db: Relational | Transaction, projection: str, topic: Topic, partition: int) -> int:
    row = db.fetchone(
        "SELECT next_offset FROM projection_positions "
        "WHERE projection = :p AND topic = :t AND partition = :n",
        {"p": projection, "t": topic, "n": partition},
    )
    return 0 if row is None else int(row[0])


def _lock_position(tx: Transaction, projection: str, topic: Topic, partition: int) -> int:
    """Read the tracked offset inside `tx`, holding the row against concurrent appliers."""
    # One statement: the upsert takes the row lock on PostgreSQL (waiting for a concurrent
    # applier, then answering the offset it committed); SQLite's BEGIN IMMEDIATE already
    # holds one.
    row = tx.fetchone(
        "INSERT INTO projection_positions (projection, topic, partition, next_offset) "
        "VALUES (:p, :t, :n, 0) ON CONFLICT (projection, topic, partition) "
        "DO UPDATE SET next_offset = projection_positions.next_offset RETURNING next_offset",
        {"p": projection, "t": topic, "n": partition},
    )
    assert row is not None
    return int(row[0])


def apply_batch(db: Relational, projection: RelationalProjection, records: Sequence[Record]) -> int:
    """Apply the records not applied yet (one topic-partition, in order); returns how many."""
    if not records:
        return 0
    topic, partition = records[0].topic, records[0].partition
    applied = 0
    with db.transaction() as tx:
        current = _lock_position(tx, projection.name, topic, partition)
        for record in records:
            if record.offset < current:
                continue
            projection.apply(tx, record)
            current = record.offset + 1
            applied += 1
        if applied:
            tx.execute(
                "UPDATE projection_positions SET next_offset = :o "
                "WHERE projection = :p AND topic = :t AND partition = :n",
                {"o": current, "p": projection.name, "t": topic, "n": partition},
            )
    return applied


async def catch_up(log_: EventLog, db: Relational, projection: RelationalProjection) -> int:
    """Apply everything appended so far. Safe to call from many places at once."""
    applied = 0
    for topic in projection.topics:
        for partition in await log_.partitions(topic):
            while True:
                start = await asyncio.to_thread(position, db, projection.name, topic, partition)
                records = await log_.read(topic, partition, start, READ_BATCH)
                if not records:
                    break
                applied += await asyncio.to_thread(apply_batch, db, projection, records)
                if len(records) < READ_BATCH:
                    # That read reached the end of the log as it was then: what this catch-up
                    # owes its caller. Asking again would cost two more round trips.
                    break
    return applied


async def run_forever(
    log_: EventLog,
    db: Relational,
    projections: Sequence[RelationalProjection],
    *,
    idle_s: float = 0.05,
    stop: asyncio.Event,
) -> None:
    """The background relational projector: catch up, rest a moment when idle, repeat."""
    while not stop.is_set():
        applied = 0
        for projection in projections:
            try:
                applied += await catch_up(log_, db, projection)
            except Exception:
                log.exception("relational projection failed", extra={"projection": projection.name})
                await asyncio.sleep(1.0)
        if not applied:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_s)


async def rebuild(log_: EventLog, db: Relational, projection: RelationalProjection) -> int:
    """Empty the projection's tables and positions, then apply the whole log again."""

    def reset() -> None:
        with db.transaction() as tx:
            for table in projection.tables:
                tx.execute(f"DELETE FROM {table}")
            tx.execute(
                "DELETE FROM projection_positions WHERE projection = :p", {"p": projection.name}
            )

    await asyncio.to_thread(reset)
    return await catch_up(log_, db, projection)
