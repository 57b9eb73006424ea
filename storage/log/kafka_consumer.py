"""A member of a Kafka consumer group, with begun batches that are delivered again exactly.

Offsets live in the group's committed offsets, nowhere else:
- `commit(records)` commits, per partition, the last offset + 1 (empty metadata).
- `begin(records)` commits, per partition, the chunk's FIRST offset (so the committed position
  does not move) with metadata `through=<last offset>`. A later `commit` replaces both.
- On every assignment the member reads each partition's committed offset and metadata. If
  `through=X` with X >= the committed offset, the partition's first delivery is held back
  until it is exactly offsets committed..X: records below X are collected across polls, and
  records past X are dropped and fetched again later (seek to X + 1). The runner then writes
  that chunk under the same deduplication token as before the crash or rebalance.
  A begun batch is delivered whole even if it is larger than `max_records`.

Rebalances (aiokafka's eager protocol: every partition is revoked, then the new assignment is
given): when partitions are revoked the member waits (up to REVOKE_WAIT_S) for chunks that were
begun but not committed, then forgets its per-partition state; `poll` returns nothing until
the new assignment's offsets are loaded. Afterwards, a chunk polled before the rebalance may
still be begun or committed: `begin` refuses (Unavailable) a partition this member no longer
owns, so the sink does not write it under a token the new owner will not reuse; `commit`
skips such partitions, whose new owner redelivers from the committed offset. Records below
what this member itself committed are never delivered again (a late commit after an
assignment reset the fetch position).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas.events import Topic
from storage.errors import Unavailable
from storage.log.kafka_records import decode, kafka_call, stop_client
from storage.log.protocol import Record, Span

if TYPE_CHECKING:
    from storage.log.kafka import KafkaLog

log = logging.getLogger(__name__)

REVOKE_WAIT_S = 10.0
"""How long a rebalance waits for this member's begun chunks to be committed."""
HEARTBEAT_MS = 1_000
SESSION_TIMEOUT_MS = 10_000
REBALANCE_TIMEOUT_MS = 30_000
JOIN_TIMEOUT_MS = REBALANCE_TIMEOUT_MS + 5_000
THROUGH = "through="


@dataclass(slots=True)
class _Partition:
    floor: int
    """Records below this offset are done: never deliver them again."""
    cap: int | None = None
    """The last offset of a begun batch still to be delivered, exactly, before anything else."""
    held: list[Any] = field(default_factory=list)
    """Consumed records of that batch, waiting for the rest of it."""


def _spans(spans: Sequence[Span], name: Any) -> dict[TopicPartition, tuple[int, int]]:
    """Spans by Kafka topic-partition, those of one partition merged."""
    merged: dict[TopicPartition, tuple[int, int]] = {}
    for s in spans:
        tp = TopicPartition(name(s.topic), s.partition)
        first, last = merged.get(tp, (s.first, s.last))
        merged[tp] = (min(first, s.first), max(last, s.last))
    return merged


