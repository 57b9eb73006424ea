"""The event log conformance suite: every EventLog adapter must pass it unchanged.

A test module subclasses `LogConformance` and provides `new_log`, a fixture returning a
factory of EventLog instances that all see the SAME fresh log (so tests can play several
processes or restart a consumer). Offsets are taken relative to `end_offset` before the test
appends, and partitions from the positions `append` returns, so the suite holds for a
one-partition SQLite log and a many-partition Kafka topic alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from itertools import pairwise

import pytest

from schemas.envelope import Envelope, new_envelope
from schemas.events import Topic
from storage.errors import Unavailable
from storage.log import EventLog, Position, Record, spans_of

TOPIC: Topic = "telemetry"
OTHER: Topic = "builds"

LogFactory = Callable[[], EventLog]


def envelope(n: int, key: str = "app-1") -> Envelope:
    return new_envelope("telemetry.event.v1", f'{{"n":{n}}}'.encode(), key=key, app=key)


async def read_all(log: EventLog, topic: Topic, start: dict[int, int]) -> list[Record]:
    """Every record appended to `topic` since `start` (partition -> offset)."""
    records: list[Record] = []
    for partition in await log.partitions(topic):
        offset = start.get(partition, 0)
        while True:
            batch = await log.read(topic, partition, offset, 500)
            if not batch:
                break
            records.extend(batch)
            offset = batch[-1].offset + 1
    return records


async def ends(log: EventLog, topic: Topic) -> dict[int, int]:
    return {p: await log.end_offset(topic, p) for p in await log.partitions(topic)}


async def poll_until(consumer: object, count: int, timeout_s: float = 20) -> list[Record]:
    got: list[Record] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < count and asyncio.get_running_loop().time() < deadline:
        got.extend(await consumer.poll(count - len(got), 0.5))  # type: ignore[attr-defined]
    return got


class LogConformance:
    @pytest.fixture
    def new_log(self) -> LogFactory:
        raise NotImplementedError

    @pytest.fixture
    async def log(self, new_log: LogFactory) -> AsyncIterator[EventLog]:
        log = new_log()
        await log.start()
        yield log
        await log.close()

    async def test_append_returns_positions_and_read_returns_envelopes(self, log: EventLog) -> None:
        start = await ends(log, TOPIC)
        sent = [envelope(i) for i in range(5)]
        positions = await log.append(TOPIC, sent)
        assert len(positions) == 5
        assert all(p.topic == TOPIC for p in positions)
        records = await read_all(log, TOPIC, start)
        assert [r.envelope for r in records] == sent
        assert [(r.partition, r.offset) for r in records] == [
            (p.partition, p.offset) for p in positions
        ]

    async def test_offsets_start_at_end_offset_and_grow_without_gaps(self, log: EventLog) -> None:
        start = await ends(log, TOPIC)
        positions = await log.append(TOPIC, [envelope(i) for i in range(3)])
        partition = positions[0].partition
        assert [p.offset for p in positions] == [start[partition] + i for i in range(3)]
        assert await log.end_offset(TOPIC, partition) == start[partition] + 3

    async def test_one_key_keeps_its_order_across_many_appends(self, log: EventLog) -> None:
        start = await ends(log, TOPIC)
        for i in range(20):
            await log.append(TOPIC, [envelope(i, key="ordered")])
        records = [r for r in await read_all(log, TOPIC, start) if r.envelope.key == "ordered"]
        assert [r.envelope.payload for r in records] == [f'{{"n":{i}}}'.encode() for i in range(20)]
        assert len({r.partition for r in records}) == 1

    async def test_concurrent_appends_all_land_once(self, log: EventLog) -> None:
        start = await ends(log, TOPIC)
        sent = [envelope(i, key=f"app-{i % 3}") for i in range(200)]
        results = await asyncio.gather(*(log.append(TOPIC, [e]) for e in sent))
        positions = [p for r in results for p in r]
        assert len({(p.partition, p.offset) for p in positions}) == 200
        records = await read_all(log, TOPIC, start)
        assert sorted(r.envelope.id for r in records) == sorted(e.id for e in sent)

    async def test_two_writers_share_one_log(self, new_log: LogFactory) -> None:
        first, second = new_log(), new_log()
        await first.start()
        await second.start()
        try:
            start = await ends(first, TOPIC)
            a = [envelope(i, key="a") for i in range(50)]
            b = [envelope(i, key="b") for i in range(50)]
            await asyncio.gather(
                *(first.append(TOPIC, [e]) for e in a), *(second.append(TOPIC, [e]) for e in b)
            )
            seen = await read_all(second, TOPIC, start)
            assert sorted(r.envelope.id for r in seen) == sorted(e.id for e in a + b)
        finally:
            await first.close()
            await second.close()

    async def test_topics_are_separate(self, log: EventLog) -> None:
        start = await ends(log, OTHER)
        await log.append(TOPIC, [envelope(1)])
        assert await read_all(log, OTHER, start) == []

    async def test_read_from_an_offset_past_the_end_is_empty(self, log: EventLog) -> None:
        positions = await log.append(TOPIC, [envelope(1)])
        p = positions[0]
        assert await log.read(TOPIC, p.partition, p.offset + 1, 10) == []

    async def test_append_nothing_is_a_no_op(self, log: EventLog) -> None:
        assert await log.append(TOPIC, []) == []

    async def test_append_after_close_is_unavailable(self, new_log: LogFactory) -> None:
        log = new_log()
        await log.start()
        await log.close()
        with pytest.raises(Unavailable):
            await log.append(TOPIC, [envelope(1)])

    async def test_consumer_reads_from_committed_and_resumes_after_restart(
        self, log: EventLog, new_log: LogFactory
    ) -> None:
        group = f"g-{envelope(0).id}"
        start = await ends(log, TOPIC)
        await log.set_committed(group, [Position(TOPIC, p, o) for p, o in start.items()])
        sent = [envelope(i) for i in range(10)]
        await log.append(TOPIC, sent)
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        got = await poll_until(consumer, 4)
        got = got[:4] if len(got) >= 4 else got
        await consumer.commit(spans_of(got))
        await consumer.close()

        again = new_log()
        await again.start()
        consumer = again.consumer(group, [TOPIC])
        await consumer.start()
        rest = await poll_until(consumer, 10 - len(got), timeout_s=20)
        await consumer.close()
        await again.close()
        delivered = [r.envelope.id for r in got + rest]
        assert sorted(delivered) == sorted(e.id for e in sent)
        assert len(set(delivered)) == len(delivered)

    async def test_uncommitted_records_are_delivered_again(self, log: EventLog) -> None:
        group = f"g-{envelope(0).id}"
        start = await ends(log, TOPIC)
        await log.set_committed(group, [Position(TOPIC, p, o) for p, o in start.items()])
        sent = [envelope(i) for i in range(6)]
        await log.append(TOPIC, sent)
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        first = await poll_until(consumer, 6)
        await consumer.close()  # crashed before committing
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        second = await poll_until(consumer, 6)
        await consumer.close()
        assert sorted(r.envelope.id for r in second) == sorted(r.envelope.id for r in first)

    async def test_a_begun_batch_is_delivered_again_exactly(self, log: EventLog) -> None:
        group = f"g-{envelope(0).id}"
        start = await ends(log, TOPIC)
        await log.set_committed(group, [Position(TOPIC, p, o) for p, o in start.items()])
        await log.append(TOPIC, [envelope(i, key="k") for i in range(5)])
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        batch = await poll_until(consumer, 3)
        batch = batch[:3]
        await consumer.begin(spans_of(batch))
        await consumer.close()  # crashed between the sink write and the commit
        await log.append(TOPIC, [envelope(i, key="k") for i in range(5, 10)])

        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        again = await consumer.poll(100, 10)
        # The first delivery for that partition is exactly the begun batch, nothing more.
        same_partition = [r for r in again if r.partition == batch[0].partition]
        assert [(r.offset, r.envelope.id) for r in same_partition[: len(batch)]] == [
            (r.offset, r.envelope.id) for r in batch
        ]
        assert len(same_partition) == len(batch)
        await consumer.commit(spans_of(again))
        rest = await poll_until(consumer, 7)
        await consumer.close()
        assert len(rest) == 7

    async def test_lag_counts_uncommitted_records(self, log: EventLog) -> None:
        group = f"g-{envelope(0).id}"
        start = await ends(log, TOPIC)
        await log.set_committed(group, [Position(TOPIC, p, o) for p, o in start.items()])
        await log.append(TOPIC, [envelope(i) for i in range(4)])
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        assert await consumer.lag() == 4
        got = await poll_until(consumer, 4)
        await consumer.commit(spans_of(got))
        assert await consumer.lag() == 0
        await consumer.close()

    async def test_polled_records_keep_offset_order_per_partition(self, log: EventLog) -> None:
        group = f"g-{envelope(0).id}"
        start = await ends(log, TOPIC)
        await log.set_committed(group, [Position(TOPIC, p, o) for p, o in start.items()])
        await log.append(TOPIC, [envelope(i, key=f"k{i % 4}") for i in range(40)])
        consumer = log.consumer(group, [TOPIC])
        await consumer.start()
        got = await poll_until(consumer, 40)
        await consumer.close()
        by_partition: dict[int, list[int]] = {}
        for r in got:
            by_partition.setdefault(r.partition, []).append(r.offset)
        for offsets in by_partition.values():
            assert all(a < b for a, b in pairwise(offsets))
