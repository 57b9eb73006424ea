"""The otel_* projections: rows for known OTLP requests, and those rows in a real chDB."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
    Summary,
    SummaryDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from projections.interface import AnalyticsProjection, Columns
from projections.otel_logs import OtelLogsProjection
from projections.otel_metrics import OtelMetricsProjection
from projections.otel_traces import COMPILED, OtelTracesProjection
from projections.runner import ensure_tables, write_rows
from schemas.envelope import JSON
from storage.analytics.chdb import ChdbAnalytics
from storage.analytics.protocol import RowBinary
from storage.log import Record
from tests.support.otlp_builders import (
    SPAN_ID,
    T0,
    TRACE_ID,
    kv,
    logs,
    metrics,
    otlp_json,
    record,
    span,
    traces,
)
from tests.support.rowbinary import read_columns
from tests.support.services import IN_CI

pytestmark = pytest.mark.integration

CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
T0_TEXT = "1700000000.123456789"  # T0 as DateTime64(9) JSON input


def _rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


# --- traces -------------------------------------------------------------------------------

TracesTransform = Callable[[list[Record]], dict[str, Columns]]


@pytest.fixture(params=["python", "compiled"])
def traces_transform(request: pytest.FixtureRequest) -> TracesTransform:
    """The otel_traces transform, each of the two, with RowBinary read back into columns:
    every traces test below holds both to the same rows."""
    compiled = request.param == "compiled"
    if compiled and not COMPILED:
        message = "projections.otel_spans_rowbinary was not built (no C compiler?)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    projection = OtelTracesProjection(30, compiled=compiled)

    def transform(records: list[Record]) -> dict[str, Columns]:
        rows = projection.transform(records)
        return {
            table: read_columns(block) if isinstance(block, RowBinary) else block
            for table, block in rows.items()
        }

    return transform


def test_span_rows_follow_the_exporter(traces_transform: TracesTransform) -> None:
    request = traces(
        span(
            1,
            parent_span_id=bytes(8),
            trace_state="k=v",
            attributes=[
                kv("http.route", "/pay"),
                kv("http.status_code", 500),
                kv("retry", True),
                kv("ratio", 0.25),
                kv("tiny", 1e-7),
                kv("raw", b"\x01\x02"),
                kv(
                    "list",
                    AnyValue(
                        array_value=ArrayValue(
                            values=[
                                AnyValue(string_value="<a>"),
                                AnyValue(int_value=1),
                                AnyValue(double_value=2.0),
                            ]
                        )
                    ),
                ),
                kv("map", AnyValue(kvlist_value=KeyValueList(values=[kv("z", 1), kv("a", "b")]))),
                kv("none", AnyValue()),
            ],
            status=Status(code=Status.STATUS_CODE_ERROR, message="card declined"),
            events=[Span.Event(time_unix_nano=T0 + 5, name="retry", attributes=[kv("n", 2)])],
            links=[Span.Link(trace_id=TRACE_ID, span_id=SPAN_ID, trace_state="x=1")],
        ),
        span(
            2,
            parent_span_id=(1).to_bytes(8, "big"),
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=T0 + 1000,
            end_time_unix_nano=T0,
        ),
    )
    request.resource_spans[0].resource.attributes.append(kv("host.name", "web-1"))
    payload = request.SerializeToString()
    rows = traces_transform([record("otlp.traces.v1", payload)])

    spans = _rows(rows["otel_traces"])
    first, second = spans
    assert first == {
        "App": "demo",
        "Timestamp": T0_TEXT,
        "TraceId": TRACE_ID.hex(),
        "SpanId": "0000000000000001",
        "ParentSpanId": "",
        "TraceState": "k=v",
        "SpanName": "op-1",
        "SpanKind": "Server",
        "ServiceName": "checkout",
        "ResourceAttributes": {"host.name": "web-1", "service.name": "checkout"},
        "ScopeName": "io.hutch.test",
        "ScopeVersion": "1.2.3",
        "SpanAttributes": {
            "http.route": "/pay",
            "http.status_code": "500",
            "list": '["\\u003ca\\u003e",1,2]',
            "map": '{"a":"b","z":1}',
            "none": "",
            "ratio": "0.25",
            "raw": "AQI=",
            "retry": "true",
            "tiny": "1e-7",
        },
        "Duration": 1_500_000,
        "StatusCode": "Error",
        "StatusMessage": "card declined",
        "Events.Timestamp": ["1700000000.123456794"],
        "Events.Name": ["retry"],
        "Events.Attributes": [{"n": "2"}],
        "Links.TraceId": [TRACE_ID.hex()],
        "Links.SpanId": [SPAN_ID.hex()],
        "Links.TraceState": ["x=1"],
        "Links.Attributes": [{}],
    }
    assert list(first["SpanAttributes"]) == sorted(first["SpanAttributes"])
    assert (second["ParentSpanId"], second["SpanKind"], second["StatusCode"]) == (
        "0000000000000001",
        "Client",
        "Unset",
    )
    assert second["Duration"] == 0  # ended before it started: not a wrapped uint64

    assert _rows(rows["otel_traces_trace_id_ts"]) == [
        {"App": "demo", "TraceId": TRACE_ID.hex(), "Start": 1_700_000_000, "End": 1_700_000_000}
    ]


def test_rejected_spans_are_dropped_and_json_records_give_the_same_rows(
    traces_transform: TracesTransform,
) -> None:
    request = traces(span(1), span(2, trace_id=bytes(16)), span(3, span_id=b"\x01"))
    from_protobuf = traces_transform([record("otlp.traces.v1", request.SerializeToString())])
    from_json = traces_transform(
        [record("otlp.traces.v1", orjson.dumps(otlp_json(request)), content_type=JSON)]
    )
    assert from_protobuf["otel_traces"]["SpanId"] == ["0000000000000001"]
    assert from_json == from_protobuf


def test_trace_lookup_spans_the_batch_per_app_and_trace(traces_transform: TracesTransform) -> None:
    early = traces(span(1, start_time_unix_nano=T0))
    late = traces(span(2, start_time_unix_nano=T0 + 90_000_000_000))
    other = traces(span(3, trace_id=b"\x01" * 16))
    rows = traces_transform(
        [
            record("otlp.traces.v1", late.SerializeToString(), offset=0),
            record("otlp.traces.v1", early.SerializeToString(), offset=1),
            record("otlp.traces.v1", other.SerializeToString(), offset=2, app="other"),
        ]
    )
    assert _rows(rows["otel_traces_trace_id_ts"]) == [
        {"App": "demo", "TraceId": TRACE_ID.hex(), "Start": 1_700_000_000, "End": 1_700_000_090},
        {"App": "other", "TraceId": "01" * 16, "Start": 1_700_000_000, "End": 1_700_000_000},
    ]


def test_undecodable_record_is_skipped_and_logged(
    traces_transform: TracesTransform, caplog: pytest.LogCaptureFixture
) -> None:
    good = traces(span(1)).SerializeToString()
    batch = [
        record("otlp.traces.v1", b"\x0a\xff\xff", offset=7),
        record("otlp.traces.v1", good, offset=8),
        record("otlp.traces.v1", b"{broken", offset=9, content_type=JSON),
    ]
    with caplog.at_level(logging.ERROR):
        rows = traces_transform(batch)
    assert rows["otel_traces"]["SpanId"] == ["0000000000000001"]
    assert sorted(r.offset for r in caplog.records if hasattr(r, "offset")) == [7, 9]
    assert traces_transform([batch[0]]) == {}


# --- logs ---------------------------------------------------------------------------------


def test_log_rows_follow_the_exporter() -> None:
    request = logs(
        LogRecord(
            time_unix_nano=T0,
            severity_number=SeverityNumber.SEVERITY_NUMBER_ERROR,
            severity_text="ERROR",
            body=AnyValue(kvlist_value=KeyValueList(values=[kv("msg", "x & y")])),
            attributes=[kv("user", "ann")],
            flags=0x101,
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            event_name="payment.failed",
        ),
        LogRecord(observed_time_unix_nano=T0 + 1, body=AnyValue(string_value="plain")),
        LogRecord(trace_id=b"\x01"),  # rejected at ingest, dropped here
    )
    request.resource_logs[0].scope_logs[0].schema_url = "https://scope"
    request.resource_logs[0].scope_logs[0].scope.CopyFrom(
        InstrumentationScope(name="log4j", version="2", attributes=[kv("a", 1)])
    )
    rows = OtelLogsProjection(7).transform([record("otlp.logs.v1", request.SerializeToString())])
    first, second = _rows(rows["otel_logs"])
    assert first == {
        "App": "demo",
        "Timestamp": T0_TEXT,
        "TraceId": TRACE_ID.hex(),
        "SpanId": SPAN_ID.hex(),
        "TraceFlags": 1,
        "SeverityText": "ERROR",
        "SeverityNumber": 17,
        "ServiceName": "checkout",
        "Body": '{"msg":"x \\u0026 y"}',
        "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1",
        "ResourceAttributes": {"service.name": "checkout"},
        "ScopeSchemaUrl": "https://scope",
        "ScopeName": "log4j",
        "ScopeVersion": "2",
        "ScopeAttributes": {"a": "1"},
        "LogAttributes": {"user": "ann"},
        "EventName": "payment.failed",
    }
    assert (second["Timestamp"], second["TraceId"], second["Body"]) == (
        "1700000000.123456790",
        "",
        "plain",
    )


# --- metrics ------------------------------------------------------------------------------


def _metrics_request(at: int = T0) -> Any:
    exemplar = Exemplar(
        time_unix_nano=at,
        as_int=3,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        filtered_attributes=[kv("k", "v")],
    )
    point: dict[str, Any] = {
        "start_time_unix_nano": at - 10,
        "time_unix_nano": at,
        "attributes": [kv("host", "a")],
    }
    return metrics(
        Metric(
            name="cpu",
            unit="1",
            description="CPU",
            gauge=Gauge(
                data_points=[
                    NumberDataPoint(as_double=0.5, exemplars=[exemplar], **point),
                    NumberDataPoint(as_double=float("nan"), flags=1, **point),
                ]
            ),
        ),
        Metric(
            name="requests",
            sum=Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
                data_points=[NumberDataPoint(as_int=42, **point)],
            ),
        ),
        Metric(
            name="latency",
            histogram=Histogram(
                aggregation_temporality=DELTA,
                data_points=[
                    HistogramDataPoint(
                        count=3,
                        sum=6.0,
                        bucket_counts=[1, 2],
                        explicit_bounds=[5.0],
                        min=1.0,
                        max=4.0,
                        **point,
                    ),
                    HistogramDataPoint(count=1, bucket_counts=[1], explicit_bounds=[5.0], **point),
                ],
            ),
        ),
        Metric(
            name="sizes",
            exponential_histogram=ExponentialHistogram(
                data_points=[
                    ExponentialHistogramDataPoint(
                        count=4,
                        sum=10.0,
                        scale=2,
                        zero_count=1,
                        positive=ExponentialHistogramDataPoint.Buckets(
                            offset=-1, bucket_counts=[1, 2]
                        ),
                        **point,
                    ),
                ]
            ),
        ),
        Metric(
            name="rpc",
            summary=Summary(
                data_points=[
                    SummaryDataPoint(
                        count=5,
                        sum=9.5,
                        quantile_values=[
                            SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=3.0)
                        ],
                        **point,
                    ),
                ]
            ),
        ),
        Metric(name="empty"),
    )


def test_metric_rows_go_to_their_tables() -> None:
    payload = _metrics_request().SerializeToString()
    rows = OtelMetricsProjection(30).transform([record("otlp.metrics.v1", payload)])
    assert sorted(rows) == [
        "otel_metrics_exponential_histogram",
        "otel_metrics_gauge",
        "otel_metrics_histogram",
        "otel_metrics_sum",
        "otel_metrics_summary",
    ]
    gauge = _rows(rows["otel_metrics_gauge"])
    assert gauge[0] | {"ResourceAttributes": None} == {
        "App": "demo",
        "ResourceAttributes": None,
        "ResourceSchemaUrl": "",
        "ScopeName": "io.hutch.test",
        "ScopeVersion": "",
        "ScopeAttributes": {},
        "ScopeDroppedAttrCount": 0,
        "ScopeSchemaUrl": "",
        "ServiceName": "checkout",
        "MetricName": "cpu",
        "MetricDescription": "CPU",
        "MetricUnit": "1",
        "Attributes": {"host": "a"},
        "StartTimeUnix": "1700000000.123456779",
        "TimeUnix": T0_TEXT,
        "Value": 0.5,
        "Flags": 0,
        "Exemplars.FilteredAttributes": [{"k": "v"}],
        "Exemplars.TimeUnix": [T0_TEXT],
        "Exemplars.Value": [3.0],
        "Exemplars.SpanId": [SPAN_ID.hex()],
        "Exemplars.TraceId": [TRACE_ID.hex()],
    }
    assert (gauge[1]["Value"], gauge[1]["Flags"]) == ("nan", 1)

    total = _rows(rows["otel_metrics_sum"])[0]
    assert (total["Value"], total["AggregationTemporality"], total["IsMonotonic"]) == (
        42.0,
        2,
        True,
    )

    histogram, odd = _rows(rows["otel_metrics_histogram"])
    assert (odd["BucketCounts"], odd["ExplicitBounds"], odd["Sum"]) == ([1], [5.0], 0.0)
    assert {
        k: histogram[k]
        for k in (
            "Count",
            "Sum",
            "BucketCounts",
            "ExplicitBounds",
            "Min",
            "Max",
            "AggregationTemporality",
        )
    } == {
        "Count": 3,
        "Sum": 6.0,
        "BucketCounts": [1, 2],
        "ExplicitBounds": [5.0],
        "Min": 1.0,
        "Max": 4.0,
        "AggregationTemporality": 1,
    }
    exponential = _rows(rows["otel_metrics_exponential_histogram"])[0]
    assert {
        k: exponential[k]
        for k in (
            "Scale",
            "ZeroCount",
            "PositiveOffset",
            "PositiveBucketCounts",
            "NegativeBucketCounts",
        )
    } == {
        "Scale": 2,
        "ZeroCount": 1,
        "PositiveOffset": -1,
        "PositiveBucketCounts": [1, 2],
        "NegativeBucketCounts": [],
    }
    summary = _rows(rows["otel_metrics_summary"])[0]
    quantiles = (summary["ValueAtQuantiles.Quantile"], summary["ValueAtQuantiles.Value"])
    assert quantiles == ([0.99], [3.0])


# --- the rows in chDB ---------------------------------------------------------------------


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[ChdbAnalytics]:
    """The chDB adapter in a fresh directory, closed afterwards (one path per process)."""
    store = ChdbAnalytics(tmp_path / "clickhouse")
    yield store
    store.close()


def _query(store: ChdbAnalytics, sql: str) -> list[list[Any]]:
    return store.query(sql).rows


def _load(store: ChdbAnalytics, projection: AnalyticsProjection, records: list[Record]) -> None:
    """Write the records' rows as the runner does, twice: a retried insert (same tokens)
    adds nothing."""
    for _ in range(2):
        ensure_tables(store, projection)  # IF NOT EXISTS: running it again is harmless
        write_rows(store, projection, records, projection.transform(records))


def test_projected_rows_load_into_chdb_and_answer_dashboard_queries(chdb: ChdbAnalytics) -> None:
    # Recent times: rows past the table TTL would be dropped as soon as they are merged.
    now = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000
    at = now + 123_456_789
    second = datetime.fromtimestamp(now // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    minute = second[:-2] + "00"
    trace_request = traces(
        span(
            1,
            attributes=[kv("http.route", "/pay")],
            status=Status(code=Status.STATUS_CODE_ERROR),
            start_time_unix_nano=at,
            end_time_unix_nano=at + 1_500_000,
            events=[Span.Event(time_unix_nano=at, name="retry")],
        ),
        span(
            2,
            parent_span_id=(1).to_bytes(8, "big"),
            start_time_unix_nano=at + 2_000_000_000,
            end_time_unix_nano=at + 2_500_000_000,
        ),
    )
    traces_payload = trace_request.SerializeToString()
    _load(chdb, OtelTracesProjection(30), [record("otlp.traces.v1", traces_payload)])
    log_request = logs(
        LogRecord(
            time_unix_nano=at,
            severity_text="WARN",
            severity_number=SeverityNumber.SEVERITY_NUMBER_WARN,
            body=AnyValue(string_value="slow payment"),
            trace_id=TRACE_ID,
        )
    )
    _load(chdb, OtelLogsProjection(30), [record("otlp.logs.v1", log_request.SerializeToString())])
    _load(
        chdb,
        OtelMetricsProjection(30),
        [record("otlp.metrics.v1", _metrics_request(at).SerializeToString())],
    )

    # Grafana's trace search: spans of a service in a time range, newest first.
    assert _query(
        chdb,
        f"""
        SELECT TraceId, SpanName, Duration / 1000000 AS ms, StatusCode,
               SpanAttributes['http.route'], toString(toUnixTimestamp64Nano(Timestamp)),
               Events.Name
        FROM otel_traces
        WHERE App = 'demo' AND ServiceName = 'checkout'
          AND Timestamp >= fromUnixTimestamp64Nano({now})
          AND Timestamp <= fromUnixTimestamp64Nano({now + 3_600_000_000_000})
        ORDER BY Timestamp DESC
    """,
    ) == [
        [TRACE_ID.hex(), "op-2", 500, "Unset", "", str(at + 2_000_000_000), []],
        [TRACE_ID.hex(), "op-1", 1.5, "Error", "/pay", str(at), ["retry"]],
    ]
    # Grafana's trace view: the trace's time range first, then its spans.
    end = datetime.fromtimestamp(now // 1_000_000_000 + 2, UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert _query(
        chdb,
        f"""
        SELECT toString(min(Start)), toString(max(End)) FROM otel_traces_trace_id_ts
        WHERE App = 'demo' AND TraceId = '{TRACE_ID.hex()}'
    """,
    ) == [[second, end]]
    # Grafana's log panel reads TimestampTime, which its DEFAULT fills.
    assert _query(
        chdb,
        f"""
        SELECT toString(TimestampTime), SeverityText, Body, TraceId FROM otel_logs
        WHERE App = 'demo' AND ServiceName = 'checkout' AND TimestampTime >= '{second}'
    """,
    ) == [[second, "WARN", "slow payment", TRACE_ID.hex()]]
    assert _query(
        chdb,
        """
        SELECT MetricName, toString(toStartOfMinute(TimeUnix)) AS t, max(Value), count()
        FROM otel_metrics_gauge WHERE App = 'demo' AND ServiceName = 'checkout'
        GROUP BY MetricName, t
    """,
    ) == [["cpu", minute, 0.5, 2]]
    assert _query(chdb, "SELECT isNaN(Value) FROM otel_metrics_gauge ORDER BY Flags") == [[0], [1]]
    assert _query(
        chdb,
        """
        SELECT * FROM (
        SELECT MetricName, toString(BucketCounts), toString(ExplicitBounds)
        FROM otel_metrics_histogram
        UNION ALL SELECT MetricName, toString(PositiveBucketCounts), ''
        FROM otel_metrics_exponential_histogram
        UNION ALL SELECT MetricName, toString(Count), toString(ValueAtQuantiles.Quantile)
        FROM otel_metrics_summary
        UNION ALL SELECT MetricName, toString(IsMonotonic), toString(Value) FROM otel_metrics_sum
        ) ORDER BY MetricName, 2
    """,
    ) == [
        ["latency", "[1,2]", "[5]"],
        ["latency", "[1]", "[5]"],
        ["requests", "true", "42"],
        ["rpc", "5", "[0.99]"],
        ["sizes", "[1,2]", ""],
    ]
