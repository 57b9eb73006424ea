"""Prototype, for the projector benchmark: otel_traces rows made by ClickHouse itself.

Python only re-frames each stored export request: every span's encoded bytes, followed by
its resource, scope and app as extra fields (100, 101, 102), become one row of a
ProtobufList stream; ClickHouse decodes it (format_schema given as text) and an
INSERT ... SELECT computes the exporter's columns: hex ids, kind and status names, attribute
maps by AsString() with the last repeated key winning and keys sorted. No Python object per
span or attribute, and no JSON.

What it does not do yet (the reasons it is a benchmark prototype, not the projection):
array and kvlist attribute values (pdata renders them as Go JSON; they would have to be
routed to the Python transform), doubles are printed by ClickHouse rather than Go's
strconv, and the runner has no way to run an INSERT ... SELECT in place of inserting
columns (see the report). bench/otlp.py checks that, on its data, the rows equal those of
projections/otel_traces.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from storage.log import Record

SCHEMA = """
syntax = "proto3";
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    bytes array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7;
  }
}
message KeyValue { string key = 1; AnyValue value = 2; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
  repeated KeyValue attributes = 4;
}
message Status { string message = 2; int32 code = 3; }
message Resource { repeated KeyValue attributes = 1; }
message Scope { string name = 1; string version = 2; }
message Envelope {
  message Span {
    bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
    string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7;
    fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
    repeated Event events = 11; repeated Link links = 13; Status status = 15;
    Resource resource = 100; Scope scope = 101; string app = 102;
  }
  repeated Span row = 1;
}
"""

_VALUE = (
    "Tuple(string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64),"
    " double_value Nullable(Float64), bytes_value Nullable(String))"
)
_KVS = f"Array(Tuple(key String, value {_VALUE}))"
STRUCTURE = (
    "trace_id String, span_id String, trace_state String, parent_span_id String, name String,"
    " kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,"
    f" attributes {_KVS},"
    f" events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})),"
    " links Array(Tuple(trace_id String, span_id String, trace_state String,"
    f" attributes {_KVS})),"
    " status Tuple(message String, code Int32),"
    f" resource Tuple(attributes {_KVS}),"
    " scope Tuple(name String, version String), app String"
)


def _as_string(v: str) -> str:
    return (
        f"multiIf({v}.string_value IS NOT NULL, assumeNotNull({v}.string_value),"
        f" {v}.bool_value IS NOT NULL, if(assumeNotNull({v}.bool_value), 'true', 'false'),"
        f" {v}.int_value IS NOT NULL, toString(assumeNotNull({v}.int_value)),"
        f" {v}.double_value IS NOT NULL, toString(assumeNotNull({v}.double_value)),"
        f" {v}.bytes_value IS NOT NULL, base64Encode(assumeNotNull({v}.bytes_value)), '')"
    )


def _map(kvs: str) -> str:
    """A KeyValue array as a sorted Map; of a repeated key, the last one wins."""
    last = (
        f"arrayFilter((kv, i) -> NOT has(arraySlice(arrayMap(x -> x.key, {kvs}), i + 1), kv.key),"
        f" {kvs}, arrayEnumerate({kvs}))"
    )
    return (
        f"mapSort(mapFromArrays(arrayMap(kv -> kv.key, {last}),"
        f" arrayMap(kv -> {_as_string('kv.value')}, {last})))"
    )


def _hex_id(raw: str, size: int) -> str:
    return f"if(length({raw}) = {size} AND {raw} != repeat('\\0', {size}), lower(hex({raw})), '')"


def _nanos(value: str) -> str:
    return f"fromUnixTimestamp64Nano(toInt64(least({value}, 9223372036854775807)))"


_KINDS = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
_VALID = (
    "length(trace_id) = 16 AND trace_id != repeat('\\0', 16)"
    " AND length(span_id) = 8 AND span_id != repeat('\\0', 8)"
)
_SOURCE = "file({path:String}, 'ProtobufList', {structure:String})"
"""chDB reads the framed batch from a spool file. (Passing it as a query parameter costs
more than the decoding; a ClickHouse server would take it as the body of
`INSERT ... SELECT ... FROM input(structure) FORMAT ProtobufList`.)"""

SPANS_SQL = f"""
INSERT INTO {{table:Identifier}}
SELECT app, {_nanos("start_time_unix_nano")}, lower(hex(trace_id)), lower(hex(span_id)),
       {_hex_id("parent_span_id", 8)}, trace_state, name,
       if(kind >= 0 AND kind < 6, {_KINDS}[kind + 1], ''),
       resource_map['service.name'], resource_map, scope.name, scope.version,
       {_map("attributes")},
       if(end_time_unix_nano > start_time_unix_nano,
          end_time_unix_nano - start_time_unix_nano, 0),
       if(status.code >= 0 AND status.code < 3, ['Unset', 'Ok', 'Error'][status.code + 1], ''),
       status.message,
       arrayMap(e -> {_nanos("e.time_unix_nano")}, events), arrayMap(e -> e.name, events),
       arrayMap(e -> {_map("e.attributes")}, events),
       arrayMap(l -> {_hex_id("l.trace_id", 16)}, links),
       arrayMap(l -> {_hex_id("l.span_id", 8)}, links),
       arrayMap(l -> l.trace_state, links), arrayMap(l -> {_map("l.attributes")}, links)
