"""Drive an analytics projection: poll a batch, transform, write, then commit the offsets.

Per topic-partition span of a batch:
  1. `consumer.begin([span])` records how far the span reaches (durably);
  2. every table's rows are inserted with a deduplication token naming the projection, the
     table and the log range, e.g. `telemetry:telemetry_events:telemetry:0:1200-1399`;
  3. `consumer.commit([span])`.
A crash after 2 and before 3 makes the consumer deliver exactly that span again on restart
(step 1), the rows come out the same (transforms are pure), the tokens are the same, and
ClickHouse drops the repeated blocks: no duplicates and nothing lost.

The records of a span are transformed and inserted in PARTS parts at once (each part's
rows one block per table, its token naming the part's own range): one insert keeps one
core busy, and the engine is what bounds a projector. The split depends only on the span's
records, so a span delivered again is split the same way and gets the same tokens.

Two ways to the rows: records polled as Python objects and `projection.transform`, or, when
the projection can run its transform in the engine and the log can deliver JSON lines
(EngineProjection, JsonConsumer), the lines handed to the engine as they are. Both give the
same rows for a span, and the same tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, cast

from hutch.metrics import LAG, PROJECTED
from projections.base import AnalyticsProjection, EngineProjection, Rows
from storage.analytics import Analytics
from storage.analytics.protocol import RowBinary
from storage.errors import BadQuery, Unavailable
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
    """Insert a chunk's rows, one deduplicated block per table; returns rows written."""
    span = span_of(chunk)
    written = 0
    for table in projection.tables:
        block = rows.get(table)
        if not block:
            continue
        token = dedup_token(projection, table, span)
        if isinstance(block, RowBinary):
            written += analytics.insert_row_binary(table, block, dedup_token=token)
        else:
            written += analytics.insert(table, block, dedup_token=token)
    return written


def write_in_engine(analytics: Analytics, projection: EngineProjection, batch: JsonBatch) -> int:
    """Have the engine make and insert a JsonBatch's rows, one deduplicated block per table;
    returns rows written."""
    written = 0
    for insert in projection.engine_inserts(batch):
        token = dedup_token(projection, insert.table, batch.span)
        rows = analytics.insert_json(insert, batch.lines, dedup_token=token)
        if rows < batch.records:
            # The Python transform logs each record it skips; the engine only counts.
            log.warning(
                "records of a span gave no row: malformed, or the span was written before",
                extra={
                    "projection": projection.name,
                    "table": insert.table,
                    "first_offset": batch.span.first,
                    "last_offset": batch.span.last,
                    "records": batch.records,
                    "rows": rows,
                },
            )
        written += rows
    return written


def dedup_token(projection: AnalyticsProjection, table: str, span: Span) -> str:
    """The insert deduplication token of one table's rows for one log span. The same span
    always gets the same token, whichever way its rows are written."""
    return f"{projection.name}:{table}:{span.topic}:{span.partition}:{span.first}-{span.last}"


async def write_with_retries(
    write: Callable[[], object], projection: str, span: Span, stop: asyncio.Event
) -> None:
    """Run a blocking sink write in a thread, retrying while the store is unavailable (the
    same write, so the same tokens) and skipping what the engine refuses as invalid."""
    attempt = 0
    while True:
        try:
            await asyncio.to_thread(write)
            return
        except Unavailable as exc:
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            attempt += 1
            log.warning(
                "analytics store unavailable; retrying the same batch",
                extra={"projection": projection, "error": str(exc), "in_s": delay},
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
                    "projection": projection,
                    "first_offset": span.first,
                    "last_offset": span.last,
                    "error": str(exc)[:2000],
                },
            )
            return


def ensure_tables(analytics: Analytics, projection: AnalyticsProjection) -> None:
    for statement in projection.ddl():
        analytics.execute(statement)


def parts(chunk: Sequence[Record], count: int = PARTS) -> list[Sequence[Record]]:
    """A chunk cut into `count` contiguous parts as even as can be (fewer if it is short)."""
    count = max(1, min(count, len(chunk)))
    size, extra = divmod(len(chunk), count)
    cuts = [0]
    for n in range(count):
        cuts.append(cuts[-1] + size + (1 if n < extra else 0))
    return [chunk[a:b] for a, b in itertools.pairwise(cuts)]


class _Piece(NamedTuple):
    """One topic-partition span of a poll, ready to be written."""

    span: Span
    records: int
    writes: tuple[Callable[[], object], ...]
    """Run at once, each in a thread: the inserts of the span's parts."""


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
                    tuple(
                        functools.partial(
                            write_rows,
                            self.analytics,
                            self.projection,
                            part,
                            self.projection.transform(part),
                        )
                        for part in parts(chunk)
                    ),
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
                _Piece(
                    batch.span,
                    batch.records,
                    (functools.partial(write_in_engine, self.analytics, projection, batch),),
                )
                for batch in await consumer.poll_json(self.batch, 1.0)
            ]

        return prepare

    async def _write(self, batch: list[_Piece], stop: asyncio.Event) -> None:
        for piece in batch:
            await self.consumer.begin([piece.span])
            await asyncio.gather(
                *(
                    write_with_retries(write, self.projection.name, piece.span, stop)
                    for write in piece.writes
                )
            )
            await self.consumer.commit([piece.span])
            PROJECTED.labels(self.projection.name).inc(piece.records)

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
