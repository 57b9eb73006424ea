"""The SQLite event log passes the log conformance suite, plus what only it promises."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.envelope import new_envelope
from storage.log import Span
from storage.log.sqlite import SQLiteLog
from tests.conformance.log import TOPIC, LogConformance, LogFactory, envelope, read_all

pytestmark = pytest.mark.integration


class TestSQLiteLog(LogConformance):
    @pytest.fixture
    def new_log(self, tmp_path: Path) -> LogFactory:
        return lambda: SQLiteLog(tmp_path / "log.db")


def _append_in_child(path: str, key: str, count: int, start: Any) -> None:
    import asyncio

    async def run() -> None:
        log = SQLiteLog(Path(path))
        start.wait()  # every child opens the log at the same moment
        await log.start()
        for i in range(count):
            await log.append(TOPIC, [envelope(i, key=key)])
        await log.close()

    asyncio.run(run())


async def test_several_processes_append_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    children = [
        ctx.Process(target=_append_in_child, args=(str(path), f"proc-{n}", 100, start))
        for n in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    log = SQLiteLog(path)
    await log.start()
    records = await read_all(log, TOPIC, {})
    await log.close()
    assert [r.offset for r in records] == list(range(300))
    for n in range(3):
        mine = [r.envelope.payload for r in records if r.envelope.key == f"proc-{n}"]
        assert mine == [f'{{"n":{i}}}'.encode() for i in range(100)]


async def test_an_unwritable_log_answers_unavailable(tmp_path: Path) -> None:
    from storage.errors import Unavailable

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = SQLiteLog(blocker / "log.db")
    with pytest.raises(Unavailable):
        await log.start()


async def test_a_stuck_log_answers_unavailable_within_the_timeout(tmp_path: Path) -> None:
    """Another process holds the write lock and never lets go: appends fail, none hangs."""
    import fcntl
    import os

    from storage.errors import Unavailable

    log = SQLiteLog(tmp_path / "log.db", append_timeout_s=0.5)
    await log.start()
    fd = os.open(tmp_path / "log.db.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(Unavailable, match="in time"):
            await log.append(TOPIC, [envelope(1)])
    finally:
        os.close(fd)  # the writer gets the lock and skips the abandoned append
    positions = await log.append(TOPIC, [envelope(2)])
    records = await read_all(log, TOPIC, {})
    await log.close()
    assert [r.envelope.payload for r in records] == [b'{"n":2}']
    assert positions[0].offset == 0


async def test_appends_of_one_turn_get_the_offsets_of_their_own_records(tmp_path: Path) -> None:
    """Appends made during one turn of the event loop are committed together; each still
    learns where its own records went."""
    import asyncio

    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    answers = await asyncio.gather(
        *(log.append(TOPIC, [envelope(i), envelope(i + 1000)]) for i in range(50))
    )
    records = {r.offset: r.envelope.payload for r in await read_all(log, TOPIC, {})}
    await log.close()
    assert len(records) == 100
    for i, positions in enumerate(answers):
        assert [records[p.offset] for p in positions] == [
            f'{{"n":{i}}}'.encode(),
            f'{{"n":{i + 1000}}}'.encode(),
        ]


async def test_the_event_loop_keeps_serving_while_another_writer_holds_the_lock(
    tmp_path: Path,
) -> None:
    """The loop commits a turn itself only if the write lock is free at once; otherwise the
    writer thread waits for it, and the loop goes on with other work meanwhile."""
    import asyncio
    import fcntl
    import os
    import threading
    import time

    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    fd = os.open(tmp_path / "log.db.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    holder = threading.Timer(1.0, os.close, (fd,))  # the other writer lets go after 1 s
    holder.start()
    started = time.monotonic()
    append = asyncio.ensure_future(log.append(TOPIC, [envelope(1)]))
    for _ in range(10):
        await asyncio.sleep(0.01)
    assert time.monotonic() - started < 0.9  # the loop ran on while the lock was held
    assert not append.done()  # not acknowledged while it cannot be written
    positions = await asyncio.wait_for(append, 5)
    holder.join()
    records = await read_all(log, TOPIC, {})
    await log.close()
    assert [(r.offset, r.envelope.payload) for r in records] == [(0, b'{"n":1}')]
    assert positions[0].offset == 0


async def test_an_append_cut_short_by_close_is_refused_not_left_waiting(tmp_path: Path) -> None:
    import asyncio

    from storage.errors import Unavailable

    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    append = asyncio.ensure_future(log.append(TOPIC, [envelope(1)]))
    await asyncio.sleep(0)  # the append is made, its turn not yet committed
    await log.close()
    with pytest.raises(Unavailable, match="closed"):
        await asyncio.wait_for(append, 5)
    reopened = SQLiteLog(tmp_path / "log.db")
    await reopened.start()
    assert await read_all(reopened, TOPIC, {}) == []
    await reopened.close()


async def test_a_lock_that_fails_answers_unavailable_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refusing the flock (ENOLCK) fails the append there and then, rather than
    leaving it to wait out its deadline."""
    import asyncio
    import errno
    import fcntl

    from storage.errors import Unavailable

    log = SQLiteLog(tmp_path / "log.db", append_timeout_s=30)
    await log.start()

    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    with pytest.raises(Unavailable, match="No locks available"):
        await asyncio.wait_for(log.append(TOPIC, [envelope(1)]), 5)
    monkeypatch.undo()
    await log.append(TOPIC, [envelope(2)])
    records = await read_all(log, TOPIC, {})
    await log.close()
    assert [r.envelope.payload for r in records] == [b'{"n":2}']


