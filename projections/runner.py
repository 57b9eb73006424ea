"""Drive an analytics projection: poll a batch, transform, write, then commit the offsets.

Per topic-partition span of a batch:
  1. `consumer.begin([span])` records how far the span reaches (durably);
  2. every table's rows are inserted, marked with the log range they come from and with a
     deduplication token naming the projection, the table and that range, e.g.
     `telemetry:telemetry_events:telemetry:0:1200-1399` (projections/sink.py);
  3. `consumer.commit([span])`.
A crash after 1 and before 3 makes the consumer deliver exactly that span again on restart.
The first span the runner writes in a partition, and any write retried after a failure, is
written `checked`: the rows' markers say what of it is already in the store, and only what is
missing is written (sink.py). The engine's own deduplication is not trusted for that: after
a crash it may remember a block whose part it lost.

The records of a span are transformed and inserted in PARTS parts at once (each part's
rows one block per table, its token naming the part's own range): one insert keeps one
core busy, and the engine is what bounds a projector. The split depends only on the span's
records, so a span delivered again is split the same way and gets the same tokens. On a
disk too full for a part, the part is cut in halves until the pieces fit.

Two ways to the rows: records polled as Python objects and `projection.transform`, or, when
the projection can run its transform in the engine and the log can deliver JSON lines
(EngineProjection, JsonConsumer), the lines handed to the engine as they are. Both give the
same rows for a span, and the same tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, cast

from base.prometheus import LAG, PROJECTED
from projections import sink
from projections.interface import AnalyticsProjection, EngineProjection, Rows
from projections.parts import LinesPart, RecordsPart, cut
from projections.sink import Part
from storage.analytics import Analytics
from storage.errors import BadQuery, NoSpace, Unavailable
from storage.log import Consumer, EventLog, Position, Record
from storage.log.protocol import JsonBatch, JsonConsumer, Span, chunks, span_of

log = logging.getLogger(__name__)

RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)
LAG_EVERY_S = 1.0
PARTS = 2
"""Inserts of one span in flight at once. A constant, not a setting: a span replayed after a
crash must be split as it was before, or its tokens would differ."""


def group_name(projection: AnalyticsProjection) -> str:
    return f"hutch.{projection.name}"


def write_rows(
    analytics: Analytics, projection: AnalyticsProjection, chunk: Sequence[Record], rows: Rows
) -> int:
    """Insert a chunk's rows, one marked, deduplicated block per table; returns rows written."""
    part = RecordsPart(projection, chunk, rows)
    return sink.write(analytics, projection.name, part, checked=False)


def write_in_engine(analytics: Analytics, projection: EngineProjection, batch: JsonBatch) -> int:
    """Have the engine make and insert a JsonBatch's rows, one marked, deduplicated block per
    table; returns rows written."""
    return sink.write(analytics, projection.name, LinesPart(projection, batch), checked=False)


def ensure_tables(analytics: Analytics, projection: AnalyticsProjection) -> None:
    for statement in projection.ddl():
        analytics.execute(statement)
    for table in projection.tables:
        for statement in sink.table_statements(table):
            analytics.execute(statement)


def parts(chunk: Sequence[Record], count: int = PARTS) -> list[Sequence[Record]]:
    """A chunk cut into `count` contiguous parts as even as can be (fewer if it is short)."""
    return cut(chunk, count)


class _Piece(NamedTuple):
    """One topic-partition span of a poll, ready to be written."""

    span: Span
    records: int
    parts: tuple[Part, ...]
    """Written at once, each in a thread."""