FROM (SELECT *, {_map("resource.attributes")} AS resource_map FROM {_SOURCE})
WHERE {_VALID}
"""

LOOKUP_SQL = f"""
INSERT INTO {{table:Identifier}}
SELECT app, lower(hex(trace_id)),
       toDateTime(least(intDiv(min(start_time_unix_nano), 1000000000), 4294967295)),
       toDateTime(least(intDiv(max(start_time_unix_nano), 1000000000), 4294967295))
FROM {_SOURCE}
WHERE {_VALID}
GROUP BY app, trace_id
"""


def _skeleton() -> type[Message]:
    """ExportTraceServiceRequest down to the spans, with resource, scope and spans raw."""
    bytes_, message = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES, 11
    repeated, optional = 3, 1
    proto = descriptor_pb2.FileDescriptorProto(name="hutch/otlp_sql_path.proto", package="sk")
    proto.syntax = "proto3"
    layout: dict[str, list[tuple[str, int, int, int, str]]] = {
        "Request": [("resource_spans", 1, message, repeated, ".sk.ResourceSpans")],
        "ResourceSpans": [
            ("resource", 1, bytes_, optional, ""),
            ("scope_spans", 2, message, repeated, ".sk.ScopeSpans"),
        ],
        "ScopeSpans": [("scope", 1, bytes_, optional, ""), ("spans", 2, bytes_, repeated, "")],
    }
    for name, fields in layout.items():
        spec = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            spec.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                spec.field[-1].type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("sk.Request"))


_Request = _skeleton()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def frame(records: Sequence[Record]) -> bytes:
    """The records' spans as one length-delimited ProtobufList Envelope (binary records
    only: the prototype leaves OTLP/JSON records to the Python transform)."""
    rows: list[bytes] = []
    for record in records:
        envelope = record.envelope
        app = _field(102, (envelope.app or "").encode())
        for resource_spans in _Request.FromString(envelope.payload).resource_spans:  # type: ignore[attr-defined]
            resource = _field(100, resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                tail = resource + _field(101, scope_spans.scope) + app
                for span in scope_spans.spans:
                    row = span + tail
                    rows.append(b"\n" + _varint(len(row)) + row)
    body = b"".join(rows)
    return _varint(len(body)) + body


def statements(path: str, tables: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The INSERT ... SELECT statements (with their parameters) for otel_traces and its
    lookup table, reading the frame() written at `path`."""
    spans, lookup = tables
    common = {"structure": STRUCTURE, "path": path}
    return [(SPANS_SQL, {**common, "table": spans}), (LOOKUP_SQL, {**common, "table": lookup})]


SETTINGS = {
    "format_schema": SCHEMA,
    "format_schema_source": "string",
    "format_schema_message_name": "Span",
    "short_circuit_function_evaluation": "force_enable",
}
