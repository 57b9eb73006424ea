"""OTLP metrics -> otel_metrics_{gauge,sum,histogram,exponential_histogram,summary}, one row
per data point, as the Collector's ClickHouse exporter writes them, with App first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from projections.interface import Rows
from projections.otel_common import (
    attributes,
    columns,
    datetime64_9,
    decoded,
    float64,
    padded_hex_id,
)
from projections.otel_raw import decode_raw, raw_attributes
from schemas.clickhouse import load
from schemas.events import Topic
from storage.log import Record

GAUGE = "otel_metrics_gauge"
SUM = "otel_metrics_sum"
HISTOGRAM = "otel_metrics_histogram"
EXPONENTIAL_HISTOGRAM = "otel_metrics_exponential_histogram"
SUMMARY = "otel_metrics_summary"

TABLE_OF_KIND = {
    "gauge": GAUGE,
    "sum": SUM,
    "histogram": HISTOGRAM,
    "exponential_histogram": EXPONENTIAL_HISTOGRAM,
    "summary": SUMMARY,
}

COMMON = (
    "App",
    "ResourceAttributes",
    "ResourceSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "ScopeDroppedAttrCount",
    "ScopeSchemaUrl",
    "ServiceName",
    "MetricName",
    "MetricDescription",
    "MetricUnit",
    "Attributes",
    "StartTimeUnix",
    "TimeUnix",
)
EXEMPLARS = (
    "Exemplars.FilteredAttributes",
    "Exemplars.TimeUnix",
    "Exemplars.Value",
    "Exemplars.SpanId",
    "Exemplars.TraceId",
)
COLUMNS: dict[str, tuple[str, ...]] = {
    GAUGE: (*COMMON, "Value", "Flags", *EXEMPLARS),
    SUM: (*COMMON, "Value", "Flags", *EXEMPLARS, "AggregationTemporality", "IsMonotonic"),
    HISTOGRAM: (
        *COMMON,
        "Count",
        "Sum",
        "BucketCounts",
        "ExplicitBounds",
        *EXEMPLARS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    EXPONENTIAL_HISTOGRAM: (
        *COMMON,
        "Count",
        "Sum",
        "Scale",
        "ZeroCount",
        "PositiveOffset",
        "PositiveBucketCounts",
        "NegativeOffset",
        "NegativeBucketCounts",
        *EXEMPLARS,
        "Flags",
        "Min",
        "Max",
        "AggregationTemporality",
    ),
    SUMMARY: (
        *COMMON,
        "Count",
        "Sum",
        "ValueAtQuantiles.Quantile",
        "ValueAtQuantiles.Value",
        "Flags",
    ),
}

Tagged = tuple[str, tuple[Any, ...]]
"""(table, row in that table's COLUMNS order)."""


def _number(point: Any) -> float | str:
    """A NumberDataPoint's or Exemplar's value as one Float64 (0 when unset)."""
    kind = point.WhichOneof("value")
    return float64(point.as_double) if kind == "as_double" else float(point.as_int)


def _exemplars(exemplars: Sequence[Any]) -> tuple[list[Any], ...]:
    return (
        [raw_attributes(e.filtered_attributes) for e in exemplars],
        [datetime64_9(e.time_unix_nano) for e in exemplars],
        [_number(e) for e in exemplars],
        [padded_hex_id(e.span_id, 8) for e in exemplars],
        [padded_hex_id(e.trace_id, 16) for e in exemplars],
    )


def _point_rows(kind: str, data: Any, common: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for p in data.data_points:
        head = (
            *common,
            raw_attributes(p.attributes),
            datetime64_9(p.start_time_unix_nano),
            datetime64_9(p.time_unix_nano),
        )
        if kind == "gauge":
            rows.append((*head, _number(p), p.flags, *_exemplars(p.exemplars)))
        elif kind == "sum":
            rows.append(
                (
                    *head,
                    _number(p),
                    p.flags,
                    *_exemplars(p.exemplars),
                    data.aggregation_temporality,
                    data.is_monotonic,
                )
            )
        elif kind == "histogram":
            rows.append(
                (
                    *head,
                    p.count,
                    float64(p.sum),
                    list(p.bucket_counts),
                    [float64(b) for b in p.explicit_bounds],
                    *_exemplars(p.exemplars),
                    p.flags,
                    float64(p.min),
                    float64(p.max),
                    data.aggregation_temporality,
                )
            )
        elif kind == "exponential_histogram":
            rows.append(
                (
                    *head,
                    p.count,
                    float64(p.sum),
                    p.scale,
                    p.zero_count,
                    p.positive.offset,
                    list(p.positive.bucket_counts),
                    p.negative.offset,
                    list(p.negative.bucket_counts),
                    *_exemplars(p.exemplars),
                    p.flags,
                    float64(p.min),
                    float64(p.max),
                    data.aggregation_temporality,
                )
            )
        else:
            quantiles = p.quantile_values
            rows.append(
                (
                    *head,
                    p.count,
                    float64(p.sum),
                    [float64(q.quantile) for q in quantiles],
                    [float64(q.value) for q in quantiles],
                    p.flags,
                )
            )
    return rows


def flatten(request: Message, app: str) -> list[Tagged]:
    """(table, row) per accepted data point of an ExportMetricsServiceRequest."""
    tagged: list[Tagged] = []
    for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
        resource = attributes(resource_metrics.resource.attributes)
        service = resource.get("service.name", "")
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_part = (
                scope.name,
                scope.version,
                attributes(scope.attributes),
                scope.dropped_attributes_count,
                scope_metrics.schema_url,
                service,
            )
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:  # rejected at ingest: no data point to write
                    continue
                common = (
                    app,
                    resource,
                    resource_metrics.schema_url,
                    *scope_part,
                    metric.name,
                    metric.description,
                    metric.unit,
                )
                table = TABLE_OF_KIND[kind]
                points = _point_rows(kind, getattr(metric, kind), common)
                tagged.extend((table, row) for row in points)
    return tagged


def transform(records: Sequence[Record]) -> Rows:
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    for table, row in decoded(records, "metrics", flatten, decode_raw):
        by_table.setdefault(table, []).append(row)
    return {table: columns(COLUMNS[table], rows) for table, rows in by_table.items()}


class OtelMetricsProjection:
    name = "otel_metrics"
    topics: tuple[Topic, ...] = ("otlp.metrics",)
    tables: tuple[str, ...] = (GAUGE, SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM, SUMMARY)

    def __init__(self, retention_days: int) -> None:
        self._retention_days = retention_days

    def ddl(self) -> list[str]:
        return [load(table, retention_days=self._retention_days) for table in self.tables]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records)
