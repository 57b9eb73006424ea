"""A projection's transform run in the engine gives the rows its Python transform gives.

The same records, valid and malformed, are projected both ways from one SQLite log into chDB:
`transform` over polled records, and `engine_inserts` over the log's JSON lines.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from projections.runner import (
    AnalyticsRunner,
    ensure_tables,
    group_name,
    write_in_engine,
    write_rows,
)
from projections.telemetry import TABLE, TelemetryProjection
from schemas.envelope import Envelope, new_envelope
from schemas.telemetry import parse_event
from storage.analytics.chdb import ChdbAnalytics
from storage.log.sqlite import SQLiteLog
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.integration

ROWS = (
    "SELECT toString(id), app, toString(received_at), toString(kind), version, bits, "
    f"retention_days FROM {TABLE} ORDER BY id"
)
RETENTION = {"kept-long": 400, "kept-short": 3}

VALID_BITS: list[dict[str, Any]] = [
    {},
    {"screen": "home", "n": 1},
    {"s": 'a\n"q"\\ é 😀 \u0001 \u2028 / </script>', "t": True, "z": None},
    {"f": 1e20, "g": 1.5e-7, "h": 0.1, "neg": -0.0, "max": 1.7976931348623157e308},
    {"i": 12345678901234567, "big": 18446744073709551615, "low": -9223372036854775808},
    {"nest": {"a": [1, 2, {"b": None}], "deep": {"x": {"y": [[], {}]}}}},
    {"k" * 200: "v" * 5000},
]

MALFORMED_PAYLOADS = [
    b"not json",
    b'{"kind": "info", "version": "1", "bits": {}',  # truncated
    b"\xff\xfe",
    b'{"kind": 5, "version": "1", "bits": {}}',
    b'{"kind": "fatal", "version": "1", "bits": {}}',
    b'{"kind": null, "version": "1", "bits": {}}',
    b'{"version": "1", "bits": {}}',
    b'{"kind": "info", "version": 1, "bits": {}}',
    b'{"kind": "info", "version": null, "bits": {}}',
    b'{"kind": "info", "version": ["1"], "bits": {}}',
    b'{"kind": "info", "version": "1"}',
    b'{"kind": "info", "version": "1", "bits": [1]}',
    b'{"kind": "info", "version": "1", "bits": null}',
    b'{"kind": "info", "version": "1", "bits": "text"}',
    b'{"kind": "info", "version": "1", "bits": 3}',
    b'["info", "1", {}]',
    b"",
]


def envelopes() -> list[Envelope]:
    out = []
    apps = ["kept-long", "kept-short", "default-app", 'it\'s "odd"']
    for n, bits in enumerate(VALID_BITS * 3):
        event = parse_event(
            {"kind": "error" if n % 2 else "debug", "version": f"{n}.0", "bits": bits}
        )
        out.append(
            new_envelope(
                "telemetry.event.v1", orjson.dumps(event), key="k", app=apps[n % len(apps)]
            )
        )
    for payload in MALFORMED_PAYLOADS:
        out.append(new_envelope("telemetry.event.v1", payload, key="k", app="default-app"))
    valid = orjson.dumps({"kind": "info", "version": "1", "bits": {}})
    out.append(new_envelope("telemetry.event.v1", valid, key="k", app=None))  # no app
    out.append(new_envelope("identity.app.created.v1", valid, key="k", app="default-app"))
    return out


def retention_of(app: str) -> int:
    return RETENTION.get(app, 30)


@pytest.fixture
async def stores(tmp_path: Path) -> Any:
    log = SQLiteLog(tmp_path / "log.db")
    await log.start()
    analytics = ChdbAnalytics(tmp_path / "clickhouse")
    yield log, analytics
    analytics.close()
    await log.close()


async def test_engine_rows_equal_the_python_rows(stores: Any) -> None:
    log, analytics = stores
    projection = TelemetryProjection(retention_of)
    ensure_tables(analytics, projection)
    await log.append("telemetry", envelopes())
    records = log.read_sync("telemetry", 0, 1000)

    write_rows(analytics, projection, records, projection.transform(records))
    python_rows = analytics.query(ROWS).rows
    analytics.execute(f"TRUNCATE TABLE {TABLE}")
    batch = log.read_json_sync("telemetry", 0, 1000)
    assert batch is not None
    assert batch.records == len(records)
    write_in_engine(analytics, projection, batch)
    engine_rows = analytics.query(ROWS).rows

    assert len(python_rows) == len(VALID_BITS) * 3
    assert engine_rows == python_rows
    # bits is the stored text of the object, byte for byte.
    stored = {r.envelope.id: orjson.loads(r.envelope.payload) for r in records[: len(python_rows)]}
    for row in engine_rows:
        assert row[5] == orjson.dumps(stored[row[0]]["bits"]).decode()
    assert {row[1]: row[6] for row in engine_rows}["kept-short"] == 3


async def test_a_crash_after_an_engine_write_leaves_no_duplicates(stores: Any) -> None:
    log, analytics = stores
    projection = TelemetryProjection(retention_of)
    ensure_tables(analytics, projection)
    valid = [e for e in envelopes() if e.type == "telemetry.event.v1" and e.app][:20]
    await log.append("telemetry", valid)
    newer = [e._replace(id=e.id[:-4] + "beef") for e in valid]

    # A projector on the engine path writes a span, then dies before committing it.
    consumer = log.consumer(group_name(projection), projection.topics)
    await consumer.start()
    (batch,) = await consumer.poll_json(12, 5)
    await consumer.begin([batch.span])
    write_in_engine(analytics, projection, batch)
    await consumer.close()

    await log.append("telemetry", newer)
    stop = asyncio.Event()
    runner = AnalyticsRunner(
        projection,
        log.consumer(group_name(projection), projection.topics),
        analytics,
        batch=12,  # the size the crashed projector polled: its span comes back whole
        linger_s=0.01,
    )
    task = asyncio.create_task(runner.run(stop))
    count = f"SELECT count(), uniqExact(id) FROM {TABLE}"
    try:
        await eventually_async(lambda: analytics.query(count).rows[0] == [40, 40], timeout_s=15)
    finally:
        stop.set()
        await task
    assert analytics.query(count).rows[0] == [40, 40]  # and nothing more once it stopped
    assert await log.consumer(group_name(projection), projection.topics).lag() == 0
