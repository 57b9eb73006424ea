"""Counting the items of binary OTLP requests: parse only the skeleton down to the items.

Once upb has read the whole request (schemas.otlp.decoding.check: what it refuses, such as
invalid UTF-8 or values nested too deep, is refused at ingest, never dropped by a projector),
the items are counted and judged by the rules in schemas.otlp.rules. Walking the decoded
request in Python costs more than parsing it again with these "lite" messages, which declare
only the fields needed to count items and apply the rules; upb skips every other field.

Spans are kept as raw bytes: every encoder we know writes trace_id (field 1) then span_id
(field 2) first, so one regular expression, run over all spans in C, accepts the common
case. A span it does not accept is parsed properly and judged by the rule.
"""

from __future__ import annotations

import re

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from schemas.otlp.rules import (
    NO_METRIC_DATA,
    Checked,
    Signal,
    Tally,
    log_problem,
    span_problem,
)

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "hutch.otlp_lite"

# (message, [(field, number, type, repeated, message type)]), numbers as in opentelemetry-proto.
_SCHEMA: list[tuple[str, list[tuple[str, int, int, bool, str]]]] = [
    ("TracesRequest", [("resource_spans", 1, _F.TYPE_MESSAGE, True, "ResourceSpans")]),
    ("ResourceSpans", [("scope_spans", 2, _F.TYPE_MESSAGE, True, "ScopeSpans")]),
    ("ScopeSpans", [("spans", 2, _F.TYPE_BYTES, True, "")]),
    ("Span", [("trace_id", 1, _F.TYPE_BYTES, False, ""), ("span_id", 2, _F.TYPE_BYTES, False, "")]),
    ("LogsRequest", [("resource_logs", 1, _F.TYPE_MESSAGE, True, "ResourceLogs")]),
    ("ResourceLogs", [("scope_logs", 2, _F.TYPE_MESSAGE, True, "ScopeLogs")]),
    ("ScopeLogs", [("log_records", 2, _F.TYPE_MESSAGE, True, "LogRecord")]),
    (
        "LogRecord",
        [("trace_id", 9, _F.TYPE_BYTES, False, ""), ("span_id", 10, _F.TYPE_BYTES, False, "")],
    ),
    ("MetricsRequest", [("resource_metrics", 1, _F.TYPE_MESSAGE, True, "ResourceMetrics")]),
    ("ResourceMetrics", [("scope_metrics", 2, _F.TYPE_MESSAGE, True, "ScopeMetrics")]),
    ("ScopeMetrics", [("metrics", 2, _F.TYPE_MESSAGE, True, "Metric")]),
    (
        "Metric",
        [
            ("gauge", 5, _F.TYPE_MESSAGE, False, "Points"),
            ("sum", 7, _F.TYPE_MESSAGE, False, "Points"),
            ("histogram", 9, _F.TYPE_MESSAGE, False, "Points"),
            ("exponential_histogram", 10, _F.TYPE_MESSAGE, False, "Points"),
            ("summary", 11, _F.TYPE_MESSAGE, False, "Points"),
        ],
    ),
    ("Points", [("data_points", 1, _F.TYPE_BYTES, True, "")]),
]


def _classes() -> dict[str, type[Message]]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="hutch/otlp_lite.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _SCHEMA:
        message = proto.message_type.add(name=name)
        if name == "Metric":  # its data kinds form a oneof, as in the real Metric
            message.oneof_decl.add(name="data")
        for field, number, kind, repeated, type_name in fields:
            spec = message.field.add(name=field, number=number, type=kind)
            spec.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name:
                spec.type_name = f".{_PACKAGE}.{type_name}"
            if name == "Metric":
                spec.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name, _ in _SCHEMA
    }


_LITE = _classes()
_TracesRequest = _LITE["TracesRequest"]
_Span = _LITE["Span"]
_LogsRequest = _LITE["LogsRequest"]
_MetricsRequest = _LITE["MetricsRequest"]

# trace_id (tag 0x0a, 16 bytes, not all zero) then span_id (tag 0x12, 8 bytes, not all zero).
_GOOD_SPAN = re.compile(rb"\n\x10(?!\x00{16}).{16}\x12\x08(?!\x00{8}).{8}", re.DOTALL).match


def check_protobuf(signal: Signal, body: bytes) -> Checked:
    """Count and check the items of a binary export request.

    Raises google.protobuf.message.DecodeError when the framing is broken (truncated or
    garbage bytes).
    """
    if signal == "traces":
        return _check_traces(body)
    if signal == "logs":
        return _check_logs(body)
    return _check_metrics(body)


def _check_traces(body: bytes) -> Checked:
    tally = Tally()
    for resource_spans in _TracesRequest.FromString(body).resource_spans:  # type: ignore[attr-defined]
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            tally.items += len(spans)
            if None not in map(_GOOD_SPAN, spans):
                continue
            for raw in spans:
                if _GOOD_SPAN(raw) is None:
                    span = _Span.FromString(raw)
                    problem = span_problem(span.trace_id, span.span_id)  # type: ignore[attr-defined]
                    if problem:
                        tally.reject(problem)
    return tally.result()


def _check_logs(body: bytes) -> Checked:
    tally = Tally()
    for resource_logs in _LogsRequest.FromString(body).resource_logs:  # type: ignore[attr-defined]
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            tally.items += len(records)
            for record in records:
                problem = log_problem(record.trace_id, record.span_id)
                if problem:
                    tally.reject(problem)
    return tally.result()


def _check_metrics(body: bytes) -> Checked:
    tally = Tally()
    request = _MetricsRequest.FromString(body)
    for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    tally.items += 1
                    tally.reject(NO_METRIC_DATA)
                    continue
                tally.items += len(getattr(metric, kind).data_points)
    return tally.result()
