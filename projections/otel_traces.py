"""OTLP traces -> otel_traces (one row per span) and otel_traces_trace_id_ts.

Rows are shaped as the Collector's ClickHouse exporter writes them, with App first. The
exporter fills otel_traces_trace_id_ts through a materialized view; Hutch's runner inserts
into each table itself, with its own deduplication token, so this projection computes the
lookup rows (first and last span start per trace) for the batch instead. The lookup table
is a plain MergeTree as the exporter's is: a trace spread over two batches has two rows,
and readers take min(Start), max(End).

Two transforms give the same rows: `flatten` in Python, and the compiled one
(projections/otel_spans_rowbinary.c, built by setup.py where a C compiler is present), which
reads the protobuf and writes the spans as RowBinary, about eight times faster
(bench/otlp.py). The projection runs the compiled one when it was built (`COMPILED`); tests
hold the two to the same rows (tests/test_otel_spans_rowbinary.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import Message

from projections import rowbinary
from projections.interface import Rows
from projections.otel_common import (
    attributes,
    columns,
    datetime64_9,
    datetime64_9_nanos,
    datetime_seconds,
    decoded,
    hex_id,
)
from projections.otel_raw import decode_raw, key_value, raw_attributes
from schemas.clickhouse import load
from schemas.envelope import PROTOBUF
from schemas.events import Topic
from schemas.otlp.decoding import decode_request, encoding_of
from schemas.otlp.rules import Signal, span_problem
from storage.analytics.protocol import RowBinary
from storage.log import Record

Encoded = tuple[int, list[tuple[str, int, int]]]
"""What the compiled transform tells of the rows it appended for one request: how many, and
each trace's (hex id, first start, last start) in nanoseconds."""

compiled_rows: Callable[[bytes, str, Callable[[bytes], str], bytearray], Encoded | None] | None
sorted_rows: Callable[[bytes | bytearray, int], bytes] | None
try:
    from projections.otel_spans_rowbinary import rows as compiled_rows
    from projections.otel_spans_rowbinary import sorted_rows
except ImportError:  # installed without a C compiler
    compiled_rows = sorted_rows = None
COMPILED = compiled_rows is not None

TRACES = "otel_traces"
TRACE_ID_TS = "otel_traces_trace_id_ts"

