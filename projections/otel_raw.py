"""Export requests decoded for flattening, with item attributes left as raw KeyValue bytes.

Profiling the otel_traces transform showed three quarters of its time in attributes: upb
builds a KeyValue and an AnyValue object per attribute, then AsString() reads them. Here
the request classes are the opentelemetry-proto ones with one change: in the signal's own
messages (Span, Span.Event, Span.Link, LogRecord, data points, exemplars) `attributes`
is `repeated bytes`, so upb hands over each KeyValue's encoded bytes; the same bytes give
the same (key, AsString value), which is remembered. Services send the same attributes
over and over, so most attributes cost a dictionary lookup. Resource and scope attributes
are read as messages (once per resource or scope).
"""

from __future__ import annotations

from operator import itemgetter

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from projections.otel_common import value_string
from schemas.otlp.decoding import REQUESTS, decode_request
from schemas.otlp.rules import Signal

_KEY_VALUE = ".opentelemetry.proto.common.v1.KeyValue"
_SERVICES: dict[Signal, FileDescriptor] = {
    "traces": trace_service_pb2.DESCRIPTOR,
    "metrics": metrics_service_pb2.DESCRIPTOR,
    "logs": logs_service_pb2.DESCRIPTOR,
}
CACHE_LIMIT = 200_000
"""Distinct KeyValue encodings remembered; past it the memory starts over (bounded)."""


def _raw_attributes(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.type_name == _KEY_VALUE:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            field.ClearField("type_name")
    for nested in message.nested_type:
        _raw_attributes(nested)


def _request_class(signal: Signal) -> type[Message]:
    """The signal's Export*ServiceRequest class, built in a pool of its own in which the
    signal's data file (trace.proto, logs.proto, metrics.proto) has raw attributes."""
    service = _SERVICES[signal]
    (data,) = service.dependencies
    pool = descriptor_pool.DescriptorPool()
    for dependency in data.dependencies:  # common.proto, resource.proto: unchanged
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(dependency.serialized_pb))
    changed = descriptor_pb2.FileDescriptorProto.FromString(data.serialized_pb)
    for message in changed.message_type:
        _raw_attributes(message)
    pool.Add(changed)
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(service.serialized_pb))
    name = REQUESTS[signal].DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


RAW_REQUESTS: dict[Signal, type[Message]] = {
    signal: _request_class(signal) for signal in ("traces", "metrics", "logs")
}

_cache: dict[bytes, tuple[str, str]] = {}
_key = itemgetter(0)


def decode_raw(signal: Signal, payload: bytes, content_type: str) -> Message:
    """A stored request, with raw item attributes, read by the decoder ingest checked it
    with (schemas.otlp.decoding.decode_request). Raises BadRequest when it cannot be decoded,
    UnsupportedMediaType for a content type that is not OTLP."""
    return decode_request(signal, payload, content_type, RAW_REQUESTS[signal])


def key_value(raw: bytes) -> tuple[str, str]:
    """An encoded KeyValue's (key, AsString(value)). Raises DecodeError."""
    pair = _cache.get(raw)
    if pair is None:
        kv = KeyValue.FromString(raw)
        pair = (kv.key, value_string(kv.value))
        if len(_cache) >= CACHE_LIMIT:
            _cache.clear()
        _cache[raw] = pair
    return pair


def raw_attributes(encoded: list[bytes]) -> dict[str, str]:
    """Encoded KeyValues as Map(String, String), as otel_common.attributes() gives them:
    values by AsString(), the last of a repeated key wins, keys sorted."""
    if not encoded:
        return {}
    pairs = [key_value(raw) for raw in encoded]
    if len(pairs) == 1:
        return dict(pairs)
    pairs.sort(key=_key)  # stable: of a repeated key, the last one stays last, and wins
    return dict(pairs)
