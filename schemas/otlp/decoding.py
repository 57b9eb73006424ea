"""OTLP export requests as upb reads them: the one decoder for ingest and the projectors.

Pure functions, no I/O. An OTLP resource (ingest/otlp.py) does, in order:

    encoding = encoding_of(req.content_type)                  # 415
    body = Inflater(content_encoding, limit) fed the body     # 413, 415, 400 (ingest/otlp_http.py)
    checked = check(signal, body, encoding)                   # 400
    if checked.accepted:  # an empty or wholly rejected request has nothing to keep
        ... append one record: payload=body, content_type=content_type(encoding) ...
    answer 200, content_type(encoding), encode_response(signal, checked, encoding)

and answers an OtlpError with a google.rpc.Status (ingest/otlp_status.py).

What is acknowledged is what can be stored: check() accepts only a request that
decode_request() reads, the one decoder the projectors read the stored payload with too, and
they drop only the items the rules in schemas.otlp.rules reject, the ones check() counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import orjson
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from schemas.envelope import JSON, PROTOBUF
from schemas.otlp import json_mapping as otlp_json
from schemas.otlp.rules import (
    NO_METRIC_DATA,
    Tally,
    log_problem,
    span_problem,
)
from schemas.otlp.rules import Checked as Checked  # re-exported: part of this API
from schemas.otlp.rules import Signal as Signal
from schemas.otlp.skeleton import check_protobuf

_traces_readable: Callable[[bytes], bool] | None
try:
    from schemas.otlp.trace_check import readable as _traces_readable
except ImportError:  # built without a C compiler: upb reads every request
    _traces_readable = None

Encoding = Literal["protobuf", "json"]


class OtlpError(Exception):
    """A request OTLP/HTTP refuses; `status` is the HTTP status to answer with."""

    status = 400


class Undecodable(OtlpError):
    """The body cannot be decoded (truncated or garbage protobuf, malformed JSON or gzip)."""


class BodyTooLarge(OtlpError):
    status = 413


class UnsupportedBody(OtlpError):
    """A Content-Type other than protobuf or JSON, or a Content-Encoding we do not decode."""

    status = 415


REQUESTS: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}


def encoding_of(content_type: str | None) -> Encoding:
    """The payload encoding a Content-Type names; parameters such as charset are ignored."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    raise UnsupportedBody(f"Content-Type must be {PROTOBUF} or {JSON}, not {media or 'missing'!r}")


def content_type(encoding: Encoding) -> str:
    return PROTOBUF if encoding == "protobuf" else JSON


def decode_request(
    signal: Signal, payload: bytes, content_type: str, request_type: type[Message] | None = None
) -> Message:
    """The Export<Signal>ServiceRequest in `payload`, binary or OTLP/JSON, as upb reads it.

    The one test of what Hutch can store: ingest acknowledges only a request this reads
    with the opentelemetry-proto classes (the default `request_type`), and the projectors
    decode the stored payload here too, with classes that read item attributes as raw bytes
    (projections/otel_raw.py): those refuse nothing the default ones accept, and each raw
    attribute, read alone, nests less deep than it did in the request. upb refuses invalid
    UTF-8 in any string field and messages nested more than otlp_json.MAX_DEPTH deep; an
    OTLP/JSON body is converted to protobuf and read back by upb, so the same rules hold.

    Raises Undecodable when it cannot be decoded, UnsupportedBody for another type.
    """
    if encoding_of(content_type) == "protobuf":
        return read(signal, payload, request_type)
    return read(signal, json_to_protobuf(signal, _json(payload)), request_type)


def read(signal: Signal, data: bytes, request_type: type[Message] | None = None) -> Message:
    """A binary request, read by upb. Raises Undecodable."""
    try:
        return (request_type or REQUESTS[signal]).FromString(data)
    except DecodeError as exc:
        raise Undecodable(f"the body is not a valid {_name(signal)}: {_reason(exc)}") from None


def json_to_protobuf(signal: Signal, document: object) -> bytes:
    """An OTLP/JSON request (parsed) in the binary encoding. Raises Undecodable."""
    try:
        return otlp_json.parse(document, REQUESTS[signal]).SerializeToString()
    except (TypeError, ValueError) as exc:
        raise Undecodable(f"the body is not a valid {_name(signal)}: {exc}") from None


def check(signal: Signal, body: bytes, encoding: Encoding) -> Checked:
    """Count the request's items and those the rules reject. Raises Undecodable when
    decode_request() cannot read the body. A binary request is then counted on its skeleton
    (schemas.otlp.skeleton), faster than walking the decoded request.

    Spans are the bulk of OTLP traffic: the compiled check of the otel_traces transform, which
    says yes only to what upb surely reads, spares most trace requests upb's full read (about
    0.8 of ingest's CPU per 100-span request otherwise)."""
    if encoding == "json":
        return check_document(signal, _json(body))
    if not (signal == "traces" and _traces_readable is not None and _traces_readable(body)):
        read(signal, body)
    try:
        return check_protobuf(signal, body)
    except DecodeError as exc:  # not expected: the skeleton is a part of what upb read
        raise Undecodable(f"the body is not a valid {_name(signal)}: {exc}") from None


def check_document(signal: Signal, document: object) -> Checked:
    """check() on an OTLP/JSON body already parsed: the request is read back by upb from
    its binary encoding, as decode_request() reads it."""
    return validate(signal, read(signal, json_to_protobuf(signal, document)))


def _json(payload: bytes) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Undecodable(f"the body is not valid JSON: {exc}") from None


def validate(signal: Signal, request: Message) -> Checked:
    """check() on a decoded request."""
    tally = Tally()
    if signal == "traces":
        for resource_spans in request.resource_spans:  # type: ignore[attr-defined]
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    tally.items += 1
                    problem = span_problem(span.trace_id, span.span_id)
                    if problem:
                        tally.reject(problem)
    elif signal == "logs":
        for resource_logs in request.resource_logs:  # type: ignore[attr-defined]
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    tally.items += 1
                    problem = log_problem(record.trace_id, record.span_id)
                    if problem:
                        tally.reject(problem)
    else:
        for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    _validate_metric(metric, tally)
    return tally.result()


def _validate_metric(metric: Message, tally: Tally) -> None:
    kind = metric.WhichOneof("data")
    if kind is None:
        tally.items += 1
        tally.reject(NO_METRIC_DATA)
        return
    tally.items += len(getattr(metric, kind).data_points)


def _name(signal: Signal) -> str:
    return REQUESTS[signal].DESCRIPTOR.name


_UPB_REASONS = {
    "String field had bad UTF-8": "a string field is not valid UTF-8",
    "Exceeded upb_DecodeOptions_MaxDepth": f"messages nest more than {otlp_json.MAX_DEPTH} deep",
}


def _reason(exc: DecodeError) -> str:
    """upb's reason, in words a client can act on."""
    reason = str(exc).rpartition("': ")[2]
    return _UPB_REASONS.get(reason, reason or str(exc))