class AnalyticsRunner:
    def __init__(
        self,
        projection: AnalyticsProjection,
        consumer: Consumer,
        analytics: Analytics,
        *,
        batch: int,
        linger_s: float,
        in_engine: bool = True,
    ) -> None:
        """`in_engine=False` keeps to the Python transform even where the engine path is
        offered (bench/projector.py compares the two)."""
        self.projection = projection
        self.consumer = consumer
        self.analytics = analytics
        self.batch = batch
        self.linger_s = linger_s
        self.in_engine = in_engine
        self._lag_checked = 0.0
        self._next: dict[tuple[str, int], int] = {}
        """Per topic and partition, the offset after the last span this runner committed."""

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, transform, write, commit, until `stop`.

        While one batch is being written (the engine works without the GIL), the next one
        is already polled and transformed, so Python and ClickHouse work at the same time.
        Its `begin` still waits for the previous commit. Polls are never merged: a batch
        delivered again after a crash is written with exactly its first boundaries, hence
        the same deduplication tokens.
        """
        await self.consumer.start()
        prepare = self._prepare_in_engine() or self._prepare
        try:
            batch = await prepare()
            while not stop.is_set():
                if not batch:
                    batch = await prepare()
                    continue
                writing = asyncio.create_task(self._write(batch, stop))
                full = sum(piece.records for piece in batch) >= self.batch
                following = await prepare() if full else []
                await writing
                await self._report_lag()
                if not full:
                    # A small batch: let the log fill a little before the next poll.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.linger_s)
                batch = following
        finally:
            await self.consumer.close()

    async def _prepare(self) -> list[_Piece]:
        """The next poll, split into topic-partition chunks, each with its rows."""
        records = await self.consumer.poll(self.batch, 1.0)
        if not records:
            return []
        return await asyncio.to_thread(
            lambda: [
                _Piece(
                    span_of(chunk),
                    len(chunk),
                    tuple(RecordsPart(self.projection, part) for part in parts(chunk)),
                )
                for chunk in chunks(records)
            ]
        )

    def _prepare_in_engine(self) -> Callable[[], Awaitable[list[_Piece]]] | None:
        """The engine path's `_prepare`, if both the projection and the log offer it."""
        engine_inserts = getattr(self.projection, "engine_inserts", None)
        poll_json = getattr(self.consumer, "poll_json", None)
        if not self.in_engine or engine_inserts is None or poll_json is None:
            return None
        projection = cast(EngineProjection, self.projection)
        consumer = cast(JsonConsumer, self.consumer)

        async def prepare() -> list[_Piece]:
            return [
                _Piece(batch.span, batch.records, (LinesPart(projection, batch),))
                for batch in await consumer.poll_json(self.batch, 1.0)
            ]

        return prepare

    async def _write(self, batch: list[_Piece], stop: asyncio.Event) -> None:
        for piece in batch:
            span = piece.span
            await self.consumer.begin([span])
            # A span that does not follow the last one this runner wrote in its partition may
            # have been begun by a writer that crashed: what it wrote is checked first.
            checked = self._next.get((span.topic, span.partition)) != span.first
            await asyncio.gather(*(self._write_part(part, checked, stop) for part in piece.parts))
            await self.consumer.commit([span])
            self._next[(span.topic, span.partition)] = span.last + 1
            PROJECTED.labels(self.projection.name).inc(piece.records)

    async def _write_part(self, part: Part, checked: bool, stop: asyncio.Event) -> None:
        """Write a part in a thread: retried while the store is unavailable, checked then
        (the failed write may have landed, in part); cut in halves while the disk is too
        full for it; skipped where the engine refuses the rows as invalid.

        Pieces are written in order, each once it fits: after the first that fits, the rest
        are its larger siblings, so the writes grow back to the part's size."""
        pending = [(part, checked)]
        attempt = 0
        while pending:
            piece, piece_checked = pending[0]
            try:
                await asyncio.to_thread(
                    sink.write, self.analytics, self.projection.name, piece, checked=piece_checked
                )
                pending.pop(0)
                attempt = 0
            except Unavailable as exc:
                halves = piece.halves() if isinstance(exc, NoSpace) else [piece]
                pending[0:1] = [(half, True) for half in halves]
                if len(halves) > 1:
                    delay = 0.0  # a smaller write may fit now: try at once
                else:
                    delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                    attempt += 1
                log.warning(
                    "analytics store unavailable; retrying the same records",
                    extra={
                        "projection": self.projection.name,
                        "first_offset": piece.span.first,
                        "last_offset": piece.span.last,
                        "pieces": len(halves),
                        "error": str(exc)[:2000],
                        "in_s": delay,
                    },
                )
                if stop.is_set():
                    raise
                await asyncio.sleep(delay)
            except BadQuery as exc:
                # The engine refuses these rows: keep the rest of the log moving. The records
                # stay in the log; fix the projection and replay to get them back.
                log.error(
                    "analytics store refused a batch; skipping it",
                    extra={
                        "projection": self.projection.name,
                        "first_offset": piece.span.first,
                        "last_offset": piece.span.last,
                        "error": str(exc)[:2000],
                    },
                )
                pending.pop(0)

    async def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_checked < LAG_EVERY_S:
            return
        self._lag_checked = now
        with contextlib.suppress(Unavailable):
            LAG.labels(self.projection.name).set(await self.consumer.lag())


async def rebuild(
    log_: EventLog, analytics: Analytics, projection: AnalyticsProjection, *, batch: int
) -> int:
    """Drop the projection's tables, rebuild them from the whole log, and leave its consumer
    group committed at the end. The live projector must be stopped meanwhile."""
    for table in reversed(projection.tables):
        await asyncio.to_thread(analytics.execute, f"DROP TABLE IF EXISTS {table}")
    await asyncio.to_thread(ensure_tables, analytics, projection)
    total = 0
    ends: list[Position] = []
    for topic in projection.topics:
        for partition in await log_.partitions(topic):
            end = await log_.end_offset(topic, partition)
            offset = 0
            while offset < end:
                records = await log_.read(topic, partition, offset, min(batch, end - offset))
                if not records:
                    break
                rows = projection.transform(records)
                total += await asyncio.to_thread(write_rows, analytics, projection, records, rows)
                offset = records[-1].offset + 1
            ends.append(Position(topic, partition, end))
    await log_.set_committed(group_name(projection), ends)
    return total
