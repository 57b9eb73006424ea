"""The production event log: Kafka through aiokafka.

URL: `kafka://host:port[,host:port...]?name=value&...`, parameters (all optional):

- `partitions` (3): partitions of each topic this log creates; topics that exist are left as
  they are. A key always maps to the same partition (murmur2, as the Java client), so one
  aggregate stays in one partition, in order.
- `replication` (1): replication factor of the topics it creates.
- `prefix` (empty): put in front of every topic name (`t1a2b.` gives `t1a2b.otlp.traces`), so
  tests and several Hutch deployments can share one cluster.
- `linger_ms` (0): how long the producer waits to fill a batch. At 0 it still batches
  whatever arrives while the previous request to a broker is in flight (group commit).
- `compression` (`lz4` when the `aiokafka[lz4]` extra, i.e. cramjam, is installed, else
  `none`): `lz4`, `zstd`, `snappy`, `gzip` or `none`.
- `max_in_flight` (100000) and `max_in_flight_bytes` (268435456): records and bytes handed to
  the producer and not yet acknowledged; an append beyond either raises Backpressure at once.
- `max_record_bytes` (33554432): the largest record (OTLP bodies are appended whole and may
  be 20 MiB); set as the producer's request limit and as `max.message.bytes` of new topics.
- `timeout_ms` (10000): bound on connecting, admin calls, reads and offset commits.

Appends wait `append_timeout_s` (HUTCH_APPEND_TIMEOUT) for the acknowledgements.

Durability: an idempotent producer (`enable_idempotence`, hence `acks=all`); `append` returns
once the broker has acknowledged every record. When that takes longer than the timeout the
caller gets Unavailable, but records already handed to the producer stay there: an
idempotent producer never expires a batch, it retries until the broker takes it, so they may
still land later (without duplicates of their own). A client that retries after the 503 then
appends the same events again under new ids, and the projections deduplicate by event id only
within one batch token (`projection:table:topic:partition:first-last`), so such an event can
appear twice in the read models. That is at-least-once ingest when Kafka is failing; the ids
of the late copies are distinct, so they can be found. A producer whose sender has stopped for
good, or whose batches the broker refuses as out of order (both after a broker restart), is
replaced at the next append; what it still held was never acknowledged and is dropped.

Consumer groups are in storage/log/kafka_consumer.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, OffsetAndMetadata, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4
from aiokafka.errors import (
    CommitFailedError,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
    UnknownMemberIdError,
    UnknownProducerId,
    for_code,
)

from schemas.envelope import Envelope
from schemas.events import TOPICS, Topic
from storage.errors import Conflict, StorageError, Unavailable
from storage.log.kafka_consumer import KafkaConsumer
from storage.log.kafka_records import InFlight, decode, encode, kafka_call, stop_client
from storage.log.protocol import Position, Record

log = logging.getLogger(__name__)

COMPRESSIONS = ("lz4", "zstd", "snappy", "gzip", "none")
BATCH_BYTES = 1024 * 1024
"""Producer batch per partition; records arriving while one is full wait for it to drain."""


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap: tuple[str, ...]
    partitions: int = 3
    replication: int = 1
    prefix: str = ""
    linger_ms: int = 0
    compression: str = "auto"
    max_in_flight: int = 100_000
    max_in_flight_bytes: int = 256 * 1024 * 1024
    max_record_bytes: int = 32 * 1024 * 1024
    timeout_ms: int = 10_000

    @classmethod
    def from_url(cls, url: str) -> KafkaConfig:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"not a kafka://host:port URL: {url!r}")
        bootstrap = tuple(h.strip() for h in parts.netloc.split(",") if h.strip())
        ints = {
            "partitions", "replication", "linger_ms", "max_in_flight",
            "max_in_flight_bytes", "max_record_bytes", "timeout_ms",
        }  # fmt: skip
        values: dict[str, Any] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in ints:
                try:
                    values[name] = int(value)
                except ValueError:
                    message = f"kafka URL: {name} must be an integer, not {value!r}"
                    raise ValueError(message) from None
                if values[name] < (0 if name == "linger_ms" else 1):
                    raise ValueError(f"kafka URL: {name} is out of range: {value}")
            elif name == "prefix":
                values[name] = value
            elif name == "compression":
                if value not in (*COMPRESSIONS, "auto"):
                    raise ValueError(f"kafka URL: compression must be one of {COMPRESSIONS}")
                if value not in ("auto", "none", "gzip") and not has_lz4():
                    raise ValueError(f"kafka URL: {value} compression needs aiokafka[lz4]")
                values[name] = value
            else:
                raise ValueError(f"kafka URL: unknown parameter {name!r}")
        return cls(bootstrap=bootstrap, **values)

    @property
    def compression_type(self) -> str | None:
        chosen = self.compression
        if chosen == "auto":
            chosen = "lz4" if has_lz4() else "none"
        return None if chosen == "none" else chosen

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000


class KafkaLog:
    def __init__(self, config: KafkaConfig, *, append_timeout_s: float = 5.0) -> None:
        self.config = config
        self.append_timeout_s = append_timeout_s
        self._in_flight = InFlight(config.max_in_flight, config.max_in_flight_bytes)
        self._names = {topic: config.prefix + topic for topic in TOPICS}
        self._topics = {name: topic for topic, name in self._names.items()}
        self._admin: Any = None
        self._producer: Any = None
        self._reader: Any = None
        self._read_lock = asyncio.Lock()
        self._replacing = asyncio.Lock()
        self._stale: Any = None
        self._read_next: tuple[TopicPartition, int] | None = None

    @classmethod
    def from_url(cls, url: str, *, append_timeout_s: float = 5.0) -> KafkaLog:
        return cls(KafkaConfig.from_url(url), append_timeout_s=append_timeout_s)

    # -- names and shared clients, also used by KafkaConsumer ----------------------------------

    def name(self, topic: Topic) -> str:
        return self._names[topic]

    def topic(self, name: str) -> Topic:
        return self._topics[name]

    def client_options(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": list(self.config.bootstrap),
            "request_timeout_ms": self.config.timeout_ms,
        }

    def started(self) -> None:
        if self._producer is None:
            raise Unavailable("event log is not started")

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._producer is not None:
            return
        try:
            async with kafka_call("connecting to Kafka", self.config.timeout_s):
                self._admin = AIOKafkaAdminClient(**self.client_options())
                await self._admin.start()
                await self._create_topics()
                producer = self._new_producer()
                self._producer = producer  # set first, so close() stops a half-started one
                await self._start_producer(producer)
                self._reader = AIOKafkaConsumer(
                    **self.client_options(),
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=100,
                )
                await self._reader.start()
                # Let the reader's background task begin: aiokafka (0.14) raises
                # CancelledError from stop() if that task is cancelled before it ever ran.
                await asyncio.sleep(0)
        except Unavailable:
            await self.close()
            raise
        log.info(
            "kafka event log started",
            extra={"bootstrap": ",".join(self.config.bootstrap), "prefix": self.config.prefix},
        )

    def _new_producer(self) -> Any:
        return AIOKafkaProducer(
            **self.client_options(),
            enable_idempotence=True,
            compression_type=self.config.compression_type,
            linger_ms=self.config.linger_ms,
            max_batch_size=min(BATCH_BYTES, self.config.max_record_bytes),
            max_request_size=self.config.max_record_bytes,
        )

    async def _start_producer(self, producer: Any) -> None:
        await producer.start()
        for name in self._names.values():
            await producer.partitions_for(name)  # metadata in hand before appends

    def _delivering(self, producer: Any) -> bool:
        """Whether the producer still delivers (see _replaced); checked on every append,
        so without a coroutine."""
        return producer is not self._stale and _ended_sender(producer) is None

    async def _replaced(self, producer: Any) -> Any:
        """A new producer in place of one that stopped delivering. Two ways, with
        aiokafka 0.14:
        - the broker refuses the idempotent producer's batches as out of order (seen here
          after a broker restart); aiokafka neither bumps the epoch nor resets its sequence
          numbers, as the Java client does, so every later batch to that partition is
          refused too: each append fails at once, for good;
        - the sender task ends (aiokafka ends it on some producer-state errors): send()
          still takes records that will never leave, and every append times out.
        Their records were never acknowledged; a new producer (a new producer id, sequences
        from zero) takes the appends from here.
        """
        sender = _ended_sender(producer)
        async with self._replacing:
            if self._producer is not producer:
                return self._producer  # another append replaced it meanwhile
            if sender is not None:
                failure = "its sender ended: " + repr(
                    None if sender.cancelled() else sender.exception()
                )
            else:
                failure = "the broker refused its producer state"
            log.error(
                "kafka producer stopped delivering; starting a new one",
                extra={"error": failure, "records_dropped": self._in_flight.records},
            )
            fresh = self._new_producer()
            try:
                async with kafka_call("restarting the producer", self.config.timeout_s):
                    await self._start_producer(fresh)
            except Unavailable:
                await _abort_producer(fresh)
                raise
            self._producer, self._stale = fresh, None
            self._in_flight = InFlight(self.config.max_in_flight, self.config.max_in_flight_bytes)
        await _abort_producer(producer)
        return fresh

    async def _create_topics(self) -> None:
        existing = set(await self._admin.list_topics())
        missing = [name for name in self._names.values() if name not in existing]
        if not missing:
            return
        response = await self._admin.create_topics(
            [
                NewTopic(
                    name,
                    self.config.partitions,
                    self.config.replication,
                    topic_configs={"max.message.bytes": str(self.config.max_record_bytes)},
                )
                for name in missing
            ]
        )
        for result in response.to_object()["topic_errors"]:
            error = for_code(result["error_code"])
            if result["error_code"] and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {result['topic']}: {result['error_message']}")

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        reader, self._reader = self._reader, None
        admin, self._admin = self._admin, None
        if reader is not None:
            await stop_client(reader, "reader", self.config.timeout_s)
        if producer is not None:
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    await producer.stop()  # flushes what was handed to it
            except TimeoutError:
                log.error(
                    "kafka producer could not flush before closing; dropping what it holds",
                    extra={"records": self._in_flight.records},
                )
                await _abort_producer(producer)
        if admin is not None:
            await stop_client(admin, "admin", self.config.timeout_s, method="close")

    async def delete_topics(self) -> None:
        """Delete this log's topics, with everything in them (tests; tearing a deployment
        down). Other prefixes on the cluster are left alone."""
        self.started()
        async with kafka_call("deleting topics", self.config.timeout_s):
            existing = set(await self._admin.list_topics())
            mine = [name for name in self._names.values() if name in existing]
            if mine:
                await self._admin.delete_topics(mine)

    # -- appending -----------------------------------------------------------------------------

    async def append(self, topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
        if not envelopes:
            return []
        producer = self._producer
        if producer is None:
            raise Unavailable("event log is not started")
        if not self._delivering(producer):
            producer = await self._replaced(producer)
        in_flight = self._in_flight  # this producer's bound (a new producer gets its own)
        outgoing = [encode(e) for e in envelopes]
        largest = max(o.size for o in outgoing)
        if largest > self.config.max_record_bytes:
            raise StorageError(
                f"a record of {largest} bytes exceeds the log's max_record_bytes "
                f"({self.config.max_record_bytes})"
            )
        total = sum(o.size for o in outgoing)
        in_flight.reserve(len(outgoing), total)
        name = self._names[topic]
        futures: list[asyncio.Future[Any]] = []
        handed = 0
        try:
            async with kafka_call(f"appending to {name}", self.append_timeout_s):
                for o in outgoing:
                    # No explicit timestamp: the producer stamps the send time. received_at
                    # travels in a header; a broker refuses timestamps far from its own clock
                    # (log.message.timestamp.*.max.ms), and a skewed host must not fail appends.
                    future = await producer.send(name, o.value, key=o.key, headers=o.headers)
                    handed += o.size
                    future.add_done_callback(functools.partial(_settled, in_flight, o.size))
                    futures.append(future)
                # asyncio.wait, not gather: on timeout the futures must stay alive, since the
                # producer still delivers them (and their callbacks release the bound).
                await asyncio.wait(futures)
                metadata = [f.result() for f in futures]
        except Unavailable as exc:
            if isinstance(exc.__cause__, PRODUCER_STATE_LOST):
                self._stale = producer  # every later batch would be refused the same way
            raise
        finally:
            in_flight.release(len(outgoing) - len(futures), total - handed)
        return [Position(topic, int(m.partition), int(m.offset)) for m in metadata]

    # -- reading -------------------------------------------------------------------------------

    async def partitions(self, topic: Topic) -> list[int]:
        self.started()
        async with kafka_call(f"partitions of {self._names[topic]}", self.config.timeout_s):
            return sorted(await self._producer.partitions_for(self._names[topic]))

    async def end_offset(self, topic: Topic, partition: int) -> int:
        tp = TopicPartition(self._names[topic], partition)
        return (await self.end_offsets([tp]))[tp]

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """High watermarks: the offset the next record in each partition will get."""
        self.started()
        async with kafka_call("reading end offsets", self.config.timeout_s):
            ends = await self._reader.end_offsets(list(tps))
        return {tp: int(offset) for tp, offset in ends.items()}

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        self.started()
        async with kafka_call("reading start offsets", self.config.timeout_s):
            starts = await self._reader.beginning_offsets(list(tps))
        return {tp: int(offset) for tp, offset in starts.items()}

    async def read(self, topic: Topic, partition: int, offset: int, limit: int) -> list[Record]:
        if limit <= 0:
            return []
        tp = TopicPartition(self._names[topic], partition)
        end = (await self.end_offsets([tp]))[tp]
        if offset >= end:
            return []  # the common case for a caught-up reader: one cheap request
        records: list[Record] = []
        async with self._read_lock, kafka_call(f"reading {tp.topic}", self.config.timeout_s):
            reader = self._reader
            if reader.assignment() != {tp}:
                reader.assign([tp])
                self._read_next = None
            # A sequential reader continues where it stopped and keeps what was prefetched.
            if self._read_next != (tp, offset):
                reader.seek(tp, offset)
            self._read_next = None  # unknown until this read completes
            last = offset - 1
            while len(records) < limit and last + 1 < end:
                batch = await reader.getmany(tp, timeout_ms=1000, max_records=limit - len(records))
                messages = batch.get(tp, [])
                if not messages:
                    break
                for message in messages:
                    if message.offset < offset:
                        continue
                    last = message.offset
                    envelope = decode(message)
                    if envelope is not None:
                        records.append(Record(topic, partition, int(message.offset), envelope))
            self._read_next = (tp, last + 1)
        return records

    # -- consumer groups -----------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[Topic]) -> KafkaConsumer:
        return KafkaConsumer(self, group, tuple(topics))

    async def committed(
        self, group: str, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, tuple[int, str]]:
        """The group's committed offset and metadata per partition (absent: none committed)."""
        self.started()
        if not tps:
            return {}
        async with kafka_call(f"reading offsets of group {group}", self.config.timeout_s):
            while True:
                try:
                    found = await self._admin.list_consumer_group_offsets(
                        group, partitions=list(tps)
                    )
                    break
                except KafkaError as exc:
                    # The coordinator may be loading, moving, or (first use) not created yet.
                    if not exc.retriable:
                        raise
                    await asyncio.sleep(0.1)
        return {
            tp: (int(meta.offset), str(meta.metadata or ""))
            for tp, meta in found.items()
            if meta.offset >= 0
        }

    async def set_committed(self, group: str, positions: Sequence[Position]) -> None:
        self.started()
        if not positions:
            return
        offsets = {
            TopicPartition(self._names[p.topic], p.partition): OffsetAndMetadata(p.offset, "")
            for p in positions
        }
        # A consumer with a group id but a manual assignment never joins the group; the
        # coordinator takes its commit only while the group has no members.
        member = AIOKafkaConsumer(**self.client_options(), group_id=group, enable_auto_commit=False)
        member.assign(list(offsets))
        try:
            async with kafka_call(f"setting offsets of group {group}", self.config.timeout_s):
                await member.start()
                try:
                    await member.commit(offsets)
                except (CommitFailedError, UnknownMemberIdError) as exc:
                    raise Conflict(f"consumer group {group} has live members") from exc
        finally:
            await stop_client(member, "offset setter", self.config.timeout_s)


PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)
"""What the broker answers a producer whose idempotence state it no longer agrees with."""


def _settled(in_flight: InFlight, size: int, future: asyncio.Future[Any]) -> None:
    in_flight.release(1, size)
    if not future.cancelled() and future.exception() is not None:
        log.debug("kafka record not delivered", extra={"error": str(future.exception())})


def _ended_sender(producer: Any) -> asyncio.Task[None] | None:
    """The producer's sender task if it has ended (it then sends nothing more), else None."""
    sender: asyncio.Task[None] | None = producer._sender.sender_task
    return sender if sender is not None and sender.done() else None


async def _abort_producer(producer: Any) -> None:
    """Stop a producer that cannot flush (the broker is gone): aiokafka has no public way, so
    cancel its sender task and close its connections; undelivered records are dropped."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await producer._sender.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await producer.client.close()
