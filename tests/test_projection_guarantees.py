"""The projection guarantees, on the real log and chDB: a crash between the sink write and the
offset commit shows no duplicate and loses nothing, and a replay rebuilds the same rows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from hutch.runtime import Runtime, supervise
from projections.otel_traces import OtelTracesProjection
from projections.runner import (
    AnalyticsRunner,
    chunks,
    ensure_tables,
    group_name,
    parts,
    write_rows,
)
from projections.telemetry import TABLE, TelemetryProjection
from schemas.envelope import PROTOBUF, new_envelope
from storage.analytics.chdb import ChdbAnalytics
from storage.log import spans_of
from storage.log.sqlite import SQLiteLog
from tests.conftest import make_settings
from tests.helpers import hutch
from tests.otlp_builders import span, traces

ROWS = (
    f"SELECT toString(id), app, toString(kind), version, bits, received_at FROM {TABLE} ORDER BY id"
)


def events(count: int, app: str = "guarded") -> list[Any]:
    return [
        new_envelope(
            "telemetry.event.v1",
            orjson.dumps({"kind": "info", "version": "1", "bits": {"n": i}}),
            key=app,
            app=app,
        )
        for i in range(count)
    ]


async def test_crash_between_write_and_commit_leaves_no_duplicates(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    analytics = ChdbAnalytics(tmp_path / "clickhouse")
    projection = TelemetryProjection(lambda app: 30)
    ensure_tables(analytics, projection)
    await log.append("telemetry", events(300))
    group = group_name(projection)

    # A projector writes a batch to the sink, then dies before committing its offsets.
    consumer = log.consumer(group, projection.topics)
    await consumer.start()
    batch = await consumer.poll(120, 5)
    (chunk,) = chunks(batch)
    await consumer.begin(spans_of(chunk))
    write_rows(analytics, projection, chunk, projection.transform(chunk))
    await consumer.close()
    assert int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0]) == 120

    # Meanwhile more events arrive; a new projector takes over from the committed offsets.
    await log.append("telemetry", events(80))
    stop = asyncio.Event()
    runner = AnalyticsRunner(
        projection, log.consumer(group, projection.topics), analytics, batch=1000, linger_s=0.01
    )
    task = asyncio.create_task(runner.run(stop))
    for _ in range(200):
        if int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0]) >= 380:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    result = analytics.query(f"SELECT count(), uniqExact(id) FROM {TABLE}")
    analytics.close()
    await log.close()
    assert [int(v) for v in result.rows[0]] == [380, 380]


async def test_crash_after_some_parts_of_a_span_leaves_no_duplicates(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    analytics = ChdbAnalytics(tmp_path / "clickhouse")
    projection = OtelTracesProjection(30)
    ensure_tables(analytics, projection)
    now = time.time_ns()  # within the table's TTL
    requests = [
        traces(*(span(n * 10 + i, start_time_unix_nano=now) for i in range(10)))
        for n in range(1, 41)
    ]
    envelopes = [
        new_envelope(
            "otlp.traces.v1", r.SerializeToString(), key="demo", app="demo", content_type=PROTOBUF
        )
        for r in requests
    ]
    await log.append("otlp.traces", envelopes)
    group = group_name(projection)

    # A projector writes the first part of a span's rows, then dies.
    consumer = log.consumer(group, projection.topics)
    await consumer.start()
    (chunk,) = chunks(await consumer.poll(30, 5))
    await consumer.begin(spans_of(chunk))
    first, *_ = parts(chunk)
    write_rows(analytics, projection, first, projection.transform(first))
    await consumer.close()
    assert int(analytics.query("SELECT count() FROM otel_traces").rows[0][0]) == 150

    stop = asyncio.Event()
    runner = AnalyticsRunner(
        projection, log.consumer(group, projection.topics), analytics, batch=1000, linger_s=0.01
    )
    task = asyncio.create_task(runner.run(stop))
    for _ in range(200):
        if int(analytics.query("SELECT count() FROM otel_traces").rows[0][0]) >= 400:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    result = analytics.query("SELECT count(), uniqExact(SpanId) FROM otel_traces")
    analytics.close()
    await log.close()
    assert [int(v) for v in result.rows[0]] == [400, 400]


def test_a_span_is_cut_into_the_same_even_parts_every_time() -> None:
    chunk = list(range(7))
    assert parts(chunk) == [[0, 1, 2, 3], [4, 5, 6]]
    assert parts(chunk, 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert parts([5]) == [[5]]


async def _project_live(settings: Any, count: int) -> list[list[Any]]:
    runtime = Runtime(settings, want_analytics=True, run_projectors=True)
    await asyncio.to_thread(runtime.db.migrate)
    await runtime.start()
    try:
        for start in range(0, count, 100):
            await runtime.log.append("telemetry", events(count)[start : start + 100])
        assert runtime.analytics is not None
        for _ in range(400):
            done = runtime.analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0]
            if int(done) >= count:
                break
            await asyncio.sleep(0.05)
        return runtime.analytics.query(ROWS).rows
    finally:
        await runtime.close()
        runtime.release()


def test_replay_rebuilds_the_same_rows_id_for_id(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    live = asyncio.run(_project_live(settings, 500))
    assert len(live) == 500

    code, replayed = hutch(settings, "replay", "telemetry")
    assert code == 0
    assert replayed == {"replayed": "telemetry", "rows": 500}

    analytics = ChdbAnalytics(settings.data / "clickhouse")
    try:
        rebuilt = analytics.query(ROWS).rows
    finally:
        analytics.close()
    assert rebuilt == live


def test_replay_of_an_unknown_projection_names_the_known_ones(tmp_path: Path) -> None:
    code, answer = hutch(make_settings(tmp_path / "data"), "replay", "nonsense")
    assert code == 1
    assert "telemetry" in answer["error"]["message"]
    assert "identity" in answer["error"]["message"]


def test_replay_of_the_identity_projection(tmp_path: Path) -> None:
    data = make_settings(tmp_path / "data")
    hutch(data, "developer", "create", "jan")
    hutch(data, "app", "create", "jan-app", "--developer", "jan")
    code, answer = hutch(data, "replay", "identity")
    assert (code, answer) == (0, {"replayed": "identity", "records": 2})
    code, again = hutch(data, "app", "create", "jan-app", "--developer", "jan")
    assert again["error"]["code"] == "conflict"  # the rebuilt state still knows the app


async def test_a_projector_ended_by_a_stray_cancellation_is_started_again() -> None:
    """A library may let a CancelledError out of its own cancelled tasks; the projector that
    ends on one is restarted like any failure, while cancelling the projector still stops it."""
    stop = asyncio.Event()
    starts = 0

    async def projector() -> None:
        nonlocal starts
        starts += 1
        inner = asyncio.create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        inner.cancel()
        await inner  # raises CancelledError into a task nobody cancelled

    supervised = asyncio.create_task(supervise(projector, "stray", stop, pause_s=0.01))
    for _ in range(200):
        if starts >= 3:
            break
        await asyncio.sleep(0.01)
    assert starts >= 3
    assert not supervised.done()
    supervised.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervised
