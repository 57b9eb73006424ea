"""OTLP/HTTP request handling without a server: what a client sending each body would get."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from typing import Any

import orjson
import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ingest.otlp_http import Inflater, encode_response, inflate
from ingest.otlp_status import refusal
from schemas.otlp.decoding import (
    BodyTooLarge,
    Checked,
    Undecodable,
    UnsupportedBody,
    check,
    decode_request,
    encoding_of,
)
from schemas.otlp.rules import NO_METRIC_DATA
from tests.support.otlp_builders import (
    SPAN_ID,
    T0,
    TRACE_ID,
    kv,
    logs,
    metrics,
    otlp_json,
    span,
    traces,
)

MiB = 1 << 20


# --- Content-Type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "encoding"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("Application/X-Protobuf ; foo=bar", "protobuf"),
    ],
)
def test_content_types_accepted(header: str, encoding: str) -> None:
    assert encoding_of(header) == encoding


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/grpc", "application/xml"])
def test_other_content_types_are_415(header: str | None) -> None:
    with pytest.raises(UnsupportedBody) as caught:
        encoding_of(header)
    assert caught.value.status == 415


# --- Content-Encoding and the size limit ----------------------------------------------------


def test_gzip_body_is_decompressed() -> None:
    body = traces(span()).SerializeToString()
    assert inflate(gzip.compress(body), "gzip", MiB) == body
    assert inflate(gzip.compress(body), "x-gzip", MiB) == body
    assert inflate(zlib.compress(body), "deflate", MiB) == body
    assert inflate(body, None, MiB) == body
    assert inflate(body, "identity", MiB) == body


def test_gzip_fed_in_small_chunks_and_concatenated_members() -> None:
    first, second = b"a" * 5000, b"b" * 7000
    stream = gzip.compress(first) + gzip.compress(second)
    inflater = Inflater("gzip", MiB)
    for at in range(0, len(stream), 7):
        inflater.feed(stream[at : at + 7])
    assert inflater.finish() == first + second


def test_unknown_content_encoding_is_415() -> None:
    with pytest.raises(UnsupportedBody):
        inflate(b"x", "br", MiB)


def test_body_at_the_limit_passes_and_one_byte_more_is_413() -> None:
    assert len(inflate(gzip.compress(b"x" * 1000), "gzip", 1000)) == 1000
    with pytest.raises(BodyTooLarge) as caught:
        inflate(gzip.compress(b"x" * 1001), "gzip", 1000)
    assert caught.value.status == 413
    with pytest.raises(BodyTooLarge):
        inflate(b"x" * 1001, None, 1000)


def test_zip_bomb_is_refused_without_inflating_it() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    bomb = b"".join(compressor.compress(zeros) for _ in range(64)) + compressor.flush()
    assert len(bomb) < MiB // 4  # 64 MiB of zeros in a small body

    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            inflate(bomb, "gzip", MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB


@pytest.mark.parametrize(
    "body",
    [gzip.compress(b"hello world")[:-6], b"not gzip at all", b""],
    ids=["cut", "junk", "empty"],
)
def test_broken_gzip_is_400(body: bytes) -> None:
    with pytest.raises(Undecodable):
        inflate(body, "gzip", MiB)


# --- protobuf bodies ----------------------------------------------------------------------


def test_valid_spans_are_all_accepted() -> None:
    body = traces(span(1), span(2), span(3)).SerializeToString()
    assert check("traces", body, "protobuf") == Checked(items=3)
    assert encode_response("traces", Checked(items=3), "protobuf") == b""
    assert encode_response("traces", Checked(items=3), "json") == b"{}"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"trace_id": TRACE_ID[:15]}, "trace_id"),
        ({"trace_id": bytes(16)}, "trace_id"),
        ({"trace_id": b""}, "trace_id"),
        ({"span_id": bytes(8)}, "span_id"),
        ({"span_id": SPAN_ID + b"\x01"}, "span_id"),
        ({"span_id": b""}, "span_id"),
    ],
)
def test_spans_with_bad_ids_are_rejected(bad: dict[str, bytes], reason: str) -> None:
    body = traces(span(1), span(2, **bad), span(3)).SerializeToString()
    checked = check("traces", body, "protobuf")
    assert (checked.items, checked.rejected, checked.accepted) == (3, 1, 2)
    assert reason in checked.reason


def test_span_fields_in_any_order_are_read() -> None:
    # Protobuf allows fields in any order; the fast path expects ids first, the slow one not.
    request = traces(span(1))
    raw_span = Span(name="late").SerializeToString() + span(2).SerializeToString()
    bad_span = Span(name="late").SerializeToString() + span(3, span_id=b"").SerializeToString()
    scope_spans = request.resource_spans[0].scope_spans[0]
    for raw in (raw_span, bad_span):
        scope_spans.spans.add().MergeFromString(raw)
    body = request.SerializeToString()
    assert check("traces", body, "protobuf") == Checked(
        items=3, rejected=1, reason="span span_id must be 8 bytes and not all zero"
    )


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_empty_requests_are_valid(signal: Any) -> None:
    assert check(signal, b"", "protobuf") == Checked(items=0)
    assert check(signal, b"{}", "json") == Checked(items=0)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_truncated_and_garbage_protobuf_is_400(signal: Any) -> None:
    body = traces(span(1), span(2)).SerializeToString()
    for broken in (body[:-5], body[: len(body) // 2], b"\x0a\xff\xff", b"\xff" * 10):
        with pytest.raises(Undecodable) as caught:
            check(signal, broken, "protobuf")
        assert caught.value.status == 400


def test_log_records_with_bad_ids_are_rejected() -> None:
    body = logs(
        LogRecord(body=kv("", "fine").value),
        LogRecord(trace_id=TRACE_ID, span_id=SPAN_ID),
        LogRecord(trace_id=TRACE_ID[:8]),
        LogRecord(span_id=SPAN_ID[:4]),
    ).SerializeToString()
    checked = check("logs", body, "protobuf")
    assert (checked.items, checked.rejected) == (4, 2)
    assert checked.reason == "log record trace_id must be empty or 16 bytes"


def test_metric_points_are_counted_and_metrics_without_data_rejected() -> None:
    gauge = Metric(name="g", gauge=Gauge(data_points=[NumberDataPoint(as_int=1)] * 2))
    good = HistogramDataPoint(bucket_counts=[1, 2, 3], explicit_bounds=[1.0, 2.0])
    odd = HistogramDataPoint(bucket_counts=[1, 2], explicit_bounds=[1.0, 2.0])  # kept, as the
    # Collector keeps it
    no_buckets = HistogramDataPoint(count=3, sum=4.5)
    histogram = Metric(name="h", histogram=Histogram(data_points=[good, odd, no_buckets]))
    empty = Metric(name="nothing")
    body = metrics(gauge, histogram, empty).SerializeToString()
    checked = check("metrics", body, "protobuf")
    assert checked == Checked(items=6, rejected=1, reason=NO_METRIC_DATA)
    as_json = orjson.dumps(otlp_json(metrics(gauge, histogram, empty)))
    assert check("metrics", as_json, "json") == checked


# --- responses ----------------------------------------------------------------------------


def test_partial_success_in_protobuf_andotlp_json() -> None:
    checked = Checked(items=10, rejected=2, reason="span span_id must be 8 bytes")
    response = ExportTraceServiceResponse.FromString(encode_response("traces", checked, "protobuf"))
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == (
        "2 of 10 spans rejected: span span_id must be 8 bytes"
    )
    assert orjson.loads(encode_response("traces", checked, "json")) == {
        "partialSuccess": {
            "rejectedSpans": "2",
            "errorMessage": "2 of 10 spans rejected: span span_id must be 8 bytes",
        }
    }
    metric_response = ExportMetricsServiceResponse.FromString(
        encode_response("metrics", Checked(items=3, rejected=1, reason="x"), "protobuf")
    )
    assert metric_response.partial_success.rejected_data_points == 1


def test_status_body_for_errors() -> None:
    answer = refusal(Undecodable("the body is truncated"))
    assert answer is not None
    assert answer.status == 400
    status = status_pb2.Status.FromString(answer.body("protobuf"))
    assert (status.code, status.message) == (3, "the body is truncated")
    as_json = orjson.loads(answer.body("json"))
    assert (as_json["code"], as_json["message"]) == (3, "the body is truncated")


# --- OTLP/JSON ----------------------------------------------------------------------------


def test_json_with_hex_ids_decodes_like_protobuf() -> None:
    request = traces(
        span(1, parent_span_id=SPAN_ID, attributes=[kv("n", 7), kv("ok", True), kv("b", b"\x00")]),
        span(2, status={"code": 2, "message": "boom"}, events=[{"name": "e", "time_unix_nano": 5}]),
    )
    document = otlp_json(request)
    assert document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == TRACE_ID.hex()
    decoded = decode_request("traces", orjson.dumps(document), "application/json; charset=utf-8")
    assert decoded == request
    assert check("traces", orjson.dumps(document), "json") == Checked(items=2)


def test_json_accepts_uppercase_hex_int64_as_string_or_number_enum_names_and_snake_case() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]
                },
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex().upper(),
                                "span_id": SPAN_ID.hex(),
                                "name": "a",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": str(T0),
                                "end_time_unix_nano": T0 + 10,
                                "attributes": [
                                    {"key": "i", "value": {"intValue": "-12"}},
                                    {"key": "d", "value": {"doubleValue": 1.5}},
                                    {"key": "nan", "value": {"doubleValue": "NaN"}},
                                    {"key": "by", "value": {"bytesValue": "aGk="}},
                                    {
                                        "key": "arr",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "x"},
                                                    {"boolValue": True},
                                                ]
                                            }
                                        },
                                    },
                                    {
                                        "key": "kv",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [{"key": "k", "value": {"intValue": 3}}]
                                            }
                                        },
                                    },
                                ],
                                "somethingNew": {"ignored": True},
                            }
                        ]
                    }
                ],
            }
        ],
        "unknownTopLevel": 1,
    }
    request = decode_request("traces", orjson.dumps(body), "application/json")
    decoded = request.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert (decoded.trace_id, decoded.span_id) == (TRACE_ID, SPAN_ID)
    assert (decoded.kind, decoded.start_time_unix_nano, decoded.end_time_unix_nano) == (
        Span.SPAN_KIND_CLIENT,
        T0,
        T0 + 10,
    )
    values = {a.key: a.value for a in decoded.attributes}
    assert values["i"].int_value == -12
    assert values["nan"].double_value != values["nan"].double_value
    assert values["by"].bytes_value == b"hi"
    assert values["arr"].array_value.values[1].bool_value is True
    assert values["kv"].kvlist_value.values[0].value.int_value == 3


@pytest.mark.parametrize(
    "trace_id", ["zz" * 16, TRACE_ID.hex()[:-1], "W46P95gDgQPSabYzgT/GDA==", 42, ""]
)
def test_json_ids_that_are_not_16_byte_hex_are_rejected_items(trace_id: Any) -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex()},
                            {"traceId": trace_id, "spanId": SPAN_ID.hex()},
                        ]
                    }
                ]
            }
        ]
    }
    checked = check("traces", orjson.dumps(body), "json")
    assert (checked.items, checked.rejected) == (2, 1)


def test_json_log_and_exemplar_ids_are_hex_too() -> None:
    body = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "traceId": TRACE_ID.hex(),
                                "spanId": SPAN_ID.hex(),
                                "body": {"stringValue": "hi"},
                            },
                            {"traceId": "not hex"},
                        ]
                    }
                ]
            }
        ]
    }
    request = decode_request("logs", orjson.dumps(body), "application/json")
    first = request.resource_logs[0].scope_logs[0].log_records[0]  # type: ignore[attr-defined]
    assert (first.trace_id, first.span_id) == (TRACE_ID, SPAN_ID)
    assert check("logs", orjson.dumps(body), "json").rejected == 1

    gauge = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "g",
                                "gauge": {
                                    "dataPoints": [
                                        {
                                            "asDouble": 1.0,
                                            "exemplars": [
                                                {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex()}
                                            ],
                                        }
                                    ]
                                },
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = decode_request("metrics", orjson.dumps(gauge), "application/json")
    metric = request.resource_metrics[0].scope_metrics[0].metrics[0]  # type: ignore[attr-defined]
    assert metric.gauge.data_points[0].exemplars[0].trace_id == TRACE_ID


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"resourceSpans": "nope"}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_NOPE"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-1"}]}]}]}',
    ],
)
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(Undecodable):
        check("traces", body, "json")


def test_decode_request_reads_both_stored_encodings() -> None:
    request = logs(LogRecord(time_unix_nano=T0, trace_id=TRACE_ID, body=kv("", "x").value))
    from_protobuf = decode_request("logs", request.SerializeToString(), "application/x-protobuf")
    from_json = decode_request("logs", orjson.dumps(otlp_json(request)), "application/json")
    assert from_protobuf == from_json == request
    with pytest.raises(UnsupportedBody):
        decode_request("logs", b"", "text/plain")
