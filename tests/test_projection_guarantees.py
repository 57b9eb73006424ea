"""The projection guarantees, on the real log and chDB: a crash between the sink write and the
offset commit shows no duplicate and loses nothing, and a replay rebuilds the same rows."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from hutch.runtime import Runtime, supervise
from projections import sink
from projections.otel_traces import OtelTracesProjection
from projections.parts import RecordsPart, split_lines
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
from storage.analytics import Analytics
from storage.analytics.chdb import ChdbAnalytics
from storage.analytics.clickhouse import ClickHouseAnalytics
from storage.log import Record, spans_of
from storage.log.sqlite import SQLiteLog
from tests.support.admin import hutch
from tests.support.clickhouse import StandIn
from tests.support.otlp_builders import span, traces
from tests.support.projection_cases import CASES, Case
from tests.support.servers import free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.integration

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
    try:
        await eventually_async(lambda: _count(analytics, TABLE) >= 380, timeout_s=15)
    finally:
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
    try:
        await eventually_async(lambda: _count(analytics, "otel_traces") >= 400, timeout_s=15)
    finally:
        stop.set()
        await task
    result = analytics.query("SELECT count(), uniqExact(SpanId) FROM otel_traces")
    analytics.close()
    await log.close()
    assert [int(v) for v in result.rows[0]] == [400, 400]


def _count(analytics: Analytics, table: str) -> int:
    return int(analytics.query(f"SELECT count() FROM {table}").rows[0][0])


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
        analytics = runtime.analytics
        assert analytics is not None
        await eventually_async(lambda: _count(analytics, TABLE) >= count, timeout_s=30)
        return analytics.query(ROWS).rows
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
    # developer.created, tenant.created, tenant.member_added (the personal tenant), app.created
    assert (code, answer) == (0, {"replayed": "identity", "records": 4})
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
    await eventually_async(lambda: starts >= 3, timeout_s=5, interval_s=0.01)
    assert not supervised.done()
    supervised.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervised


def _crash_after_writing(data: Path, case: Case, *, cut_as_runner: bool = True) -> list[Any]:
    """A projector process that writes every record in the log, begun but not committed,
    then dies by SIGKILL; the parts its write made ([table, path])."""
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.projection_cases",
            str(data),
            case.name,
            "runner" if cut_as_runner else "whole",
        ],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-3000:]
    made: list[Any] = orjson.loads(child.stdout.splitlines()[-1])
    return made


async def _project(data: Path, case: Case, expected: int) -> dict[str, list[int]]:
    """Run the case's projector on the log until every table has its rows (or the runner
    ended; a failure after 60 s); each table's row count and distinct rows."""
    log = SQLiteLog(data / "log.db")
    await log.start()
    analytics = ChdbAnalytics(data / "clickhouse")
    projection = case.projection()
    consumer = log.consumer(group_name(projection), projection.topics)
    runner = AnalyticsRunner(
        projection, consumer, analytics, batch=1000, linger_s=0.01, in_engine=case.in_engine
    )

    def counted() -> dict[str, list[int]]:
        return {
            table: [
                int(v)
                for v in analytics.query(f"SELECT count(), uniqExact({key}) FROM {table}").rows[0]
            ]
            for table, (key, _) in case.counts.items()
        }

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    def all_written() -> bool:
        every = all(c >= expected * case.counts[t][1] for t, (c, _) in counted().items())
        return every or task.done()  # a runner that ended writes no more: see what it left

    try:
        await eventually_async(all_written, timeout_s=60, interval_s=0.1)
        await asyncio.sleep(0.3)  # a duplicate written late would show now
        return counted()
    finally:
        stop.set()
        await task
        analytics.close()
        await log.close()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("lost", ["every part", "one part of each table"])
@pytest.mark.parametrize("name", sorted(CASES))
async def test_rows_a_crash_lost_are_written_again_once(
    tmp_path: Path, name: str, lost: str
) -> None:
    """The engine recorded the write's blocks as inserted, then lost their parts (a crash
    before they were on disk): the span delivered again must not be dropped as a duplicate,
    nor doubled where some of its parts survived."""
    case = CASES[name]
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    await log.append(case.topic, [case.envelope(n) for n in range(40)])
    made = _crash_after_writing(tmp_path, case)
    removed = 0
    for table in case.counts:
        paths = [path for t, path in made if t == table]
        assert len(paths) >= 2, made  # a part per day
        for path in paths if lost == "every part" else paths[:1]:
            shutil.rmtree(path)
            removed += 1
    await log.append(case.topic, [case.envelope(n) for n in range(40, 60)])
    await log.close()

    counts = await _project(tmp_path, case, 60)
    assert removed
    assert counts == {table: [60 * rows] * 2 for table, (_, rows) in case.counts.items()}