async def test_appends_past_the_byte_bound_are_refused_not_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schemas.envelope import new_envelope
    from storage.errors import Backpressure
    from storage.log import sqlite

    monkeypatch.setattr(sqlite, "MAX_PENDING_BYTES", 1000)
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    small = new_envelope("otlp.traces.v1", b"x" * 500, key="a", app="a")
    big = new_envelope("otlp.traces.v1", b"x" * 1500, key="a", app="a")
    await log.append("otlp.traces", [small])  # within the bound: stored
    with pytest.raises(Backpressure):
        await log.append("otlp.traces", [big])
    records = await read_all(log, "otlp.traces", {})
    await log.close()
    assert [r.envelope.id for r in records] == [small.id]


async def test_json_lines_carry_each_record_and_its_payload(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    try:
        await log.append(TOPIC, [envelope(i, key=f"app-{i % 2}") for i in range(5)])
        odd = new_envelope("telemetry.event.v1", b'{"n": 1.50, "s": "\\u00e9"}', key="k", app=None)
        await log.append(TOPIC, [odd, odd._replace(payload=b"{not json")])
        consumer = log.consumer("json-reader", [TOPIC])
        await consumer.start()
        (first,) = await consumer.poll_json(4, 1)
        (rest,) = await consumer.poll_json(100, 1)
        assert await consumer.poll_json(100, 0.05) == []
        await consumer.close()
    finally:
        await log.close()
    assert (first.span, first.records) == (Span(TOPIC, 0, 0, 3), 4)
    assert sorted(first.apps) == ["app-0", "app-1"]
    assert (rest.span, rest.records, rest.apps) == (Span(TOPIC, 0, 4, 6), 3, ["app-0"])
    lines = [orjson.loads(b"[" + rest.lines.replace(b"} {", b"},{") + b"]")][0]
    by_offset = {line["offset"]: line for line in sorted(lines, key=lambda line: line["offset"])}
    assert by_offset[4]["payload"] == {"n": 4}
    assert by_offset[5]["app"] is None
    assert by_offset[5]["id"] == odd.id
    assert by_offset[5]["received_at"] == odd.received_at
    assert by_offset[5]["type"] == "telemetry.event.v1"
    # The payload's text is kept as stored (1.50 stays 1.50), and a non-JSON one is null.
    assert b'"payload":{"n":1.50,"s":"\\u00e9"}' in rest.lines
    assert by_offset[6]["payload"] is None


async def test_a_begun_json_span_is_delivered_again_whole(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    try:
        await log.append(TOPIC, [envelope(i) for i in range(10)])
        crashed = log.consumer("json-group", [TOPIC])
        await crashed.start()
        (batch,) = await crashed.poll_json(6, 1)
        await crashed.begin([batch.span])
        await crashed.close()
        await log.append(TOPIC, [envelope(i) for i in range(10, 15)])
        again = log.consumer("json-group", [TOPIC])
        await again.start()
        (replayed,) = await again.poll_json(100, 1)
        await again.commit([replayed.span])
        (following,) = await again.poll_json(100, 1)
        await again.commit([following.span])
        await again.close()
    finally:
        await log.close()
    assert replayed == batch
    assert following.span == Span(TOPIC, 0, 6, 14)
