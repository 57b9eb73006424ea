"""OTLP/HTTP as OpenTelemetry users call it: the official Python SDK exporters send traces,
logs and metrics with an app secret; a developer reads them back through the query API.
Real uvicorn, Falcon, SQLite log, otel_* projectors and chDB."""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from hutch.wiring import open_log
from schemas.events import Topic
from tests.support.admin import developer_with_app, hutch, log_ends
from tests.support.otlp_builders import (
    Filled,
    logs,
    marker,
    metrics,
    otlp_json,
    span,
    traces,
    with_deep_value,
)
from tests.support.responses import error_of, list_all
from tests.support.servers import Server, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NOW = (time.time_ns() // 10**9 - 600) * 10**9
"""Data older than the retention (30 days) is dropped as it is stored, so spans start here."""


def recent(number: int, **fields: Any) -> Any:
    times = {"start_time_unix_nano": NOW, "end_time_unix_nano": NOW + 1_500_000}
    return span(number, **{**times, **fields})


@pytest.fixture(scope="module")
def alice(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "otel-alice", "alice-otel")
    _, second = hutch(server.settings, "app", "create", "alice-edge", "--developer", "otel-alice")
    return {"secret": secret, "token": token, "edge_secret": str(second["secret"])}


@pytest.fixture(scope="module")
def bob(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "otel-bob", "bob-otel")
    return {"secret": secret, "token": token}


def post(
    server: Server, path: str, body: bytes, content_type: str = PROTOBUF, **headers: str
) -> httpx.Response:
    with server.client() as c:
        return c.post(path, content=body, headers={"Content-Type": content_type, **headers})


def read(server: Server, token: str, path: str, **params: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.get(path, params=params)


def status_of(answer: httpx.Response) -> tuple[int, str, dict[str, str]]:
    """(google.rpc code, ErrorInfo reason, ErrorInfo metadata) of a refusal's Status body."""
    kind = answer.headers["content-type"]
    status = status_pb2.Status()
    if kind == PROTOBUF:
        status.ParseFromString(answer.content)
    else:
        assert kind.startswith(JSON), kind
        body = answer.json()
        status.code, status.message = body["code"], body["message"]
        assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        info = error_details_pb2.ErrorInfo(reason=body["details"][0]["reason"])
        info.metadata.update(body["details"][0].get("metadata", {}))
        status.details.add().Pack(info)
    assert status.message
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain in ("hutch", "")
    return status.code, info.reason, dict(info.metadata)


# --- the SDK exporters, end to end ----------------------------------------------------------


def test_sdk_spans_come_back_as_a_trace_with_parent_links_and_durations(
    server: Server, alice: dict[str, str]
) -> None:
    finished = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("tests.otlp")
    with tracer.start_as_current_span("POST /cart", attributes={"http.method": "POST"}) as root:
        time.sleep(0.002)
        with tracer.start_as_current_span("charge card") as child:
            child.add_event("card declined", {"attempt": 1})
            child.set_status(Status(StatusCode.ERROR, "declined"))
            time.sleep(0.001)
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces", headers={"X-Secret": alice["secret"]}
    )
    assert exporter.export(finished.get_finished_spans()) == SpanExportResult.SUCCESS
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    child_id = format(child.get_span_context().span_id, "016x")

    answer = eventually(
        lambda: (
            (r := read(server, alice["token"], f"/api/traces/{trace_id}")).status_code == 200
            and r.json()["spanCount"] == 2
            and r
        )
    )
    found = answer.json()
    assert found["traceId"] == trace_id
    assert found["rootSpanIds"] == [root_id]
    assert found["services"] == ["checkout"]
    spans = {s["spanId"]: s for s in found["spans"]}
    assert spans[root_id]["parentSpanId"] is None
    assert spans[root_id]["childSpanIds"] == [child_id]
    assert spans[child_id]["parentSpanId"] == root_id
    assert spans[root_id]["name"] == "POST /cart"
    assert spans[root_id]["kind"] == "Internal"
    assert spans[root_id]["attributes"] == {"http.method": "POST"}
    assert spans[root_id]["appName"] == "alice-otel"
    assert spans[child_id]["statusCode"] == "Error"
    assert spans[child_id]["statusMessage"] == "declined"
    assert spans[child_id]["events"][0]["name"] == "card declined"
    assert spans[child_id]["events"][0]["attributes"] == {"attempt": "1"}
    sdk_root = finished.get_finished_spans()[-1]
    assert sdk_root.name == "POST /cart"
    assert spans[root_id]["durationNs"] == sdk_root.end_time - sdk_root.start_time
    assert spans[root_id]["durationNs"] >= 3_000_000
    assert spans[root_id]["durationMs"] == pytest.approx(spans[root_id]["durationNs"] / 1e6)
    assert found["durationNs"] == spans[root_id]["durationNs"]
    assert found["startTime"] == spans[root_id]["startTime"]
    assert found["startTime"].endswith("Z")

    def search(**params: str) -> list[dict[str, Any]]:
        return read(server, alice["token"], "/api/traces", **params).json()["traces"]

    hits = [t for t in search(serviceName="checkout") if t["traceId"] == trace_id]
    assert hits
    assert hits[0]["rootSpanName"] == "POST /cart"
    assert hits[0]["spanCount"] == 2
    assert hits[0]["errorCount"] == 1
    assert hits[0]["durationNs"] == found["durationNs"]
    assert [t["traceId"] for t in search(statusCode="error", spanName="charge card")] == [trace_id]
    assert trace_id in [t["traceId"] for t in search(attribute="http.method=POST")]
    assert trace_id not in [t["traceId"] for t in search(attribute="http.method=GET")]
    assert trace_id in [t["traceId"] for t in search(minDuration="2ms", spanName="POST /cart")]
    assert trace_id not in [t["traceId"] for t in search(minDuration="10s")]
    since = found["startTime"][:19] + "Z"
    assert trace_id in [t["traceId"] for t in search(since=since)]
    assert trace_id not in [t["traceId"] for t in search(until=since)]


def test_sdk_logs_are_found_by_severity_body_text_and_trace_id(
    server: Server, alice: dict[str, str]
) -> None:
    finished = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(finished))
    logger = provider.get_logger("tests.otlp")
    tracer = TracerProvider().get_tracer("tests.otlp")
    with tracer.start_as_current_span("invoice") as current:
        logger.emit(
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body="payment gateway timed out",
            attributes={"gateway": "acme"},
        )
        logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="invoice sent")
    exporter = OTLPLogExporter(
        endpoint=f"{server.url}/v1/logs",
        headers={"X-Secret": alice["secret"]},
        compression=Compression.Gzip,
    )
    assert exporter.export(finished.get_finished_logs()) == LogRecordExportResult.SUCCESS
    trace_id = format(current.get_span_context().trace_id, "032x")

    def listing(**params: str) -> list[dict[str, Any]]:
        with server.client(Authorization=f"Bearer {alice['token']}") as c:
            return list_all(c, "/api/logs", "logs", **params)

    both = eventually(lambda: len(found := listing(traceId=trace_id)) == 2 and found)
    assert [r["body"] for r in both] == ["invoice sent", "payment gateway timed out"]
    (error,) = listing(severity="error", serviceName="billing", traceId=trace_id)
    assert error["body"] == "payment gateway timed out"
    assert error["severity"] == "ERROR"
    assert error["severityNumber"] == 17
    assert error["attributes"] == {"gateway": "acme"}
    assert error["traceId"] == trace_id
    assert error["spanId"] == format(current.get_span_context().span_id, "016x")
    assert error["appName"] == "alice-otel"
    assert error["serviceName"] == "billing"
    assert [r["body"] for r in listing(q="GATEWAY TIMED", traceId=trace_id)] == [error["body"]]
    assert len(listing(minSeverity="info", traceId=trace_id)) == 2
    assert len(listing(minSeverity="warn", traceId=trace_id)) == 1
    assert listing(q="no such text anywhere") == []


