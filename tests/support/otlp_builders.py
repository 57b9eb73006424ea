"""Small builders of OTLP export requests for the tests, from the opentelemetry-proto classes."""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
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


def mutations(seed: int, count: int, valid: Sequence[bytes] = ()) -> Iterator[bytes]:
    """Requests one random edit away from valid ones (by default, two trace requests): a
    flipped bit, a changed byte, a cut, a doubled or dropped slice. Deterministic for a seed."""
    rng = random.Random(seed)
    valid = valid or [
        rich_request().SerializeToString(),
        traces(span(1), span(2)).SerializeToString(),
    ]
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


# --- requests that reach every string field and every value position of a signal ----------

ID_FIELDS = {"trace_id": TRACE_ID, "span_id": SPAN_ID}


def marker(n: int) -> str:
    """The text the n-th string field of a filled() request holds: unique in its encoding."""
    return f"~m{n:05d}~"


class Filled:
    """A valid export request in which every string field its schema reaches holds a marker
    of its own, every oneof member is used by an element of its own (each kind of attribute
    value, metric data and data point value), and every message type is nested twice at
    most (an AnyValue inside an AnyValue). Times are `now`, ids valid, so every item is
    accepted and stored.

    `texts` replaces the text of some markers (by number): a longer placeholder there gives
    room for bytes spliced in later at the same length (see splice_any_value)."""

    def __init__(
        self,
        request_type: type[Message],
        now: int,
        texts: dict[int, str] | None = None,
        service: str | None = None,
    ) -> None:
        self.fields: list[str] = []
        """The full name of the string field each marker fills, by marker number."""
        self.any_values: list[int] = []
        """Markers that are an AnyValue's string_value: each is a place for a value."""
        self._texts = texts or {}
        self._now = now
        self._spans = 0
        self.request = request_type()
        self._fill(self.request, (), None)
        if service is not None:  # the first resource's service.name: to find the rows by
            (resources,) = [f for f in self.request.DESCRIPTOR.fields if f.is_repeated]
            first = getattr(self.request, resources.name)[0]
            first.resource.attributes.append(kv("service.name", service))

    def _text(self, field: FieldDescriptor) -> str:
        n = len(self.fields)
        self.fields.append(field.full_name)
        if field.full_name == "opentelemetry.proto.common.v1.AnyValue.string_value":
            self.any_values.append(n)
        return self._texts.get(n, marker(n))

    def _fill(self, message: Message, path: tuple[str, ...], member: str | None) -> None:
        descriptor = message.DESCRIPTOR
        path = (*path, descriptor.full_name)
        for field in descriptor.fields:
            oneof = field.containing_oneof
            if oneof is not None and not oneof.name.startswith("_") and field.name != member:
                continue  # another member of the oneof: an element of its own
            self._set(message, field, path, member if field.message_type else None)

    def _set(self, message: Message, field: Any, path: tuple[str, ...], member: str | None) -> None:
        sub = field.message_type
        if sub is not None:
            if path.count(sub.full_name) >= 1 and sub.full_name in _NESTED_ONCE:
                return
            if path.count(sub.full_name) >= 2:
                return
            variants = _variants(sub)
            if field.is_repeated:
                for variant in variants:
                    self._fill(getattr(message, field.name).add(), path, variant)
            else:  # one member only: the given one, or a container (it reaches the most)
                containers = [f.name for f in sub.fields if f.message_type is not None]
                chosen = member if member in variants else ([None, *containers])[-1]
                self._fill(getattr(message, field.name), path, chosen)
            return
        value = self._scalar(field)
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)

    def _scalar(self, field: FieldDescriptor) -> Any:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self._text(field)
        if kind == FieldDescriptor.TYPE_BYTES:
            if field.name == "span_id":
                self._spans += 1
                return self._spans.to_bytes(8, "big")
            return ID_FIELDS.get(field.name, b"\x01")
        if field.name.endswith("time_unix_nano"):
            return self._now
        if kind == FieldDescriptor.TYPE_BOOL:
            return True
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return 1.5
        if kind == FieldDescriptor.TYPE_ENUM:
            return 1
        return 1


_NESTED_ONCE = {
    "opentelemetry.proto.common.v1.ArrayValue",
    "opentelemetry.proto.common.v1.KeyValueList",
}
"""Value containers: one level of them inside a value is enough to reach every field."""


def _variants(descriptor: Any) -> list[str | None]:
    """The oneof members of a message type, or of its value (a KeyValue's AnyValue): one
    element of a repeated field is added for each."""
    for oneof in descriptor.oneofs:
        if not oneof.name.startswith("_"):
            return [field.name for field in oneof.fields]
    for field in descriptor.fields:
        if field.message_type is not None and not field.is_repeated:
            inner = [v for v in _variants(field.message_type) if v is not None]
            if inner and field.name == "value":
                return list(inner)
    return [None]


def deep_any_value(levels: int) -> bytes:
    """The encoded fields of an AnyValue holding `levels` arrays, one in another (2 * levels
    messages below it), around the string "x"."""
    data = b"\x0a\x01x"
    for _ in range(levels):
        data = _field(5, _field(1, data))
    return data


def deep_any_value_json(levels: int) -> str:
    """deep_any_value() in OTLP/JSON."""
    return '{"arrayValue":{"values":[' * levels + '{"stringValue":"x"}' + "]}}" * levels


def splice_any_value(
    request_type: type[Message], now: int, place: int, value: bytes, service: str | None = None
) -> bytes:
    """A filled request with the AnyValue whose string_value is marker `place` holding the
    encoded AnyValue fields `value` instead: the string is sized so that its encoding is as
    long as `value`, so the bytes are swapped without changing any enclosing length."""
    size = len(value) - 2
    while 1 + len(_varint(size)) + size > len(value):
        size -= 1
    text = marker(place).ljust(size, "~")
    encoded = Filled(request_type, now, {place: text}, service).request.SerializeToString()
    placeholder = _field(1, text.encode())
    assert len(placeholder) == len(value)
    assert encoded.count(placeholder) == 1
    return encoded.replace(placeholder, value)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def with_deep_value(
    request_type: type[Message],
    now: int,
    place: int,
    levels: int,
    encoding: str,
    service: str | None = None,
) -> bytes:
    """A Filled request, binary or OTLP/JSON, whose value at `place` (a marker number in
    Filled.any_values) is `levels` arrays deep instead of a string."""
    if encoding == "protobuf":
        return splice_any_value(request_type, now, place, deep_any_value(levels), service)
    document = otlp_json(Filled(request_type, now, service=service).request)
    text = orjson.dumps(document).decode()
    plain = f'{{"stringValue":"{marker(place)}"}}'
    assert text.count(plain) == 1
    return text.replace(plain, deep_any_value_json(levels)).encode()
