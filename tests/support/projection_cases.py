"""Every analytics projection with records to feed it and a way to count its rows, for tests
that must hold for all of them; and a writer that dies between the sink write and the offset
commit, run as a process of its own (`python -m tests.support.projection_cases DATA CASE`).

Records alternate between yesterday and today, so each insert makes a part per day: a crash
can then keep some of an insert's parts and lose others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Metric,
    NumberDataPoint,
    Sum,
)

from projections.flag_evaluations import FlagEvaluationsProjection
from projections.interface import AnalyticsProjection, EngineProjection
from projections.otel_logs import OtelLogsProjection
from projections.otel_metrics import OtelMetricsProjection
from projections.otel_traces import OtelTracesProjection
from projections.runner import (
    chunks,
    ensure_tables,
    group_name,
    parts,
    write_in_engine,
    write_rows,
)
from projections.telemetry import TelemetryProjection
from schemas.envelope import PROTOBUF, Envelope, new_envelope
from schemas.events import Topic
from schemas.flags.events import FlagEvaluations, encode
from storage.analytics.chdb import ChdbAnalytics
from storage.log import spans_of
from storage.log.sqlite import SQLiteLog
from tests.support.otlp_builders import logs, metrics, span, traces

DAY_US = 86_400_000_000


def at_us(n: int) -> int:
    """Record n's time: even ones yesterday, odd ones now."""
    now = time.time_ns() // 1000
    return now - DAY_US if n % 2 == 0 else now


@dataclass(frozen=True)
class Case:
    name: str
    topic: Topic
    projection: Callable[[], AnalyticsProjection]
    envelope: Callable[[int], Envelope]
    counts: dict[str, tuple[str, int]]
    """Per table: an expression naming a row uniquely, and the rows one record makes."""
    in_engine: bool = True


def _telemetry(n: int) -> Envelope:
    payload = orjson.dumps({"kind": "info", "version": "1", "bits": {"n": n}})
    return new_envelope("telemetry.event.v1", payload, key="demo", app="demo", received_at=at_us(n))


def _otlp(type_: str, payload: bytes) -> Envelope:
    return new_envelope(type_, payload, key="demo", app="demo", content_type=PROTOBUF)  # type: ignore[arg-type]


def _traces(n: int) -> Envelope:
    start = at_us(n) * 1000
    request = traces(
        *(
            span(n * 10 + i + 1, trace_id=(n + 1).to_bytes(16, "big"), start_time_unix_nano=start)
            for i in range(3)
        )
    )
    return _otlp("otlp.traces.v1", request.SerializeToString())


def _logs(n: int) -> Envelope:
    record = LogRecord(time_unix_nano=at_us(n) * 1000, body=AnyValue(string_value=f"log {n}"))
    return _otlp("otlp.logs.v1", logs(record).SerializeToString())


def _metrics(n: int) -> Envelope:
    point = {"time_unix_nano": at_us(n) * 1000}
    request = metrics(
        Metric(name="cpu", gauge=Gauge(data_points=[NumberDataPoint(as_double=n, **point)])),
        Metric(
            name="requests",
            sum=Sum(
                aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
                is_monotonic=True,
                data_points=[NumberDataPoint(as_int=n, **point)],
            ),
        ),
    )
    return _otlp("otlp.metrics.v1", request.SerializeToString())


def _flags(n: int) -> Envelope:
    reports = FlagEvaluations(
        "demo", [{"flagName": "a", "enabled": True}, {"flagName": f"b{n}", "enabled": False}]
    )
    return new_envelope(
        "flag.evaluations.v1", encode(reports), key="demo", app="demo", received_at=at_us(n)
    )


def _days(app: str) -> int:
    return 30


CASES = {
    case.name: case
    for case in (
        Case(
            "telemetry",
            "telemetry",
            lambda: TelemetryProjection(_days),
            _telemetry,
            {"telemetry_events": ("id", 1)},
        ),
        Case(
            "telemetry-python",
            "telemetry",
            lambda: TelemetryProjection(_days),
            _telemetry,
            {"telemetry_events": ("id", 1)},
            in_engine=False,
        ),
        Case(
            "otel_traces",
            "otlp.traces",
            lambda: OtelTracesProjection(30),
            _traces,
            {"otel_traces": ("SpanId", 3), "otel_traces_trace_id_ts": ("TraceId", 1)},
        ),
        Case(
            "otel_logs",
            "otlp.logs",
            lambda: OtelLogsProjection(30),
            _logs,
            {"otel_logs": ("Body", 1)},
        ),
        Case(
            "otel_metrics",
            "otlp.metrics",
            lambda: OtelMetricsProjection(30),
            _metrics,
            {"otel_metrics_gauge": ("Value", 1), "otel_metrics_sum": ("Value", 1)},
        ),
        Case(
            "flag_evaluations",
            "flags",
            lambda: FlagEvaluationsProjection(_days),
            _flags,
            {"flag_evaluations": ("(EventId, EventIndex)", 2)},
        ),
    )
}


async def write_then_die(data: Path, case: Case, *, cut_as_runner: bool) -> None:
    """Write every record in the log as the runner would (or as one part), begun and never
    committed; print the parts the write made (JSON: [table, path] pairs); die by SIGKILL."""
    log = SQLiteLog(data / "log.db")
    await log.start()
    analytics = ChdbAnalytics(data / "clickhouse")
    projection = case.projection()
    ensure_tables(analytics, projection)
    consumer = log.consumer(group_name(projection), projection.topics)
    await consumer.start()
    if case.in_engine and hasattr(projection, "engine_inserts"):
        (batch,) = await consumer.poll_json(100_000, 5)
        await consumer.begin([batch.span])
        write_in_engine(analytics, cast(EngineProjection, projection), batch)
    else:
        (chunk,) = chunks(await consumer.poll(100_000, 5))
        await consumer.begin(spans_of(chunk))
        for part in parts(chunk) if cut_as_runner else [chunk]:
            write_rows(analytics, projection, part, projection.transform(part))
    made = analytics.query(
        "SELECT table, path FROM system.parts WHERE active AND database = currentDatabase() "
        "ORDER BY table, name"
    )
    print(orjson.dumps(made.rows).decode(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    data, name, cut = sys.argv[1:4]
    asyncio.run(write_then_die(Path(data), CASES[name], cut_as_runner=cut == "runner"))