def test_sdk_metrics_are_listed_and_read_as_series(server: Server, alice: dict[str, str]) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "cart"}), metric_readers=[reader]
    )
    meter = provider.get_meter("tests.otlp")
    counter = meter.create_counter("cart.items.added", unit="{item}", description="items added")
    latency = meter.create_histogram("cart.latency", unit="ms")
    counter.add(3, {"region": "eu"})
    counter.add(4, {"region": "us"})
    for value in (10.0, 20.0, 60.0):
        latency.record(value)
    data = reader.get_metrics_data()
    assert data is not None
    exporter = OTLPMetricExporter(
        endpoint=f"{server.url}/v1/metrics", headers={"X-Secret": alice["secret"]}
    )
    assert exporter.export(data) == MetricExportResult.SUCCESS

    def names() -> dict[str, dict[str, Any]]:
        body = read(server, alice["token"], "/api/metrics").json()
        return {m["name"]: m for m in body["metrics"]}

    listed = eventually(
        lambda: {"cart.items.added", "cart.latency"} <= set(found := names()) and found
    )
    assert listed["cart.items.added"]["type"] == "sum"
    assert listed["cart.items.added"]["unit"] == "{item}"
    assert listed["cart.items.added"]["services"] == ["cart"]
    assert listed["cart.latency"]["type"] == "histogram"

    series = read(
        server,
        alice["token"],
        "/api/metrics",
        name="cart.items.added",
        aggregation="sum",
        step="1h",
        groupBy="region",
    ).json()
    assert series["type"] == "sum"
    assert series["stepSeconds"] == 3600
    by_region = {s["group"]["region"]: s["points"] for s in series["series"]}
    assert [p["value"] for p in by_region["eu"]] == [3.0]
    assert [p["value"] for p in by_region["us"]] == [4.0]
    assert by_region["eu"][0]["time"].endswith("Z")

    mean = read(server, alice["token"], "/api/metrics", name="cart.latency", step="1h").json()
    assert mean["aggregation"] == "avg"
    assert [p["value"] for s in mean["series"] for p in s["points"]] == [30.0]
    top = read(
        server, alice["token"], "/api/metrics", name="cart.latency", step="1h", aggregation="max"
    ).json()
    assert [p["value"] for s in top["series"] for p in s["points"]] == [60.0]


