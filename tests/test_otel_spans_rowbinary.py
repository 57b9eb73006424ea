"""The compiled otel_traces transform gives the Python transform's rows, record for record.

Requests as SDKs send them, values of every kind, and encodings only upb decides how to read
(a message repeated and merged, unknown and mistyped fields, groups, invalid UTF-8, cut
bodies, deep nesting): projections/otel_spans_rowbinary.c leaves those to the Python
transform, and the rows must still come out the same, or the record be skipped by both.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from projections.interface import Columns
from projections.otel_traces import COMPILED, TRACES, OtelTracesProjection
from projections.runner import ensure_tables, write_rows
from schemas.envelope import JSON
from storage.analytics.chdb import ChdbAnalytics
from storage.analytics.protocol import RowBinary
from storage.log import Record
from tests.support.otlp_builders import (
    T0,
    kv,
    mutations,
    otlp_json,
    record,
    rich_request,
    span,
    traces,
)
from tests.support.rowbinary import read_columns
from tests.support.services import IN_CI

if not COMPILED:
    _MESSAGE = "projections.otel_spans_rowbinary was not built (no C compiler?)"
    if IN_CI:
        pytest.fail(f"CI=true but {_MESSAGE}", pytrace=False)
    pytest.skip(_MESSAGE, allow_module_level=True)


RETENTION_DAYS = 29_000  # T0 (2023) and the clamped times stay within the table's TTL
PYTHON = OtelTracesProjection(RETENTION_DAYS, compiled=False)
COMPILED_PROJECTION = OtelTracesProjection(RETENTION_DAYS, compiled=True)


def _columns(rows: dict[str, Any]) -> dict[str, Columns]:
    return {
        table: read_columns(block) if isinstance(block, RowBinary) else block
        for table, block in rows.items()
    }


def _row_list(columns: Columns) -> list[bytes]:
    """The rows, each as JSON, in a fixed order: the compiled transform sorts them."""
    return sorted(orjson.dumps(row) for row in zip(*columns.values(), strict=True))


def both(*payloads: bytes) -> dict[str, Columns]:
    """The rows of the payloads (one record each), asserted equal through both transforms;
    the Python transform's are returned."""
    records = [record("otlp.traces.v1", p, offset=n) for n, p in enumerate(payloads)]
    python = PYTHON.transform(records)
    compiled = _columns(COMPILED_PROJECTION.transform(records))
    assert compiled.keys() == python.keys()
    for table, columns in python.items():
        assert compiled[table].keys() == columns.keys()
        assert _row_list(compiled[table]) == _row_list(columns)
    return python


def span_ids(rows: dict[str, Columns]) -> list[str]:
    return rows[TRACES]["SpanId"] if rows else []


# --- wire format by hand, for encodings no SDK writes -----------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def request_of(span_bytes: bytes, resource: bytes | None = None) -> bytes:
    """An ExportTraceServiceRequest around one encoded span, service `checkout`."""
    if resource is None:
        resource = Resource(attributes=[kv("service.name", "checkout")]).SerializeToString()
    scope = InstrumentationScope(name="io.hutch.test").SerializeToString()
    scope_spans = length_delimited(1, scope) + length_delimited(2, span_bytes)
    resource_spans = length_delimited(1, resource) + length_delimited(2, scope_spans)
    return length_delimited(1, resource_spans)


def span_bytes(number: int = 1, **fields: Any) -> bytes:
    return span(number, **fields).SerializeToString()


# --- the schema the compiled check reads ----------------------------------------------------


