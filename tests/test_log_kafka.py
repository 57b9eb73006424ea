"""The Kafka event log passes the log conformance suite, plus what only a partitioned log
shows: keys over partitions, a group split between members, the in-flight bound, and a broker
that goes away and comes back.

Needs a broker: HUTCH_TEST_KAFKA (`bash ops/services.sh start` prints it). Every test works on
fresh topics under its own prefix, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from storage.errors import Backpressure, Unavailable
from storage.log import EventLog, Position, Record, spans_of
from storage.log.kafka import KafkaConfig, KafkaLog
from storage.log.kafka_records import stop_client
from tests.conformance.log import (
    TOPIC,
    LogConformance,
    LogFactory,
    ends,
    envelope,
    read_all,
)
from tests.support.services import need_service
from tests.support.waiting import NotInTime, eventually_async

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parents[1] / "ops" / "services.sh"
KafkaFactory = Callable[..., KafkaLog]


def _url(base: str, prefix: str, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"prefix": prefix, **params}.items())
    return f"{base}{'&' if '?' in base else '?'}{query}"


async def _delete_topics(url: str) -> None:
    log = KafkaLog.from_url(url)
    with contextlib.suppress(Unavailable):
        await log.start()
        await log.delete_topics()
    await log.close()


@pytest.fixture
async def kafka_log() -> AsyncIterator[KafkaFactory]:
    """A factory of KafkaLogs on one fresh topic prefix; keyword arguments become URL
    parameters (append_timeout_s is passed through)."""
    base = need_service("HUTCH_TEST_KAFKA", "Kafka")
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def make(append_timeout_s: float = 10.0, **params: object) -> KafkaLog:
        return KafkaLog.from_url(_url(base, prefix, **params), append_timeout_s=append_timeout_s)

    yield make
    await _delete_topics(_url(base, prefix))


class TestKafkaLog(LogConformance):
    @pytest.fixture
    def new_log(self, kafka_log: KafkaFactory) -> LogFactory:
        return kafka_log


@pytest.fixture
async def log(kafka_log: KafkaFactory) -> AsyncIterator[KafkaLog]:
    log = kafka_log()
    await log.start()
    yield log
    await log.close()


async def _from_now(log: EventLog, group: str) -> None:
    """Point `group` at the current end of TOPIC, so it sees only what the test appends."""
    await log.set_committed(
        group, [Position(TOPIC, p, o) for p, o in (await ends(log, TOPIC)).items()]
    )


def test_url_parameters() -> None:
    config = KafkaConfig.from_url(
        "kafka://a:9092,b:9093?partitions=6&replication=3&prefix=x.&linger_ms=5&compression=gzip"
    )
    assert config.bootstrap == ("a:9092", "b:9093")
    assert (config.partitions, config.replication, config.prefix) == (6, 3, "x.")
    assert (config.linger_ms, config.compression_type) == (5, "gzip")
    assert KafkaConfig.from_url("kafka://a:9092?compression=none").compression_type is None
    with pytest.raises(ValueError, match="unknown parameter"):
        KafkaConfig.from_url("kafka://a:9092?partitons=3")
    with pytest.raises(ValueError, match="integer"):
        KafkaConfig.from_url("kafka://a:9092?partitions=many")


class _StoppingHalfWay:
    """A client whose stop() does what aiokafka 0.14's consumer does when a fetch is in its
    retry pause: cancel that task, await it, and so re-raise its CancelledError, before its
    connections (`_client`) are closed."""

    def __init__(self) -> None:
        self._client = self
        self.connections_closed = False

    async def stop(self) -> None:
        fetch = asyncio.create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        fetch.cancel()
        await fetch

    async def close(self) -> None:
        self.connections_closed = True


async def test_a_client_stopping_half_way_is_closed_without_cancelling_the_caller() -> None:
    client = _StoppingHalfWay()
    await stop_client(client, "member", timeout_s=5)  # no CancelledError out of it
    assert client.connections_closed


async def test_stopping_a_client_still_lets_the_caller_be_cancelled() -> None:
    class Slow:
        async def stop(self) -> None:
            await asyncio.sleep(60)

    stopping = asyncio.create_task(stop_client(Slow(), "member", timeout_s=30))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping


async def test_an_unreachable_broker_is_unavailable_at_start() -> None:
    log = KafkaLog.from_url("kafka://127.0.0.1:9?timeout_ms=3000")
    with pytest.raises(Unavailable):
        await log.start()
    await log.close()


async def test_keys_spread_over_partitions_and_each_key_stays_in_one(log: KafkaLog) -> None:
    assert await log.partitions(TOPIC) == [0, 1, 2]
    start = await ends(log, TOPIC)
    sent = [envelope(i, key=f"key-{i % 20}") for i in range(60)]
    positions = await log.append(TOPIC, sent)
    partition_of: dict[str, set[int]] = {}
    for e, p in zip(sent, positions, strict=True):
        partition_of.setdefault(e.key, set()).add(p.partition)
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert len({p.partition for p in positions}) == 3
    records = await read_all(log, TOPIC, start)
    assert sorted(r.envelope.id for r in records) == sorted(e.id for e in sent)
    for key in partition_of:
        mine = [r.envelope.payload for r in records if r.envelope.key == key]
        assert mine == [e.payload for e in sent if e.key == key]


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
async def test_large_records_round_trip_compressed(
    kafka_log: KafkaFactory, compression: str
) -> None:
    """OTLP bodies are appended whole: several MiB, past Kafka's default 1 MiB limit."""
    try:
        log = kafka_log(compression=compression)
    except ValueError as exc:  # lz4 and zstd need the aiokafka[lz4] extra (cramjam)
        pytest.skip(str(exc))
    await log.start()
    try:
        big = envelope(0)._replace(payload=os.urandom(1_000_000) * 3)
        small = envelope(1)
        positions = await log.append(TOPIC, [big, small])
        records = await log.read(TOPIC, positions[0].partition, positions[0].offset, 10)
        assert [r.envelope for r in records] == [big, small]
    finally:
        await log.close()


