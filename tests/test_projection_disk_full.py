"""A projector on a disk that fills up, then is partly freed: on a real small filesystem (a
tmpfs mounted for the test; root only). While the disk is full the log says why (the disk
error, not a failed rollback hiding it); once some space is back, the projector catches up
even when a whole batch would not fit, cutting its writes finer, and loses or doubles
nothing."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hutch.runtime import supervise
from projections.runner import AnalyticsRunner, ensure_tables, group_name
from projections.telemetry import TABLE, TelemetryProjection
from schemas.envelope import new_envelope
from storage.analytics.chdb import ChdbAnalytics
from storage.errors import Unavailable
from storage.log import Position
from storage.log.sqlite import SQLiteLog
from storage.relational.sqlite import SQLiteRelational
from tests.support.services import IN_CI
from tests.support.waiting import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 2000
PAD = 4000
"""Bytes of padding per event: a batch's spool file (its JSON lines) is about 8 MB, while
its rows compress to little in the table."""
FREED = 6 * 1024 * 1024
"""Space given back: less than the whole batch needs, enough for a quarter of it."""
DISK_FULL = ("database or disk is full", "No space left on device", "not enough space")
"""How SQLite, the kernel and ClickHouse say it."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB filesystem of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = f"cannot mount a small tmpfs here (root only): {done.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the disk is full (down to its last page)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 12):
            block = os.urandom(size)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def said(records: list[logging.LogRecord]) -> str:
    """Everything the records say: messages, `error` fields and exceptions."""
    parts: list[str] = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(str(getattr(record, "error", "")))
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            parts.append(repr(exc))
            parts.append(repr(exc.__cause__))
    return "\n".join(parts)


@pytest.mark.parametrize("in_engine", [True, False], ids=["engine path", "python path"])
async def test_a_projector_catches_up_once_some_space_is_free(
    small_disk: Path, caplog: pytest.LogCaptureFixture, in_engine: bool
) -> None:
    caplog.set_level(logging.INFO)
    log = SQLiteLog(small_disk / "log.db")
    await log.start()
    analytics = ChdbAnalytics(small_disk / "clickhouse")
    projection = TelemetryProjection(lambda app: 30)
    ensure_tables(analytics, projection)
    ids = set()
    for start in range(0, EVENTS, 500):
        envelopes = [
            new_envelope(
                "telemetry.event.v1",
                orjson.dumps({"kind": "info", "version": "1", "bits": {"n": n, "pad": "x" * PAD}}),
                key="demo",
                app="demo",
            )
            for n in range(start, start + 500)
        ]
        ids.update(e.id for e in envelopes)
        await log.append("telemetry", envelopes)
    filler = small_disk / f"filler-{uuid.uuid4().hex}"
    fill(filler)

    stop = asyncio.Event()

    def runner() -> AnalyticsRunner:
        consumer = log.consumer(group_name(projection), projection.topics)
        return AnalyticsRunner(
            projection, consumer, analytics, batch=EVENTS, linger_s=0.01, in_engine=in_engine
        )

    task = asyncio.create_task(
        supervise(lambda: runner().run(stop), projection.name, stop, pause_s=0.2)
    )

    def projected() -> int:
        return int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0])

    try:
        await asyncio.sleep(3)  # the disk is full: nothing fits
        assert projected() == 0
        full = said(caplog.records)
        assert "cannot rollback" not in full
        assert any(sign in full for sign in DISK_FULL), full[-3000:]

        os.truncate(filler, max(filler.stat().st_size - FREED, 0))  # some space again
        await eventually_async(lambda: projected() >= EVENTS, timeout_s=60, interval_s=0.2)
        rows = analytics.query(f"SELECT count(), uniqExact(id) FROM {TABLE}").rows[0]
        ids_seen = {
            str(row[0]) for row in analytics.query(f"SELECT toString(id) FROM {TABLE}").rows
        }
    finally:
        stop.set()
        await task
        analytics.close()
        await log.close()
    assert [int(v) for v in rows] == [EVENTS, EVENTS]
    assert ids_seen == ids
    assert "cannot rollback" not in said(caplog.records)


async def test_the_event_log_says_the_disk_is_full(small_disk: Path) -> None:
    """SQLite may roll a transaction back by itself when the disk is full; the log must
    report that error, not the failure of a second rollback ("no transaction is active")."""
    log = SQLiteLog(small_disk / "log.db")
    await log.start()
    group, at = "hutch.telemetry", [Position("telemetry", 0, 1)]
    try:
        # Every thread that commits offsets opens its connection now, while there is room.
        await asyncio.gather(*(log.set_committed(group, at) for _ in range(32)))
        fill(small_disk / "filler")
        big = new_envelope("telemetry.event.v1", b'{"pad": "%s"}' % (b"x" * (4 << 20)), key="a")
        with pytest.raises(Unavailable) as appending:
            await log.append("telemetry", [big])
        with pytest.raises(Unavailable) as committing:
            await log.set_committed(group, [Position("telemetry", 0, 2)])
    finally:
        await log.close()
    for refused in (appending, committing):
        assert "disk" in str(refused.value)
        assert "cannot rollback" not in str(refused.value)


def test_the_relational_store_says_the_disk_is_full(small_disk: Path) -> None:
    """The same for the embedded relational store, which the relational projector writes."""
    db = SQLiteRelational(small_disk / "hutch.db")
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE scratch (data BLOB)")
            tx.execute("INSERT INTO scratch VALUES (randomblob(4096))")
        fill(small_disk / "filler")

        def write_more() -> None:
            with db.transaction() as tx:
                for _ in range(64):
                    tx.execute("INSERT INTO scratch VALUES (randomblob(65536))")

        with pytest.raises(Unavailable) as refused:
            write_more()
    finally:
        db.close()
    assert "full" in str(refused.value) or "disk" in str(refused.value)
    assert "cannot rollback" not in str(refused.value)
