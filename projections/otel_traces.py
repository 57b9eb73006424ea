"""OTLP traces -> otel_traces (one row per span) and otel_traces_trace_id_ts.

Rows are shaped as the Collector's ClickHouse exporter writes them, with App first. The
exporter fills otel_traces_trace_id_ts through a materialized view; Hutch's runner inserts
into each table itself, with its own deduplication token, so this projection computes the
lookup rows (first and last span start per trace) for the batch instead. The lookup table
is a plain MergeTree as the exporter's is: a trace spread over two batches has two rows,
and readers take min(Start), max(End).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from ingest.otlp_rules import span_problem
from projections.base import Rows
from projections.otel_common import (
    attributes,
    columns,
    datetime64_9,
    datetime_seconds,
    decoded,
    hex_id,
)
from projections.otel_raw import decode_raw, raw_attributes
from schemas.clickhouse import load
from schemas.events import Topic
from storage.log import Record

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

# pdata's SpanKind.String() and StatusCode.String(), which the exporter writes.
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")

_START = 1  # index of Timestamp in a row: the lookup table takes span starts, as the MV does


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
    rows = decoded(records, "traces", flatten, decode_raw)
    if not rows:
        return {}
    bounds: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (row[0], row[2])
        seen = bounds.get(key)
        if seen is None:
            bounds[key] = [row[_START], row[_START]]
        else:
            seen[0] = min(seen[0], row[_START])
            seen[1] = max(seen[1], row[_START])
    spans = columns(COLUMNS, rows)
    spans["Timestamp"] = [datetime64_9(nanos) for nanos in spans["Timestamp"]]
    lookup = [
        (app, trace_id, datetime_seconds(first), datetime_seconds(last))
        for (app, trace_id), (first, last) in bounds.items()
    ]
    return {TRACES: spans, TRACE_ID_TS: columns(TRACE_ID_TS_COLUMNS, lookup)}


class OtelTracesProjection:
    name = "otel_traces"
    topics: tuple[Topic, ...] = ("otlp.traces",)
    tables: tuple[str, ...] = (TRACES, TRACE_ID_TS)

    def __init__(self, retention_days: int) -> None:
        self._retention_days = retention_days

    def ddl(self) -> list[str]:
        return [load(table, retention_days=self._retention_days) for table in self.tables]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records)
