"""The event log interface. The SQLite and Kafka adapters both pass tests/conformance/log.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from schemas.envelope import Envelope
from schemas.events import Topic


@dataclass(frozen=True, slots=True)
class Position:
    topic: Topic
    partition: int
    offset: int


class Record(NamedTuple):
    """Immutable; a NamedTuple for the same reason as Envelope (built per record read)."""

    topic: Topic
    partition: int
    offset: int
    envelope: Envelope


class Span(NamedTuple):
    """A run of consecutive offsets of one partition: first..last, both included."""

    topic: Topic
    partition: int
    first: int
    last: int


def chunks(records: Sequence[Record]) -> list[list[Record]]:
    """A poll's records split by topic and partition. A poll returns each partition's
    records in offset order already, so grouping keeps that order and nothing is sorted (a
    sort of every batch cost the projector loop half a microsecond a record)."""
    grouped: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        key = (record.topic, record.partition)
        chunk = grouped.get(key)
        if chunk is None:
            grouped[key] = [record]
        else:
            chunk.append(record)
    return list(grouped.values())


def span_of(chunk: Sequence[Record]) -> Span:
    """The span of one topic-partition's records in offset order (a chunk)."""
    return Span(chunk[0].topic, chunk[0].partition, chunk[0].offset, chunk[-1].offset)


def spans_of(records: Sequence[Record]) -> list[Span]:
    """The span each partition's records of a poll cover."""
    return [span_of(chunk) for chunk in chunks(records)]


class JsonBatch(NamedTuple):
    """Records of one span as JSON lines (JSONEachRow) made by the log itself, one object per
    record: `offset`, `id`, `type`, `app`, `received_at` (µs) and `payload`, the payload as
    the JSON value it holds (null when it is not valid JSON).

    For projections whose transform runs in the analytics engine: no record becomes a Python
    object on the way."""

    span: Span
    records: int
    apps: list[str]
    """The distinct apps of the records (for per-app settings such as retention)."""
    lines: bytes


class EventLog(Protocol):
    async def start(self) -> None:
        """Connect; create the topics that do not exist yet. Raises Unavailable."""

    async def close(self) -> None:
        """Flush what was appended and release connections. Idempotent."""

    async def append(self, topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
        """Append envelopes and return only once every one of them is durable.

        Records with the same key keep their order. Many concurrent callers may share one
        write (group commit). Raises Unavailable when the log cannot take them within the
        configured timeout, Backpressure when too much is already in flight; in both cases the
        caller must assume nothing was appended and may retry (ids make retries idempotent
        downstream).
        """

    async def partitions(self, topic: Topic) -> list[int]:
        """The topic's partition numbers."""

    async def end_offset(self, topic: Topic, partition: int) -> int:
        """The offset the next appended record in this partition will get."""

    async def read(self, topic: Topic, partition: int, offset: int, limit: int) -> list[Record]:
        """Up to `limit` records at offsets >= `offset`, in order, without waiting."""

    async def set_committed(self, group: str, positions: Sequence[Position]) -> None:
        """Set `group`'s committed offsets: each position is the next offset it will read.

        Used by replay; the group must have no live members.
        """

    def consumer(self, group: str, topics: Sequence[Topic]) -> Consumer:
        """A member of consumer group `group` reading `topics` from the committed offsets."""


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Records after the last polled ones, waiting up to `timeout_s` for the first.

        Returns at most `max_records`, in offset order within each partition. After a restart
        or a rebalance, a partition whose last batch was begun but not committed is first
        delivered again as exactly that batch (same first and last offsets), so the sink's
        retried write carries the same deduplication token.
        """

    async def begin(self, spans: Sequence[Span]) -> None:
        """Record, before the sink writes them, how far these polled spans reach in each
        partition (`spans_of(records)` for a poll's records).

        Durable when it returns; does not move the committed offsets.
        """

    async def commit(self, spans: Sequence[Span]) -> None:
        """Mark everything up to and including these spans as processed for the group.

        Call only after the sink has the batch: after a crash, polling resumes right after
        the last committed offset, so uncommitted records are delivered again.
        """

    async def lag(self) -> int:
        """Records appended but not yet committed by this group, over its partitions."""

    async def close(self) -> None: ...


class JsonConsumer(Consumer, Protocol):
    """A consumer that can also deliver spans as JSON lines (the SQLite log can: SQLite's own
    JSON functions write them)."""

    async def poll_json(self, max_records: int, timeout_s: float) -> list[JsonBatch]:
        """As `poll`, records delivered as one JsonBatch per partition instead."""