# --- hand-written bodies ----------------------------------------------------------------------


def test_json_with_hex_ids_is_stored_with_those_ids(server: Server, alice: dict[str, str]) -> None:
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "hand"},
                        "spans": [
                            {
                                "traceId": trace_id.upper(),
                                "spanId": span_id,
                                "name": "by hand",
                                "kind": 2,
                                "startTimeUnixNano": str(NOW),
                                "endTimeUnixNano": NOW + 2_000_000,
                                "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                                "futureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    answer = post(server, "/v1/traces", orjson.dumps(body), JSON, **{"X-Secret": alice["secret"]})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == JSON
    assert answer.json() == {}
    found = eventually(
        lambda: (
            (r := read(server, alice["token"], f"/api/traces/{trace_id}")).status_code == 200
            and r.json()
        )
    )
    (only,) = found["spans"]
    assert only["spanId"] == span_id
    assert only["kind"] == "Server"
    assert only["durationNs"] == 2_000_000
    assert only["attributes"] == {"n": "7"}
    assert only["serviceName"] == "json-svc"


def test_json_body_may_carry_the_secret_which_is_not_stored(
    server: Server, alice: dict[str, str]
) -> None:
    body = otlp_json(logs(LogRecord(time_unix_nano=NOW, body={"string_value": "from json"})))
    body["secret"] = alice["secret"]
    answer = post(server, "/v1/logs", orjson.dumps(body), JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {}

    async def stored_payloads() -> list[bytes]:
        log = open_log(server.settings)  # a log of this test's own, on this event loop
        await log.start()
        try:
            payloads = []
            for partition in await log.partitions("otlp.logs"):
                for record in await log.read("otlp.logs", partition, 0, 10_000):
                    payloads.append(bytes(record.envelope.payload))
            return payloads
        finally:
            await log.close()

    stored = [p for p in asyncio.run(stored_payloads()) if b"from json" in p]
    assert len(stored) == 1
    assert alice["secret"].encode() not in stored[0]


def test_gzip_protobuf_is_accepted(server: Server, alice: dict[str, str]) -> None:
    request = traces(recent(1, name="zipped"), service="gzip-svc")
    answer = post(
        server,
        "/v1/traces",
        gzip.compress(request.SerializeToString()),
        **{"X-Secret": alice["secret"], "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == PROTOBUF
    assert (
        ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success") is False
    )
    eventually(
        lambda: read(server, alice["token"], "/api/traces", serviceName="gzip-svc").json()["traces"]
    )


def test_body_over_the_limit_once_decompressed_is_413(
    server: Server, alice: dict[str, str]
) -> None:
    limit = server.settings.otlp_max_body_bytes
    bomb = gzip.compress(bytes(limit + 1))
    assert len(bomb) < limit // 100
    answer = post(
        server, "/v1/traces", bomb, **{"X-Secret": alice["secret"], "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 413
    code, reason, _ = status_of(answer)
    assert (code, reason) == (code_pb2.RESOURCE_EXHAUSTED, "payload_too_large")
    fits = gzip.compress(bytes(1000))  # zeros are not a valid request, but size comes first
    assert (
        post(
            server, "/v1/traces", fits, **{"X-Secret": alice["secret"], "Content-Encoding": "gzip"}
        ).status_code
        == 400
    )


def test_declared_length_over_the_limit_is_413_before_reading(
    server: Server, alice: dict[str, str]
) -> None:
    limit = server.settings.otlp_max_body_bytes
    answer = post(server, "/v1/logs", bytes(limit + 1), **{"X-Secret": alice["secret"]})
    assert answer.status_code == 413
    assert status_of(answer)[1] == "payload_too_large"


def test_truncated_protobuf_is_400_with_a_status_body(
    server: Server, alice: dict[str, str]
) -> None:
    whole = traces(span(1), span(2)).SerializeToString()
    answer = post(server, "/v1/traces", whole[:-5], **{"X-Secret": alice["secret"]})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == PROTOBUF
    code, reason, _ = status_of(answer)
    assert (code, reason) == (code_pb2.INVALID_ARGUMENT, "malformed_otlp")


def test_malformed_json_and_broken_gzip_are_400(server: Server, alice: dict[str, str]) -> None:
    answer = post(
        server, "/v1/metrics", b'{"resourceMetrics": [', JSON, **{"X-Secret": alice["secret"]}
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == JSON
    assert status_of(answer)[:2] == (code_pb2.INVALID_ARGUMENT, "malformed_otlp")
    wrong_shape = post(
        server, "/v1/metrics", b'{"resourceMetrics": 5}', JSON, **{"X-Secret": alice["secret"]}
    )
    assert wrong_shape.status_code == 400
    broken = gzip.compress(traces(span(1)).SerializeToString())[:-8]
    answer = post(
        server, "/v1/traces", broken, **{"X-Secret": alice["secret"], "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/protobuf", ""])
def test_other_content_types_are_415(
    server: Server, alice: dict[str, str], content_type: str
) -> None:
    answer = post(server, "/v1/traces", b"{}", content_type, **{"X-Secret": alice["secret"]})
    assert answer.status_code == 415
    assert answer.headers["content-type"] == JSON
    assert status_of(answer)[1] == "unsupported_media_type"


def test_unknown_content_encoding_is_415(server: Server, alice: dict[str, str]) -> None:
    answer = post(
        server, "/v1/traces", b"", **{"X-Secret": alice["secret"], "Content-Encoding": "br"}
    )
    assert answer.status_code == 415
    assert answer.headers["content-type"] == PROTOBUF


def test_partly_invalid_requests_answer_partial_success(
    server: Server, alice: dict[str, str]
) -> None:
    good, zero = recent(11, name="kept"), recent(12, trace_id=bytes(16))
    request = traces(good, zero, recent(13, span_id=b"short"), service="partial-svc")
    answer = post(
        server, "/v1/traces", request.SerializeToString(), **{"X-Secret": alice["secret"]}
    )
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 2
    assert "2 of 3 spans rejected" in partial.error_message
    as_json = post(
        server,
        "/v1/traces",
        orjson.dumps(otlp_json(request)),
        JSON,
        **{"X-Secret": alice["secret"]},
    )
    assert as_json.status_code == 200
    assert as_json.json()["partialSuccess"]["rejectedSpans"] == "2"

    log_request = logs(LogRecord(time_unix_nano=NOW, span_id=b"abc"), LogRecord(time_unix_nano=NOW))
    answer = post(
        server, "/v1/logs", log_request.SerializeToString(), **{"X-Secret": alice["secret"]}
    )
    assert (
        ExportLogsServiceResponse.FromString(answer.content).partial_success.rejected_log_records
        == 1
    )

    point = NumberDataPoint(time_unix_nano=NOW, as_double=1.0)
    metric_request = metrics(
        Metric(name="empty"), Metric(name="ok", gauge=Gauge(data_points=[point]))
    )
    answer = post(
        server, "/v1/metrics", metric_request.SerializeToString(), **{"X-Secret": alice["secret"]}
    )
    assert (
        ExportMetricsServiceResponse.FromString(answer.content).partial_success.rejected_data_points
        == 1
    )

    def spans_kept() -> list[dict[str, Any]]:
        return read(server, alice["token"], "/api/traces", serviceName="partial-svc").json()[
            "traces"
        ]

    (kept,) = eventually(spans_kept)
    assert kept["spanCount"] == 2  # the one good span, twice: protobuf and JSON
    everything_rejected = traces(zero).SerializeToString()
    answer = post(server, "/v1/traces", everything_rejected, **{"X-Secret": alice["secret"]})
    assert ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans == 1


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/v1/traces", PROTOBUF, b""),
        ("/v1/metrics", JSON, b"{}"),
        ("/v1/logs", JSON, b""),
        ("/v1/logs", JSON, b'{"resourceLogs": []}'),
    ],
)
def test_empty_requests_succeed_and_append_nothing(
    server: Server, alice: dict[str, str], path: str, content_type: str, body: bytes
) -> None:
    topic: Topic = (
        "otlp.traces" if "traces" in path else "otlp.metrics" if "metrics" in path else "otlp.logs"
    )
    before = log_ends(server.settings, topic)
    answer = post(server, path, body, content_type, **{"X-Secret": alice["secret"]})
    assert answer.status_code == 200
    assert answer.content == (b"" if content_type == PROTOBUF else b"{}")
    assert log_ends(server.settings, topic) == before


# --- authentication ---------------------------------------------------------------------------


def test_missing_and_unknown_secrets_are_401(server: Server) -> None:
    body = traces(span(1)).SerializeToString()
    missing = post(server, "/v1/traces", body)
    assert missing.status_code == 401
    assert status_of(missing)[:2] == (code_pb2.UNAUTHENTICATED, "missing_secret")
    unknown = post(server, "/v1/traces", body, **{"X-Secret": "not-a-secret"})
    assert unknown.status_code == 401
    assert status_of(unknown)[:2] == (code_pb2.UNAUTHENTICATED, "invalid_secret")
    as_json = post(server, "/v1/logs", b"{}", JSON)
    assert as_json.status_code == 401
    assert as_json.headers["content-type"] == JSON
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers={"X-Secret": "nope"})
    tracer_provider = TracerProvider()
    finished = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(finished))
    with tracer_provider.get_tracer("t").start_as_current_span("refused"):
        pass
    assert exporter.export(finished.get_finished_spans()) == SpanExportResult.FAILURE


def test_secret_in_the_query_and_app_name_must_match(server: Server, alice: dict[str, str]) -> None:
    body = traces(span(1)).SerializeToString()
    ok = post(server, f"/v1/traces?secret={alice['secret']}&appName=alice-otel", body)
    assert ok.status_code == 200
    other = post(server, f"/v1/traces?secret={alice['secret']}&appName=alice-edge", body)
    assert other.status_code == 403
    assert status_of(other) == (code_pb2.PERMISSION_DENIED, "forbidden", {"field": "appName"})


# --- reads are scoped to the developer's apps ---------------------------------------------------


def test_another_developer_sees_none_of_it(
    server: Server, alice: dict[str, str], bob: dict[str, str]
) -> None:
    trace_hex = "7a0c1ba5d7c2b1e4f00dfeedc0ffee01"
    request = traces(recent(1, trace_id=bytes.fromhex(trace_hex)), service="private-svc")
    assert (
        post(
            server, "/v1/traces", request.SerializeToString(), **{"X-Secret": alice["secret"]}
        ).status_code
        == 200
    )
    eventually(lambda: read(server, alice["token"], f"/api/traces/{trace_hex}").status_code == 200)

    lookup = read(server, bob["token"], f"/api/traces/{trace_hex}")
    assert lookup.status_code == 404
    assert error_of(lookup)["field"] == "traceId"
    assert read(server, bob["token"], "/api/traces").json() == {"traces": [], "next": None}
    assert read(server, bob["token"], "/api/logs").json() == {"logs": [], "next": None}
    assert read(server, bob["token"], "/api/metrics").json() == {"metrics": [], "next": None}
    for path in ("/api/traces", "/api/logs", "/api/metrics", f"/api/traces/{trace_hex}"):
        refused = read(server, bob["token"], path, appName="alice-otel")
        assert refused.status_code == 403, path
        assert error_of(refused) == {
            "code": "forbidden",
            "message": "app 'alice-otel' belongs to another developer",
            "field": "appName",
        }
        assert read(server, bob["token"], path, appName="no-such-app").status_code == 404
        with server.client() as anonymous:
            assert anonymous.get(path).status_code == 401
    # Alice's other app narrows her view to nothing.
    assert (
        read(server, alice["token"], f"/api/traces/{trace_hex}", appName="alice-edge").status_code
        == 404
    )


def test_trace_search_pages_with_cursors(server: Server, alice: dict[str, str]) -> None:
    for n in range(5):
        request = traces(
            recent(1, trace_id=bytes([n + 1]) * 16, start_time_unix_nano=NOW + n * 10**9),
            service="paged-svc",
        )
        assert (
            post(
                server, "/v1/traces", request.SerializeToString(), **{"X-Secret": alice["secret"]}
            ).status_code
            == 200
        )

    def everything() -> list[dict[str, Any]]:
        with server.client(Authorization=f"Bearer {alice['token']}") as c:
            return list_all(c, "/api/traces", "traces", serviceName="paged-svc", limit="2")

    found = eventually(lambda: len(pages := everything()) == 5 and pages)
    assert [t["traceId"] for t in found] == [
        (bytes([n + 1]) * 16).hex() for n in reversed(range(5))
    ]


@pytest.mark.parametrize(
    ("path", "params", "field", "code"),
    [
        ("/api/traces/not-hex", {}, "traceId", "bad_trace_id"),
        ("/api/traces", {"statusCode": "broken"}, "statusCode", "bad_status_code"),
        ("/api/traces", {"minDuration": "soon"}, "minDuration", "bad_duration"),
        ("/api/traces", {"attribute": "novalue"}, "attribute", "bad_attribute"),
        ("/api/traces", {"cursor": "garbage"}, "cursor", "bad_cursor"),
        ("/api/traces", {"since": "yesterday"}, "since", "bad_date"),
        ("/api/traces", {"limit": "0"}, "limit", "bad_limit"),
        ("/api/logs", {"severity": "loud"}, "severity", "bad_severity"),
        ("/api/logs", {"traceId": "abc"}, "traceId", "bad_trace_id"),
        (
            "/api/logs",
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "until",
            "bad_range",
        ),
        (
            "/api/metrics",
            {"name": "cart.latency", "aggregation": "median"},
            "aggregation",
            "bad_aggregation",
        ),
        ("/api/metrics", {"name": "cart.latency", "step": "0s"}, "step", "bad_step"),
        (
            "/api/metrics",
            {"name": "cart.latency", "step": "1s", "since": "2020-01-01T00:00:00Z"},
            "step",
            "bad_step",
        ),
        ("/api/metrics", {"name": "x", "type": "counter"}, "type", "bad_type"),
        ("/api/metrics", {"name": "no.such.metric"}, "name", "not_found"),
    ],
)
def test_bad_query_parameters_are_clear_errors(
    server: Server, alice: dict[str, str], path: str, params: dict[str, str], field: str, code: str
) -> None:
    answer = read(server, alice["token"], path, **params)
    assert answer.status_code == (404 if code == "not_found" else 400), answer.text
    error = error_of(answer)
    assert (error["field"], error["code"]) == (field, code)


# --- what ingest acknowledges is stored --------------------------------------------------------

LADDER_FROM = 42
"""Arrays nested 84 messages deep and more: a value inside an item crosses upb's limit."""
FILLED: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def refusal_message(answer: httpx.Response) -> str:
    if answer.headers["content-type"] == PROTOBUF:
        return str(status_pb2.Status.FromString(answer.content).message)
    return str(answer.json()["message"])


def items_of(signal: str, request: Message) -> int:
    """Spans, log records or metric data points in a request."""
    count = 0
    for resource in getattr(request, f"resource_{'spans' if signal == 'traces' else signal}"):
        for scope in getattr(resource, f"scope_{'spans' if signal == 'traces' else signal}"):
            if signal == "traces":
                count += len(scope.spans)
            elif signal == "logs":
                count += len(scope.log_records)
            else:
                for metric in scope.metrics:
                    count += len(getattr(metric, metric.WhichOneof("data")).data_points)
    return count


def items_stored(server: Server, token: str, signal: str, service: str) -> int:
    """The items of `service` a developer reads back through the query API."""
    if signal == "traces":
        found = read(server, token, "/api/traces", serviceName=service).json()["traces"]
        return sum(int(trace["matchedSpans"]) for trace in found)
    if signal == "logs":
        return len(read(server, token, "/api/logs", serviceName=service).json()["logs"])
    found = read(server, token, "/api/metrics", serviceName=service).json()["metrics"]
    return sum(int(metric["points"]) for metric in found)


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_undecodable_requests_are_400_and_nothing_is_appended(
    server: Server, alice: dict[str, str], signal: str
) -> None:
    """Invalid UTF-8 in each string field the signal has (its first and last place), and a
    value nested past upb's depth limit (in a resource attribute and in an item), in both
    encodings: refused with a Status, before anything reaches the log."""
    topic: Topic = f"otlp.{signal}"  # type: ignore[assignment]
    request_type = FILLED[signal]
    filled = Filled(request_type, NOW)
    body = filled.request.SerializeToString()
    places = {field: n for n, field in enumerate(filled.fields)}
    places.update({field: n for n, field in reversed(list(enumerate(filled.fields)))})
    cases: list[tuple[str, bytes, str]] = []
    for n in sorted(set(places.values()) | {max(places.values())}):
        text = marker(n).encode()
        cases.append((PROTOBUF, body.replace(text, b"\xff" + text[1:]), "not valid UTF-8"))
    for place in (filled.any_values[0], filled.any_values[-1]):
        for encoding, content_type in (("protobuf", PROTOBUF), ("json", JSON)):
            deep = with_deep_value(request_type, NOW, place, 51, encoding)
            cases.append((content_type, deep, "nest more than 100 deep"))
    before = log_ends(server.settings, topic)
    for content_type, bad, why in cases:
        answer = post(server, f"/v1/{signal}", bad, content_type, **{"X-Secret": alice["secret"]})
        assert answer.status_code == 400, answer.content
        assert answer.headers["content-type"] == content_type
        assert status_of(answer)[:2] == (code_pb2.INVALID_ARGUMENT, "malformed_otlp")
        assert why in refusal_message(answer)
    assert log_ends(server.settings, topic) == before


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_every_acknowledged_request_shows_up_in_its_table(
    server: Server, alice: dict[str, str], signal: str
) -> None:
    """A request reaching every field of the signal, in both encodings, and one value nested
    deeper and deeper until it is refused: each 200 shows up, every item of it."""
    request_type = FILLED[signal]
    expected: dict[str, int] = {}
    outcomes: dict[str, list[int]] = {"protobuf": [], "json": []}
    for encoding, content_type in (("protobuf", PROTOBUF), ("json", JSON)):
        service = f"filled-{signal}-{encoding}"
        whole = Filled(request_type, NOW, service=service).request
        body = (
            whole.SerializeToString() if encoding == "protobuf" else orjson.dumps(otlp_json(whole))
        )
        answer = post(server, f"/v1/{signal}", body, content_type, **{"X-Secret": alice["secret"]})
        assert answer.status_code == 200, answer.content
        expected[service] = items_of(signal, whole)
        place = Filled(request_type, NOW).any_values[-1]  # a value inside an item
        for levels in range(LADDER_FROM, 52):
            service = f"deep-{signal}-{encoding}-{levels}"
            body = with_deep_value(request_type, NOW, place, levels, encoding, service)
            answer = post(
                server, f"/v1/{signal}", body, content_type, **{"X-Secret": alice["secret"]}
            )
            assert answer.status_code in (200, 400), answer.content
            outcomes[encoding].append(answer.status_code)
            if answer.status_code == 200:
                expected[service] = expected[f"filled-{signal}-{encoding}"]
    for encoding in ("protobuf", "json"):  # the ladder crosses the limit in each encoding
        assert {200, 400} == set(outcomes[encoding]), outcomes
    for service, count in expected.items():
        eventually(
            lambda s=service, n=count: items_stored(server, alice["token"], signal, s) == n,
            timeout_s=30,
        )


# --- when the log cannot take the data --------------------------------------------------------


@pytest.fixture
def ingest_only(tmp_path: Path) -> Iterator[Server]:
    """The ingest service alone (no analytics store: chDB is already open in this process)."""
    import uvicorn

    from hutch.apps import ingest_app
    from hutch.runtime import Runtime

    # The SQLite log, whatever the backends: the test fills its queue and closes it.
    settings = make_settings(tmp_path / "data", HUTCH_LOG=f"sqlite:///{tmp_path}/log.db")
    runtime = Runtime(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(ingest_app(runtime), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, timeout_s=30)
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class _Collected(logging.Handler):
    """Records of one logger (caplog's handler does not survive the in-process `hutch`
    commands, which configure logging afresh)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_log_overloaded_is_429_and_unavailable_is_503_with_retry_after(
    ingest_only: Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from base import client_errors as errors
    from storage.log import sqlite

    monkeypatch.setattr(errors, "REFUSAL_LOG_EVERY_S", 0.0)  # log each refusal
    refusals = _Collected()
    logging.getLogger(errors.__name__).addHandler(refusals)
    request.addfinalizer(lambda: logging.getLogger(errors.__name__).removeHandler(refusals))
    secret, _ = developer_with_app(ingest_only.settings, "otel-carol", "carol-otel")
    body = traces(recent(1)).SerializeToString()
    assert post(ingest_only, "/v1/traces", body, **{"X-Secret": secret}).status_code == 200

    saved_max_pending = sqlite.MAX_PENDING
    monkeypatch.setattr(sqlite, "MAX_PENDING", 0)  # the log is "full"
    busy = post(ingest_only, "/v1/traces", body, **{"X-Secret": secret})
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"
    assert status_of(busy)[:2] == (code_pb2.RESOURCE_EXHAUSTED, "overloaded")
    monkeypatch.setattr(sqlite, "MAX_PENDING", saved_max_pending)

    asyncio.run(ingest_only.runtime.log.close())  # type: ignore[attr-defined]
    down = post(
        ingest_only, "/v1/traces", body, JSON.replace("json", "x-protobuf"), **{"X-Secret": secret}
    )
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert status_of(down)[:2] == (code_pb2.UNAVAILABLE, "unavailable")
    # The answer names no backend; the operator's log says why (at most every few seconds).
    causes = [
        r.__dict__["error"]
        for r in refusals.records
        if r.getMessage() == "refusing requests with 503"
    ]
    assert [cause.split(":")[0] for cause in causes] == ["Backpressure", "Unavailable"]
    assert "event log" in causes[1]