COLUMNS = (
    "App",
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
TRACE_ID_TS_COLUMNS = ("App", "TraceId", "Start", "End")

_MAP = "Map(String, String)"
_NOT_STRINGS = {
    "Timestamp": "DateTime64(9)",
    "ResourceAttributes": _MAP,
    "SpanAttributes": _MAP,
    "Duration": "UInt64",
    "Events.Timestamp": "Array(DateTime64(9))",
    "Events.Name": "Array(String)",
    "Events.Attributes": f"Array({_MAP})",
    "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)",
    "Links.TraceState": "Array(String)",
    "Links.Attributes": f"Array({_MAP})",
}
ROW_BINARY_TYPES = tuple(_NOT_STRINGS.get(column, "String") for column in COLUMNS)
"""How the compiled transform encodes each of COLUMNS."""

# pdata's SpanKind.String() and StatusCode.String(), which the exporter writes.
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")

_START = 1  # index of Timestamp in a row: the lookup table takes span starts, as the MV does
_EVENTS_START = COLUMNS.index("Events.Timestamp")


_KIND_NAMES = dict(enumerate(SPAN_KINDS))
_STATUS_NAMES = dict(enumerate(STATUS_CODES))
_NO_EVENTS: tuple[list[Any], ...] = ([], [], [])
_NO_LINKS: tuple[list[Any], ...] = ([], [], [], [])
"""Shared by the rows of spans without events or links (most spans); never mutated."""


def flatten(request: Message, app: str) -> list[tuple[Any, ...]]:
    """One row per accepted span of an ExportTraceServiceRequest decoded by
    otel_raw.decode_raw (item attributes raw), in COLUMNS order.

    Timestamp keeps its nanoseconds (int) until columns are built; see transform().
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    kinds, statuses = _KIND_NAMES.get, _STATUS_NAMES.get
    for resource_spans in request.resource_spans:  # type: ignore[attr-defined]
        resource = attributes(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id, span.span_id
                if span_problem(trace_id, span_id):
                    continue
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                events, links, status = span.events, span.links, span.status
                event_columns = _NO_EVENTS
                if events:
                    event_columns = (
                        [datetime64_9(event.time_unix_nano) for event in events],
                        [event.name for event in events],
                        [raw_attributes(event.attributes) for event in events],
                    )
                link_columns = _NO_LINKS
                if links:
                    link_columns = (
                        [hex_id(link.trace_id, 16) for link in links],
                        [hex_id(link.span_id, 8) for link in links],
                        [link.trace_state for link in links],
                        [raw_attributes(link.attributes) for link in links],
                    )
                append(
                    (
                        app,
                        start,
                        trace_id.hex(),
                        span_id.hex(),
                        hex_id(span.parent_span_id, 8),
                        span.trace_state,
                        span.name,
                        kinds(span.kind, ""),
                        service,
                        resource,
                        scope_name,
                        scope_version,
                        raw_attributes(span.attributes),
                        end - start if end > start else 0,  # the exporter's uint64 would wrap
                        statuses(status.code, ""),
                        status.message,
                        *event_columns,
                        *link_columns,
                    )
                )
    return rows


def transform(records: Sequence[Record]) -> Rows:
    """The Python transform: rows as columns."""
    rows = decoded(records, "traces", flatten, decode_raw)
    if not rows:
        return {}
    bounds: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        _widen(bounds, (row[0], row[2]), row[_START], row[_START])
    spans = columns(COLUMNS, rows)
    spans["Timestamp"] = [datetime64_9(nanos) for nanos in spans["Timestamp"]]
    return {TRACES: spans, TRACE_ID_TS: _lookup(bounds)}


def transform_compiled(records: Sequence[Record]) -> Rows:
    """The compiled transform: the same rows, the spans as RowBinary."""
    out = bytearray()
    encoded = decoded(records, "traces", functools.partial(_encode, out=out), _protobuf)
    count = sum(spans for _, (spans, _) in encoded)
    if count == 0:
        return {}
    bounds: dict[tuple[str, str], list[int]] = {}
    for app, (_, traces) in encoded:
        for trace_id, first, last in traces:
            _widen(bounds, (app, trace_id), first, last)
    assert sorted_rows is not None
    # In the table's order: the engine checks whether a block is sorted before sorting it,
    # and inserts a sorted one about a quarter faster.
    data = sorted_rows(out, count)
    return {
        TRACES: RowBinary(COLUMNS, ROW_BINARY_TYPES, data, count),
        TRACE_ID_TS: _lookup(bounds),
    }


def _widen(
    bounds: dict[tuple[str, str], list[int]], key: tuple[str, str], first: int, last: int
) -> None:
    seen = bounds.get(key)
    if seen is None:
        bounds[key] = [first, last]
    else:
        seen[0] = min(seen[0], first)
        seen[1] = max(seen[1], last)


def _lookup(bounds: dict[tuple[str, str], list[int]]) -> dict[str, list[Any]]:
    rows = [
        (app, trace_id, datetime_seconds(first), datetime_seconds(last))
        for (app, trace_id), (first, last) in bounds.items()
    ]
    return columns(TRACE_ID_TS_COLUMNS, rows)


def _protobuf(signal: Signal, payload: bytes, content_type: str) -> bytes:
    """A stored request as protobuf bytes for the compiled transform (OTLP/JSON re-encoded).
    Raises BadRequest as decode_request does."""
    if encoding_of(content_type) == "protobuf":
        return payload
    return decode_request(signal, payload, content_type).SerializeToString()


def _encode(payload: bytes, app: str, *, out: bytearray) -> list[tuple[str, Encoded]]:
    """Append the request's rows to `out`: the compiled transform's, or, for an encoding it
    leaves to upb, the Python transform's."""
    assert compiled_rows is not None
    encoded = compiled_rows(payload, app, _value_text, out)
    if encoded is None:
        rows = flatten(decode_raw("traces", payload, PROTOBUF), app)
        out += rowbinary.encode(ROW_BINARY_TYPES, (_row_binary_values(row) for row in rows))
        bounds: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            _widen(bounds, (app, row[2]), row[_START], row[_START])
        traces = [(trace, first, last) for (_, trace), (first, last) in bounds.items()]
        encoded = (len(rows), traces)
    return [(app, encoded)]


def _row_binary_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A `flatten` row with its times as RowBinary takes them: nanoseconds, clamped as
    datetime64_9 clamps them."""
    values = list(row)
    values[_START] = datetime64_9_nanos(row[_START])
    values[_EVENTS_START] = [int(text.replace(".", "")) for text in row[_EVENTS_START]]
    return tuple(values)


def _value_text(raw: bytes) -> str:
    """AsString() of an encoded KeyValue's value (a double, bytes, an array or a map)."""
    return key_value(raw)[1]


class OtelTracesProjection:
    name = "otel_traces"
    topics: tuple[Topic, ...] = ("otlp.traces",)
    tables: tuple[str, ...] = (TRACES, TRACE_ID_TS)

    def __init__(self, retention_days: int, *, compiled: bool = COMPILED) -> None:
        """`compiled=False` runs the Python transform even where the compiled one was built."""
        if compiled and not COMPILED:
            raise RuntimeError("projections.otel_spans_rowbinary was not built")
        self._retention_days = retention_days
        self._transform = transform_compiled if compiled else transform

    def ddl(self) -> list[str]:
        return [load(table, retention_days=self._retention_days) for table in self.tables]

    def transform(self, records: Sequence[Record]) -> Rows:
        return self._transform(records)