def _kind(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return str(field.message_type.full_name)
    if field.type == FieldDescriptor.TYPE_STRING:
        return "string"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "bytes"
    if field.type in (
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_DOUBLE,
    ):
        return "fixed64"
    if field.type in (
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_FLOAT,
    ):
        return "fixed32"
    assert field.type not in (FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64)
    return "varint"


def _schema(root: Descriptor) -> dict[str, dict[int, tuple[str, bool]]]:
    messages: dict[str, dict[int, tuple[str, bool]]] = {}
    pending = [root]
    while pending:
        message = pending.pop()
        if message.full_name in messages:
            continue
        messages[message.full_name] = {
            field.number: (_kind(field), field.is_repeated or field.containing_oneof is not None)
            for field in message.fields
        }
        pending.extend(f.message_type for f in message.fields if f.message_type is not None)
    return messages


def test_the_compiled_check_knows_every_field_of_the_installed_protos() -> None:
    """If opentelemetry-proto adds a field, the C schema must learn it (a new string field
    would otherwise go unchecked for UTF-8, which upb refuses)."""
    from schemas.otlp.trace_check import known_fields

    known = known_fields()
    expected = _schema(ExportTraceServiceRequest.DESCRIPTOR)
    # The oneof members that are not messages are singular to the check, which is enough:
    # upb sets the last one on the wire, and so does the compiled transform.
    for message, fields in known.items():
        for number, (kind, repeated) in fields.items():
            if not repeated and expected[message][number][1]:
                expected[message][number] = (kind, False)
    assert known == expected


# --- requests as SDKs send them ----------------------------------------------------------


def test_requests_with_every_kind_of_value_give_the_same_rows() -> None:
    rows = both(rich_request().SerializeToString(), traces(span(12)).SerializeToString())
    assert len(span_ids(rows)) == 10
    assert rows[TRACES]["ServiceName"][-3:] == ["second", "", "checkout"]
    assert len(rows["otel_traces_trace_id_ts"]["TraceId"]) == 2


def test_compiled_rows_come_in_the_tables_order() -> None:
    """Sorted by (App, ServiceName, SpanName, toDateTime(Timestamp)), ties as they came: the
    engine then skips its own sort."""
    early, late = T0, T0 + 2_000_000_000
    request = traces(
        span(1, name="b", start_time_unix_nano=late),
        span(2, name="a", start_time_unix_nano=late),
        span(3, name="b", start_time_unix_nano=early),
        span(4, name="b", start_time_unix_nano=early + 1),
        span(5, name="b", start_time_unix_nano=early),
        service="z",
    )
    other = traces(span(6, name="c"), service="a")
    records = [
        record("otlp.traces.v1", request.SerializeToString(), offset=0),
        record("otlp.traces.v1", other.SerializeToString(), offset=1),
        record("otlp.traces.v1", other.SerializeToString(), offset=2, app="another"),
    ]
    rows = _columns(COMPILED_PROJECTION.transform(records))
    order = [int(span_id, 16) for span_id in rows[TRACES]["SpanId"]]
    assert order == [6, 6, 2, 3, 4, 5, 1]
    assert rows[TRACES]["App"] == ["another"] + ["demo"] * 6


def test_json_records_give_the_same_rows_as_protobuf() -> None:
    request = rich_request()
    # OTLP/JSON cannot carry NaN or the nested value as the test builds them: leave those out.
    for kept in request.resource_spans[0].scope_spans[0].spans[0:1]:
        keep = [a for a in kept.attributes if a.key not in ("nan", "inf", "nested")]
        del kept.attributes[:]
        kept.attributes.extend(keep)
    protobuf = record("otlp.traces.v1", request.SerializeToString())
    json = record("otlp.traces.v1", orjson.dumps(otlp_json(request)), content_type=JSON)
    from_json = _columns(COMPILED_PROJECTION.transform([json]))
    assert from_json == _columns(COMPILED_PROJECTION.transform([protobuf]))
    assert _row_list(from_json[TRACES]) == _row_list(PYTHON.transform([json])[TRACES])


# --- encodings upb decides --------------------------------------------------------------


ENCODINGS = {
    "a string field twice: the last wins": span_bytes(1) + length_delimited(5, b"renamed"),
    "ids twice: the last wins": span_bytes(1) + length_delimited(2, b"\x09" * 8),
    "status twice: merged": span_bytes(1, status=Status(code=2))
    + length_delimited(15, Status(message="merged").SerializeToString()),
    "an attribute whose value is given twice: merged": span_bytes(1)
    + length_delimited(
        9,
        length_delimited(1, b"k")
        + length_delimited(2, AnyValue(string_value="one").SerializeToString())
        + length_delimited(2, AnyValue(int_value=2).SerializeToString()),
    ),
    "a oneof member only Python reads (string_value_strindex)": span_bytes(1)
    + length_delimited(9, length_delimited(1, b"k") + length_delimited(2, tag(8, 0) + varint(3))),
    "a oneof given twice: the last member wins": span_bytes(1)
    + length_delimited(
        9,
        length_delimited(1, b"k")
        + length_delimited(
            2,
            AnyValue(string_value="s").SerializeToString()
            + AnyValue(int_value=5).SerializeToString(),
        ),
    ),
    "a bool other than 0 or 1": span_bytes(1)
    + length_delimited(9, length_delimited(1, b"b") + length_delimited(2, tag(2, 0) + varint(7))),
    "an enum as a 64-bit varint": span_bytes(1) + tag(6, 0) + varint(2**32 + 3),
    "unknown fields of every wire type": span_bytes(1)
    + tag(99, 0)
    + varint(5)
    + tag(100, 1)
    + b"\x00" * 8
    + length_delimited(101, b"\xff\xfe")  # not UTF-8: unknown fields are not read
    + tag(102, 5)
    + b"\x00" * 4,
    "an unknown group": span_bytes(1) + tag(103, 3) + tag(1, 0) + varint(1) + tag(103, 4),
    "a known field with the wrong wire type": span_bytes(1) + tag(5, 0) + varint(1),
    "a span name that is not UTF-8": span_bytes(1) + length_delimited(5, b"\xc3\x28"),
    "a surrogate in an attribute key": span_bytes(1)
    + length_delimited(9, length_delimited(1, b"\xed\xa0\x80")),
    "an overlong encoding in an event name": span_bytes(1, events=[Span.Event(name="x")]).replace(
        b"\x12\x01x", b"\x12\x02\xc0\xaf"
    ),
    "a cut span": span_bytes(1)[:-3],
    "field number zero": span_bytes(1) + tag(0, 0) + varint(1),
}


@pytest.mark.parametrize("case", list(ENCODINGS))
def test_encodings_upb_decides_give_the_same_rows(case: str) -> None:
    both(request_of(ENCODINGS[case]), traces(span(2)).SerializeToString())


def test_a_resource_given_twice_is_merged_by_both() -> None:
    first = Resource(attributes=[kv("service.name", "one")]).SerializeToString()
    second = Resource(attributes=[kv("host.name", "h")]).SerializeToString()
    resource_spans = (
        length_delimited(1, first)
        + length_delimited(2, length_delimited(2, span_bytes(1)))
        + length_delimited(1, second)
    )
    rows = both(length_delimited(1, resource_spans))
    assert rows[TRACES]["ResourceAttributes"] == [{"host.name": "h", "service.name": "one"}]


def test_invalid_utf8_in_an_entity_ref_or_scope_attribute_skips_the_record_in_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entity = length_delimited(3, length_delimited(2, b"\xff"))
    resource = Resource(attributes=[kv("service.name", "c")]).SerializeToString() + entity
    scope_attribute = length_delimited(
        3, length_delimited(1, b"k") + length_delimited(2, length_delimited(1, b"\xff"))
    )
    scope_spans = length_delimited(1, scope_attribute) + length_delimited(2, span_bytes(1))
    bad_scope = length_delimited(1, length_delimited(2, scope_spans))
    with caplog.at_level(logging.ERROR):
        assert both(request_of(span_bytes(1), resource), bad_scope) == {}
    assert len([r for r in caplog.records if hasattr(r, "offset")]) == 4  # 2 per transform


def test_values_nested_deeper_than_upb_reads_skip_the_record_in_both() -> None:
    nested = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(150):
        nested = length_delimited(5, length_delimited(1, nested))
    deep = length_delimited(9, length_delimited(1, b"deep") + length_delimited(2, nested))
    assert both(request_of(span_bytes(1) + deep)) == {}


# --- through the engine ------------------------------------------------------------------


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[ChdbAnalytics]:
    store = ChdbAnalytics(tmp_path / "clickhouse")
    yield store
    store.close()


def test_both_transforms_store_the_same_table(chdb: ChdbAnalytics) -> None:
    records = [record("otlp.traces.v1", rich_request().SerializeToString())]
    tables = {}
    for projection in (PYTHON, COMPILED_PROJECTION):
        ensure_tables(chdb, projection)
        write_rows(chdb, projection, records, projection.transform(records))
        tables[projection] = chdb.query(
            "SELECT * EXCEPT (Timestamp), toUnixTimestamp64Nano(Timestamp), "
            "arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) "
            "FROM otel_traces ORDER BY SpanId"
        ).rows
        for table in reversed(projection.tables):
            chdb.execute(f"DROP TABLE {table}")
    # Nine of the ten rows: the span starting at the clamped end of time (2262) is past what
    # the TTL's DateTime holds, and the engine drops it in both tables.
    assert len(tables[PYTHON]) == 9
    assert tables[COMPILED_PROJECTION] == tables[PYTHON]


def test_span_rows_are_packed_little_endian() -> None:
    """The one RowBinary detail the reader above could share a mistake with."""
    rows = COMPILED_PROJECTION.transform(
        [record("otlp.traces.v1", traces(span(1)).SerializeToString())]
    )
    block = rows[TRACES]
    assert isinstance(block, RowBinary)
    assert struct.pack("<q", T0) in block.data


def _records(payloads: list[bytes]) -> list[Record]:
    return [record("otlp.traces.v1", p, offset=n) for n, p in enumerate(payloads)]


def test_a_key_value_without_a_key_or_value_reads_as_empty() -> None:
    bare = KeyValue().SerializeToString()  # empty: an attribute with key "" and value ""
    rows = both(request_of(span_bytes(1) + length_delimited(9, bare)))
    assert rows[TRACES]["SpanAttributes"] == [{"": ""}]


# --- mutated requests ----------------------------------------------------------------------


def test_mutated_requests_give_the_same_rows_or_are_skipped_by_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the compiled check lets through must be what upb lets through, read the same way
    (and reading any bytes must be safe: a crash here would take pytest down with it)."""
    caplog.set_level(logging.CRITICAL)  # the skipped records' error logs
    outcomes = {"rows": 0, "skipped": 0}
    for payload in mutations(seed=20261203, count=1500):
        rows = both(payload)
        outcomes["rows" if rows else "skipped"] += 1
    assert outcomes["rows"] > 300, outcomes
    assert outcomes["skipped"] > 300, outcomes


def test_readable_says_yes_only_to_what_upb_reads() -> None:
    """Ingest skips upb's full read of a trace request the compiled check calls readable:
    that must never be one upb refuses (it would be acknowledged, then lost). Values nested
    at every place an attribute value can be, at depths around the check's limit and upb's."""
    from google.protobuf.message import DecodeError

    from schemas.otlp.trace_check import readable
    from tests.support.otlp_builders import Filled, with_deep_value

    def upb_reads(payload: bytes) -> bool:
        try:
            ExportTraceServiceRequest.FromString(payload)
        except DecodeError:
            return False
        return True

    now = 10**18
    seen = {True: 0, False: 0}
    for place in Filled(ExportTraceServiceRequest, now).any_values:
        for levels in (3, 25, 30, 45, 60):
            payload = with_deep_value(ExportTraceServiceRequest, now, place, levels, "protobuf")
            seen[readable(payload)] += 1
            assert not readable(payload) or upb_reads(payload), (place, levels)
            assert readable(payload) == (levels == 3) or levels in (25, 30), (place, levels)
        shallow = with_deep_value(ExportTraceServiceRequest, now, place, 3, "protobuf")
        for mutated in mutations(seed=place, count=100, valid=[shallow]):
            seen[readable(mutated)] += 1
            assert not readable(mutated) or upb_reads(mutated)
    assert min(seen.values()) > 10, seen