class KafkaConsumer:
    def __init__(self, log_: KafkaLog, group: str, topics: tuple[Topic, ...]) -> None:
        self.log = log_
        self.group = group
        self.topics = topics
        self._consumer: Any = None
        self._closed = False
        self._parts: dict[TopicPartition, _Partition] = {}
        self._assigned: frozenset[TopicPartition] | None = None
        self._generation = 0
        self._loaded = asyncio.Event()
        self._load_lock = asyncio.Lock()
        self._begun: dict[TopicPartition, int] = {}
        self._begun_changed = asyncio.Condition()

    @property
    def _timeout_s(self) -> float:
        return self.log.config.timeout_s

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group; returns once this member has its first assignment, loaded."""
        self.log.started()
        options = self.log.client_options()
        # A JoinGroup request may wait on the broker for the other members to rejoin, up to
        # the rebalance timeout; the client must not give up on it sooner.
        options["request_timeout_ms"] = max(options["request_timeout_ms"], JOIN_TIMEOUT_MS)
        consumer = AIOKafkaConsumer(
            **options,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            heartbeat_interval_ms=HEARTBEAT_MS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
        )
        consumer.subscribe([self.log.name(t) for t in self.topics], listener=_Listener(self))
        self._consumer = consumer
        try:
            async with kafka_call(f"joining group {self.group}", self._timeout_s * 3):
                await consumer.start()
                while not await self._ensure_loaded(self._now() + self._timeout_s):
                    pass
        except Unavailable:
            await self.close()
            raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # stop() leaves the group: its partitions move at once
            await stop_client(consumer, f"member of group {self.group}", self._timeout_s)

    def _live(self) -> Any:
        if self._consumer is None or self._closed:
            raise Unavailable("consumer is not started or already closed")
        return self._consumer

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    # -- assignment ----------------------------------------------------------------------------

    async def _on_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self._loaded.clear()
        self._generation += 1
        self._assigned = None
        # Until this returns the group waits, and this member still owns its partitions: a
        # chunk being written can still be committed.
        pending = set(revoked)
        async with self._begun_changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._begun_changed.wait_for(lambda: not (self._begun.keys() & pending)),
                    REVOKE_WAIT_S,
                )
        for tp in revoked:
            self._parts.pop(tp, None)
            self._begun.pop(tp, None)

    async def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._assigned = frozenset(assigned)
        log.info(
            "partitions assigned",
            extra={
                "group": self.group,
                "partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
            },
        )
        try:
            await self._load(self._generation)
        except Unavailable as exc:
            # poll retries the load; until it succeeds nothing is delivered
            log.warning("could not read committed offsets", extra={"error": str(exc)})

    async def _load(self, generation: int) -> None:
        async with self._load_lock:
            assigned = self._assigned
            if self._loaded.is_set() or assigned is None or generation != self._generation:
                return
            committed = await self.log.committed(self.group, sorted(assigned))
            await self._check_none_committed(assigned - committed.keys())
            if generation != self._generation:
                return  # another rebalance began meanwhile
            parts: dict[TopicPartition, _Partition] = {}
            for tp in assigned:
                offset, metadata = committed.get(tp, (0, ""))
                part = _Partition(floor=offset)
                if metadata.startswith(THROUGH):
                    with contextlib.suppress(ValueError):
                        through = int(metadata[len(THROUGH) :])
                        if through >= offset:
                            part.cap = through
                parts[tp] = part
            self._parts = parts
            self._loaded.set()

    async def _check_none_committed(self, tps: Collection[TopicPartition]) -> None:
        """Confirm that these partitions have no committed offset. The admin client's offset
        fetch (aiokafka 0.14) ignores a group-level error such as a coordinator still loading,
        which reads as "nothing committed" and would lose a begun batch's mark; the
        consumer's own lookup retries those errors."""
        if not tps:
            return
        async with kafka_call(f"reading offsets of group {self.group}", self._timeout_s):
            for tp in tps:
                if await self._live().committed(tp) is not None:
                    raise Unavailable(f"offsets of group {self.group} are not readable yet")

    async def _ensure_loaded(self, deadline: float) -> bool:
        """Wait until the current assignment's offsets are loaded; False at the deadline."""
        while not self._loaded.is_set():
            remaining = deadline - self._now()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    if self._assigned is None:
                        await self._loaded.wait()
                    else:
                        await self._load(self._generation)
            except TimeoutError:
                return False
            except Unavailable:
                await asyncio.sleep(min(0.2, max(deadline - self._now(), 0)))
        return True

    # -- polling -------------------------------------------------------------------------------

    async def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        consumer = self._live()
        deadline = self._now() + timeout_s
        while True:
            if not await self._ensure_loaded(deadline):
                return []
            generation = self._generation
            remaining = max(deadline - self._now(), 0)
            try:
                # getmany waits for a rebalance to finish without a bound of its own
                async with asyncio.timeout(remaining + 0.05):
                    fetched = await consumer.getmany(
                        timeout_ms=int(remaining * 1000), max_records=max_records
                    )
            except TimeoutError:
                return []
            except KafkaError as exc:
                raise Unavailable(f"polling group {self.group}: {exc}") from exc
            if not self._loaded.is_set() or generation != self._generation:
                # A rebalance finished under us: put these back for the new assignment's caps.
                for tp, messages in fetched.items():
                    with contextlib.suppress(IllegalStateError):
                        consumer.seek(tp, messages[0].offset)
                continue
            records: list[Record] = []
            for tp, messages in fetched.items():
                records.extend(self._deliverable(consumer, tp, messages))
            if records or self._now() >= deadline:
                return records

    def _deliverable(self, consumer: Any, tp: TopicPartition, messages: list[Any]) -> list[Record]:
        part = self._parts.get(tp)
        if part is None:  # not in the loaded assignment; uncommitted, so not lost
            log.error("records from a partition this member does not own", extra={"tp": str(tp)})
            return []
        messages = [m for m in messages if m.offset >= part.floor]
        if part.cap is not None:
            within = [m for m in messages if m.offset <= part.cap]
            beyond = [m for m in messages if m.offset > part.cap]
            part.held.extend(within)
            if not part.held:
                if beyond:  # nothing of the begun batch is left in the log (retention)
                    part.cap = None
                messages = beyond
            elif beyond or part.held[-1].offset >= part.cap:
                if beyond:
                    consumer.seek(tp, beyond[0].offset)  # fetched again after the batch
                messages, part.held, part.cap = part.held, [], None
            else:
                return []  # part of the begun batch so far: wait for the rest
        topic = self.log.topic(tp.topic)
        out: list[Record] = []
        for m in messages:
            envelope = decode(m)
            if envelope is not None:
                out.append(Record(topic, tp.partition, int(m.offset), envelope))
        return out

    # -- offsets -------------------------------------------------------------------------------

    async def _owned(self, tps: Collection[TopicPartition]) -> set[TopicPartition]:
        """Which of `tps` this member owns; between two assignments, waits for the next."""
        if not all(tp in self._parts for tp in tps):
            await self._ensure_loaded(self._now() + self._timeout_s)
        return {tp for tp in tps if tp in self._parts}

    async def begin(self, polled: Sequence[Span]) -> None:
        consumer = self._live()
        spans = _spans(polled, self.log.name)
        if not spans:
            return
        lost = spans.keys() - await self._owned(spans.keys())
        if lost:
            raise Unavailable(f"partitions {lost} moved to another member of group {self.group}")
        offsets = {
            tp: OffsetAndMetadata(first, f"{THROUGH}{last}") for tp, (first, last) in spans.items()
        }
        async with kafka_call(f"beginning a batch in group {self.group}", self._timeout_s):
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                raise Unavailable(f"group {self.group} rebalanced: {exc}") from exc
        for tp, (_, last) in spans.items():
            self._begun[tp] = last

    async def commit(self, polled: Sequence[Span]) -> None:
        consumer = self._live()
        spans = _spans(polled, self.log.name)
        mine = await self._owned(spans.keys())
        owned = {tp: span for tp, span in spans.items() if tp in mine}
        if len(owned) < len(spans):
            log.info(
                "not committing partitions this member no longer owns",
                extra={"group": self.group, "partitions": str(sorted(spans.keys() - owned))},
            )
        offsets = {tp: OffsetAndMetadata(last + 1, "") for tp, (_, last) in owned.items()}
        if offsets:
            async with kafka_call(f"committing offsets of group {self.group}", self._timeout_s):
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as exc:
                    # The group moved on; whoever owns these partitions now delivers them
                    # again, a begun batch exactly, so the sink's retry deduplicates.
                    log.warning(
                        "commit refused after a rebalance",
                        extra={"group": self.group, "error": str(exc)},
                    )
                    offsets = {}
        for tp, (_, last) in owned.items():
            part = self._parts.get(tp)
            if part is not None and tp in offsets:
                part.floor = max(part.floor, last + 1)
                if part.cap is not None and part.cap <= last:
                    part.cap, part.held = None, []
        async with self._begun_changed:
            for tp in spans:
                self._begun.pop(tp, None)
            self._begun_changed.notify_all()

    async def lag(self) -> int:
        consumer = self._live()
        tps = sorted(consumer.assignment())
        if not tps:
            tps = [
                TopicPartition(self.log.name(t), p)
                for t in self.topics
                for p in await self.log.partitions(t)
            ]
        if not tps:
            return 0
        ends = await self.log.end_offsets(tps)
        committed = await self.log.committed(self.group, tps)
        missing = [tp for tp in tps if tp not in committed]
        starts = await self.log.beginning_offsets(missing) if missing else {}
        return sum(
            max(ends[tp] - (committed[tp][0] if tp in committed else starts[tp]), 0) for tp in tps
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._owner._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._owner._on_assigned(assigned)
