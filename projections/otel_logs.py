"""OTLP logs -> otel_logs, one row per log record, as the Collector's ClickHouse exporter
writes them, with App first. TimestampTime is left to its DEFAULT (toDateTime(Timestamp))."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from projections.interface import Rows
from projections.otel_common import attributes, columns, datetime64_9, decoded, hex_id, value_string
from projections.otel_raw import decode_raw, raw_attributes
from schemas.clickhouse import load
from schemas.events import Topic
from schemas.otlp.rules import log_problem
from storage.log import Record

LOGS = "otel_logs"

COLUMNS = (
    "App",
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
)


def flatten(request: Message, app: str) -> list[tuple[Any, ...]]:
    """One row per accepted log record of an ExportLogsServiceRequest, in COLUMNS order."""
    rows: list[tuple[Any, ...]] = []
    for resource_logs in request.resource_logs:  # type: ignore[attr-defined]
        resource = attributes(resource_logs.resource.attributes)
        service = resource.get("service.name", "")
        resource_url = resource_logs.schema_url
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scope_attributes = attributes(scope.attributes)
            for record in scope_logs.log_records:
                if log_problem(record.trace_id, record.span_id):
                    continue
                # The exporter falls back to the observed time when the event time is unset.
                when = record.time_unix_nano or record.observed_time_unix_nano
                rows.append(
                    (
                        app,
                        datetime64_9(when),
                        hex_id(record.trace_id, 16),
                        hex_id(record.span_id, 8),
                        record.flags & 0xFF,  # the W3C trace flags: the low byte, as uint8()
                        record.severity_text,
                        record.severity_number & 0xFF,
                        service,
                        value_string(record.body),
                        resource_url,
                        resource,
                        scope_logs.schema_url,
                        scope.name,
                        scope.version,
                        scope_attributes,
                        raw_attributes(record.attributes),
                        record.event_name,
                    )
                )
    return rows


def transform(records: Sequence[Record]) -> Rows:
    rows = decoded(records, "logs", flatten, decode_raw)
    return {LOGS: columns(COLUMNS, rows)} if rows else {}


class OtelLogsProjection:
    name = "otel_logs"
    topics: tuple[Topic, ...] = ("otlp.logs",)
    tables: tuple[str, ...] = (LOGS,)

    def __init__(self, retention_days: int) -> None:
        self._retention_days = retention_days

    def ddl(self) -> list[str]:
        return [load(LOGS, retention_days=self._retention_days)]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records)
