"""`hutch replay` rebuilds the otel_* tables from the stored export requests, the same rows
each time; and a request the projector cannot decode is skipped, not fatal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from base.settings import Settings
from hutch.wiring import open_log
from schemas.envelope import new_envelope
from storage.analytics.chdb import ChdbAnalytics
from tests.support.admin import hutch
from tests.support.otlp_builders import logs, span, traces
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration

NOW = (time.time_ns() // 10**9 - 60) * 10**9
SPANS = "SELECT App, TraceId, SpanId, SpanName, Timestamp FROM otel_traces ORDER BY SpanId"


async def _append(settings: Settings) -> None:
    log = open_log(settings)
    await log.start()
    requests = [
        traces(*(span(n, start_time_unix_nano=NOW + n) for n in range(i * 10 + 1, i * 10 + 11)))
        for i in range(3)
    ]
    envelopes = [
        new_envelope(
            "otlp.traces.v1",
            r.SerializeToString(),
            key="replayed",
            app="replayed",
            content_type="application/x-protobuf",
        )
        for r in requests
    ]
    poison = new_envelope(
        "otlp.traces.v1",
        b"\x0a\xff",
        key="replayed",
        app="replayed",
        content_type="application/x-protobuf",
    )
    await log.append("otlp.traces", [envelopes[0], poison, *envelopes[1:]])
    record = logs(LogRecord(time_unix_nano=NOW, body={"string_value": "kept"}))
    await log.append(
        "otlp.logs",
        [
            new_envelope(
                "otlp.logs.v1",
                record.SerializeToString(),
                key="replayed",
                app="replayed",
                content_type="application/x-protobuf",
            )
        ],
    )
    await log.close()


def test_replay_rebuilds_otel_tables_with_the_same_rows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    asyncio.run(_append(settings))

    code, first = hutch(settings, "replay", "otel_traces")
    # 30 spans, and one trace-id lookup row: the spans share one trace, replayed in one batch
    assert (code, first) == (0, {"replayed": "otel_traces", "rows": 30 + 1})
    analytics = ChdbAnalytics(settings.data / "clickhouse")
    try:
        before = analytics.query(SPANS).rows
    finally:
        analytics.close()
    assert len(before) == 30

    code, again = hutch(settings, "replay", "otel_traces")
    assert (code, again) == (0, first)
    code, logged = hutch(settings, "replay", "otel_logs")
    assert (code, logged) == (0, {"replayed": "otel_logs", "rows": 1})
    analytics = ChdbAnalytics(settings.data / "clickhouse")
    try:
        assert analytics.query(SPANS).rows == before
        assert analytics.query("SELECT Body FROM otel_logs").rows == [["kept"]]
    finally:
        analytics.close()
