"""Small builders of OTLP export requests for the tests, from the opentelemetry-proto classes."""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

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


def rich_request() -> ExportTraceServiceRequest:
    """Two resources' worth of spans with every kind of attribute value, events, links,
    ids and enums out of the ordinary, and spans the rules reject."""
    nested: AnyValue = AnyValue(string_value="leaf")
    for _ in range(40):
        nested = AnyValue(array_value=ArrayValue(values=[nested]))
    values = [
        kv("str", "plain"),
        kv("unicode", "ünï ☃ 𝄞"),
        kv("empty", ""),
        kv("int", 200),
        kv("int.min", -(2**63)),
        kv("int.max", 2**63 - 1),
        kv("bool", True),
        kv("false", False),
        kv("double", 0.1),
        kv("double.big", 1e21),
        kv("double.small", 1e-7),
        kv("double.negzero", -0.0),
        kv("nan", math.nan),
        kv("inf", math.inf),
        kv("bytes", b"\x00\xff"),
        kv("none", AnyValue()),
        kv(
            "list",
            AnyValue(array_value=ArrayValue(values=[kv("x", "<&>").value, kv("y", 1).value])),
        ),
        kv(
            "map",
            AnyValue(kvlist_value=KeyValueList(values=[kv("z", 1), kv("a", "b"), kv("z", 2)])),
        ),
        kv("nested", nested),
        kv("dup", "first"),
        kv("Dup", "upper"),
        kv("é", "accent"),
        kv("z", "zed"),
        kv("", "empty key"),
        kv("dup", "last wins"),
    ]
    request = traces(
        span(
            1,
            attributes=values,
            parent_span_id=bytes(8),
            trace_state="a=1,b=2",
            status=Status(code=Status.STATUS_CODE_OK, message="fine"),
            events=[
                Span.Event(time_unix_nano=T0 + 1, name="first", attributes=values[:5]),
                Span.Event(time_unix_nano=2**64 - 1, name="clamped"),
                Span.Event(),
            ],
            links=[
                Span.Link(trace_id=TRACE_ID, span_id=SPAN_ID, trace_state="x", attributes=values),
                Span.Link(trace_id=bytes(16), span_id=b"\x01\x02"),
                Span.Link(),
            ],
        ),
        span(2, parent_span_id=b"\x01\x02\x03", kind=Span.SPAN_KIND_CONSUMER),
        span(3, start_time_unix_nano=2**64 - 1, end_time_unix_nano=5),
        span(4, trace_id=bytes(16)),  # rejected
        span(5, span_id=b""),  # rejected
        span(6, kind=7, status=Status(code=9)),  # enums out of range: no name
        span(7, trace_id=b"\x07" * 16, kind=-1, status=Status(code=-3)),
    )
    resource = request.resource_spans[0].resource
    resource.attributes.extend(
        [kv("process.pid", 42), kv("process.command_args", AnyValue(array_value=ArrayValue()))]
    )
    request.resource_spans.append(
        ResourceSpans(
            resource=Resource(attributes=[kv("service.name", 7), kv("service.name", "second")]),
            scope_spans=[
                ScopeSpans(spans=[span(8)]),  # no scope
                ScopeSpans(
                    scope=InstrumentationScope(name="s", version="v", attributes=[kv("k", "v")]),
                    spans=[span(9), span(10, trace_id=b"\x07" * 16, start_time_unix_nano=T0 - 10)],
                ),
            ],
        )
    )
    request.resource_spans.append(ResourceSpans())  # no resource, no spans
    request.resource_spans.append(ResourceSpans(scope_spans=[ScopeSpans(spans=[span(11)])]))
    return request


def mutations(seed: int, count: int) -> Iterator[bytes]:
    """Requests one random edit away from valid ones: a flipped bit, a changed byte, a cut,
    a doubled or dropped slice. Deterministic for a seed."""
    rng = random.Random(seed)
    valid = [rich_request().SerializeToString(), traces(span(1), span(2)).SerializeToString()]
    for _ in range(count):
        data = bytearray(rng.choice(valid))
        at = rng.randrange(len(data))
        edit = rng.randrange(5)
        if edit == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif edit == 1:
            data[at] = rng.randrange(256)
        elif edit == 2:
            del data[at:]
        elif edit == 3:
            end = min(len(data), at + rng.randrange(1, 40))
            data[at:at] = data[at:end]
        else:
            del data[at : at + rng.randrange(1, 40)]
        yield bytes(data)