async def _drain(consumer: object, into: list[Record], stop: asyncio.Event) -> None:
    while not stop.is_set():
        got = await consumer.poll(50, 0.2)  # type: ignore[attr-defined]
        if got:
            await consumer.commit(spans_of(got))  # type: ignore[attr-defined]
            into.extend(got)


async def test_two_members_split_the_partitions_then_one_takes_over(log: KafkaLog) -> None:
    group = f"g-{uuid.uuid4().hex}"
    await _from_now(log, group)
    first, second = log.consumer(group, [TOPIC]), log.consumer(group, [TOPIC])
    await first.start()
    await second.start()  # returns once the group has rebalanced over both
    seen_first: list[Record] = []
    seen_second: list[Record] = []
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_drain(first, seen_first, stop)),
        asyncio.create_task(_drain(second, seen_second, stop)),
    ]
    try:
        sent = [envelope(i, key=f"key-{i % 20}") for i in range(60)]
        await log.append(TOPIC, sent)
        await eventually_async(
            lambda: len(seen_first) + len(seen_second) >= 60, timeout_s=30, interval_s=0.1
        )
        stop.set()
        await asyncio.gather(*tasks)
        both = seen_first + seen_second
        assert sorted(r.envelope.id for r in both) == sorted(e.id for e in sent)
        assert seen_first
        assert seen_second
        assert not {r.partition for r in seen_first} & {r.partition for r in seen_second}

        await second.close()  # leaves the group: its partitions go to the first member
        more = [envelope(i, key=f"key-{i % 20}") for i in range(60, 90)]
        await log.append(TOPIC, more)
        rest: list[Record] = []
        stop.clear()
        tasks = [asyncio.create_task(_drain(first, rest, stop))]
        await eventually_async(lambda: len(rest) >= 30, timeout_s=40, interval_s=0.1)
        stop.set()
        await asyncio.gather(*tasks)
        assert sorted(r.envelope.id for r in rest) == sorted(e.id for e in more)
        assert await first.lag() == 0
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.close()
        await second.close()


async def test_a_begun_batch_moves_exactly_to_the_member_taking_over(log: KafkaLog) -> None:
    group = f"g-{uuid.uuid4().hex}"
    await _from_now(log, group)
    leaving, staying = log.consumer(group, [TOPIC]), log.consumer(group, [TOPIC])
    await leaving.start()
    await staying.start()
    try:
        sent = [envelope(i, key=f"key-{i % 20}") for i in range(60)]
        await log.append(TOPIC, sent)
        polled = await eventually_async(lambda: leaving.poll(100, 0.2), timeout_s=15, interval_s=0)
        partition = polled[0].partition
        chunk = [r for r in polled if r.partition == partition][:3]
        await leaving.begin(spans_of(chunk))
        await leaving.close()  # crashed between the sink's write and the commit

        first_for_partition: list[Record] = []
        seen: list[Record] = []

        async def took_over() -> bool:
            got = await staying.poll(100, 0.2)
            mine = [r for r in got if r.partition == partition]
            if mine and not first_for_partition:
                first_for_partition.extend(mine)
            await staying.commit(spans_of(got))
            seen.extend(got)
            return len({r.envelope.id for r in seen}) == 60

        await eventually_async(took_over, timeout_s=30, interval_s=0)
        assert [(r.offset, r.envelope.id) for r in first_for_partition] == [
            (r.offset, r.envelope.id) for r in chunk
        ]
        assert sorted({r.envelope.id for r in seen}) == sorted(e.id for e in sent)
    finally:
        await leaving.close()
        await staying.close()