@pytest.mark.integration
@pytest.mark.slow
async def test_a_span_written_in_other_parts_before_a_crash_is_not_doubled(
    tmp_path: Path,
) -> None:
    """A crashed writer that cut the span otherwise (another version, another path): what it
    wrote is replaced, not added to."""
    case = CASES["telemetry-python"]
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    await log.append(case.topic, [case.envelope(n) for n in range(40)])
    await log.close()
    assert _crash_after_writing(tmp_path, case, cut_as_runner=False)
    assert await _project(tmp_path, case, 40) == {"telemetry_events": [40, 40]}


async def test_a_span_of_json_lines_cuts_into_halves_of_whole_records(tmp_path: Path) -> None:
    """The engine path's pieces, for a disk too full for a whole span: the halves hold every
    line once, each whole, in consecutive offsets, whatever the payloads' strings hold."""
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    tricky = ' {"offset":1, "x": {"offset": 2}} \\" {"offset":'
    await log.append(
        "telemetry",
        [
            new_envelope(
                "telemetry.event.v1",
                orjson.dumps({"kind": "info", "version": tricky, "bits": {"offset": n}}),
                key="a",
                app="a",
            )
            for n in range(7)
        ],
    )
    batch = log.read_json_sync("telemetry", 0, 100)
    await log.close()
    assert batch is not None
    first, second = split_lines(batch)
    assert (first.span.first, first.span.last, first.records) == (0, 3, 4)
    assert (second.span.first, second.span.last, second.records) == (4, 6, 3)
    decoded = [orjson.loads(text) for half in (first, second) for text in _json_lines(half.lines)]
    assert [line["offset"] for line in decoded] == list(range(7))
    assert all(line["payload"]["version"] == tricky for line in decoded)
    one = split_lines(split_lines(first)[0])[0]
    assert one.records == 1
    assert split_lines(one) == [one]


def _json_lines(lines: bytes) -> list[bytes]:
    """JSON objects one after another, separated by spaces, read one by one."""
    decoder = orjson.loads
    objects: list[bytes] = []
    rest = lines.strip()
    while rest:
        for end in range(rest.find(b"}") + 1, len(rest) + 1):
            try:
                decoder(rest[:end])
            except orjson.JSONDecodeError:
                continue
            objects.append(rest[:end])
            rest = rest[end:].lstrip()
            break
        else:
            raise AssertionError(f"not JSON lines: {rest[:200]!r}")
    return objects


@pytest.mark.integration
@pytest.mark.slow
def test_a_clickhouse_server_that_lost_parts_gets_the_rows_again(tmp_path: Path) -> None:
    """The same on the server adapter (the stand-in: ClickHouse's HTTP interface in front of
    the engine, a process that is killed and started again): a part lost after the server
    recorded the block is written again, a part that survived is not doubled."""
    server = StandIn(free_port(), tmp_path)
    server.start()
    projection = TelemetryProjection(lambda app: 30)
    case = CASES["telemetry-python"]
    try:
        for round_, lost in enumerate(("one part", "every part")):
            offsets = range(round_ * 100, round_ * 100 + 40)  # spans of their own
            part = RecordsPart(
                projection, [Record("telemetry", 0, n, case.envelope(n)) for n in offsets]
            )
            store = ClickHouseAnalytics.from_url(server.url)
            ensure_tables(store, projection)
            store.execute(f"TRUNCATE TABLE {TABLE}")
            sink.write(store, projection.name, part, checked=False)
            paths = [
                str(row[0])
                for row in store.query(
                    "SELECT path FROM system.parts WHERE active AND table = {t:String} "
                    "AND database = currentDatabase() ORDER BY name",
                    {"t": TABLE},
                ).rows
            ]
            store.close()
            assert len(paths) == 2  # a part per day
            assert server.process is not None
            server.process.kill()  # SIGKILL: nothing is flushed or cleaned up
            server.process.wait()
            for path in paths[:1] if lost == "one part" else paths:
                shutil.rmtree(path)
            server.start()
            store = ClickHouseAnalytics.from_url(server.url)
            sink.write(store, projection.name, part, checked=True)
            counted = store.query(f"SELECT count(), uniqExact(id) FROM {TABLE}").rows[0]
            store.close()
            assert [int(v) for v in counted] == [40, 40], lost
    finally:
        server.stop()
