"""Small builders of OTLP export requests for the tests, from the opentelemetry-proto classes."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from schemas.envelope import PROTOBUF, new_envelope
from schemas.events import EventType
from storage.log import Record

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
T0 = 1_700_000_000_123_456_789


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: Any) -> AnyValue:
    if isinstance(value, AnyValue):
        return value
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    return AnyValue(string_value=value)


def span(number: int = 1, **fields: Any) -> Span:
    values: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": number.to_bytes(8, "big"),
        "name": f"op-{number}",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 1_500_000,
    }
    values.update(fields)
    return Span(**values)


def traces(*spans: Span, service: str = "checkout") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "io.hutch.test"
    scope_spans.scope.version = "1.2.3"
    scope_spans.spans.extend(spans)
    return request


def logs(*records: LogRecord, service: str = "checkout") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1")
    resource_logs.resource.attributes.append(kv("service.name", service))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "io.hutch.test"
    scope_logs.log_records.extend(records)
    return request


def metrics(*items: Metric, service: str = "checkout") -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.append(kv("service.name", service))
    scope_metrics = resource_metrics.scope_metrics.add()
    scope_metrics.scope.name = "io.hutch.test"
    scope_metrics.metrics.extend(items)
    return request


def record(
    type: EventType,
    payload: bytes,
    *,
    offset: int = 0,
    app: str = "demo",
    content_type: str = PROTOBUF,
) -> Record:
    envelope = new_envelope(type, payload, key=app, app=app, content_type=content_type)
    topic = {"otlp.traces.v1": "otlp.traces", "otlp.logs.v1": "otlp.logs"}.get(type, "otlp.metrics")
    return Record(topic=topic, partition=0, offset=offset, envelope=envelope)  # type: ignore[arg-type]


def otlp_json(message: Message) -> dict[str, Any]:
    """The OTLP/JSON form of a request: proto3 JSON with hex ids and integer enums."""
    document: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId"):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(document)
    return document