async def test_appends_past_the_in_flight_bound_are_refused(kafka_log: KafkaFactory) -> None:
    log = kafka_log(max_in_flight=50)
    await log.start()
    try:
        start = await ends(log, TOPIC)
        with pytest.raises(Backpressure):
            await log.append(TOPIC, [envelope(i) for i in range(51)])
        assert await ends(log, TOPIC) == start  # nothing of the refused append was sent
        results = await asyncio.gather(
            log.append(TOPIC, [envelope(i) for i in range(30)]),
            log.append(TOPIC, [envelope(i) for i in range(30)]),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Backpressure) for r in results) == 1
        assert sum(isinstance(r, list) and len(r) == 30 for r in results) == 1
        assert len(await log.append(TOPIC, [envelope(i) for i in range(50)])) == 50
    finally:
        await log.close()


def _services(command: str) -> subprocess.CompletedProcess[str]:
    # The script's own wait for the broker is shortened: the test then waits for appends to
    # work again, which is what it is about (and the script's check can miss a start, below).
    env = {**os.environ, "HUTCH_KAFKA_START_TIMEOUT": "30"}
    return subprocess.run(
        ["bash", str(SERVICES), command],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )


async def test_a_producer_that_stopped_delivering_is_replaced(log: KafkaLog) -> None:
    """aiokafka's producer goes on taking records once its sender task has ended (it ends on
    OutOfOrderSequenceNumber, which a broker restart can cause) and never delivers them; the
    log starts a new producer instead of timing out every append from then on."""
    start = await ends(log, TOPIC)
    before = await log.append(TOPIC, [envelope(1, key="k")])
    sender = log._producer._sender.sender_task  # what aiokafka's own failure leaves behind
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    async with asyncio.timeout(30):  # proves "no hang", not a speed
        after = await log.append(TOPIC, [envelope(2, key="k")])
    records = await read_all(log, TOPIC, start)
    assert [r.envelope.payload for r in records] == [b'{"n":1}', b'{"n":2}']
    assert {(p.partition, p.offset) for p in before + after} == {
        (r.partition, r.offset) for r in records
    }


async def test_a_producer_the_broker_finds_out_of_order_is_replaced(log: KafkaLog) -> None:
    """After a broker restart the broker may refuse an idempotent producer's batches as out
    of order, and aiokafka would send every later batch with the same broken sequence: one
    refused append, then a new producer."""
    start = await ends(log, TOPIC)
    before = await log.append(TOPIC, [envelope(1, key="k")])
    sequences = log._producer._txn_manager._sequence_numbers  # what the restart desynced
    for tp in list(sequences):
        sequences[tp] += 7
    with pytest.raises(Unavailable, match="OutOfOrderSequenceNumber"):
        await log.append(TOPIC, [envelope(2, key="k")])
    after = await log.append(TOPIC, [envelope(3, key="k")])
    records = await read_all(log, TOPIC, start)
    assert [r.envelope.payload for r in records] == [b'{"n":1}', b'{"n":3}']
    assert {(p.partition, p.offset) for p in before + after} == {
        (r.partition, r.offset) for r in records
    }


async def test_a_stopped_broker_gives_unavailable_then_appends_resume(
    kafka_log: KafkaFactory,
) -> None:
    status = await asyncio.to_thread(_services, "status")
    if "kafka: running" not in status.stdout:
        pytest.skip("the Kafka broker is not run by ops/services.sh from this checkout")
    log = kafka_log(append_timeout_s=3.0, max_in_flight=20)
    await log.start()
    try:
        start = await ends(log, TOPIC)
        acknowledged = await log.append(TOPIC, [envelope(i, key="k") for i in range(5)])
        stopped = await asyncio.to_thread(_services, "kafka-stop")
        assert stopped.returncode == 0, stopped.stderr
        try:
            async with asyncio.timeout(60):  # proves "no hang", not a speed
                with pytest.raises(Unavailable):
                    await log.append(TOPIC, [envelope(5, key="k")])
                # The timed-out records still count as in flight (the producer retries them),
                # so the bound fills up instead of memory.
                with pytest.raises(Unavailable):
                    await log.append(TOPIC, [envelope(i, key="k") for i in range(6, 25)])
                with pytest.raises(Backpressure):
                    await log.append(TOPIC, [envelope(99, key="k")])
        finally:
            started = await asyncio.to_thread(_services, "kafka-start")
        # Judged by the broker answering, not by the script's exit status alone: the script
        # misses its "started" line when the broker's log rotates during start-up.
        try:
            again = await eventually_async(
                lambda: log.append(TOPIC, [envelope(100, key="k")]),
                timeout_s=60,
                interval_s=0.5,
                ignoring=(Unavailable,),
            )
        except NotInTime as late:
            raise AssertionError(
                f"appends did not resume; kafka-start said: {started.stderr[-2000:]}"
            ) from late
        records = await read_all(log, TOPIC, start)
        offsets = {(r.partition, r.offset) for r in records}
        assert {(p.partition, p.offset) for p in acknowledged + again} <= offsets
        # The idempotent producer kept the timed-out records and delivered them once the
        # broker was back, once each and in order (the 503'd client may have retried them).
        assert [r.envelope.payload for r in records] == [
            f'{{"n":{i}}}'.encode() for i in [*range(25), 100]
        ]
        assert len(await log.append(TOPIC, [envelope(i) for i in range(20)])) == 20
    finally:
        await log.close()
