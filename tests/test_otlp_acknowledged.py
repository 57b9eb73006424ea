"""What OTLP ingest acknowledges is what the projectors store, for every signal.

Ingest checks an export request (schemas.otlp.decoding.check) before it answers 200; the
projectors decode the stored payload (schemas.otlp.decoding.decode_request, through
projections/otel_raw.py) and flatten it. A request the check accepts must come out of its
projection as exactly the items the check counted as accepted, never be skipped as
undecodable; what upb cannot read (invalid UTF-8 in a string field, values nested too deep)
is refused at ingest with a 400. The requests reach every string field and every value
position of each signal (tests/support/otlp_builders.Filled), then are mutated at random.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from projections.otel_logs import OtelLogsProjection
from projections.otel_metrics import OtelMetricsProjection
from projections.otel_traces import COMPILED, TRACE_ID_TS, OtelTracesProjection
from schemas.envelope import JSON, PROTOBUF
from schemas.events import EventType
from schemas.otlp.decoding import Checked, Undecodable, check
from storage.analytics.protocol import RowBinary
from tests.support.otlp_builders import (
    T0,
    Filled,
    kv,
    logs,
    marker,
    mutations,
    otlp_json,
    record,
    span,
    traces,
    with_deep_value,
)
from tests.support.otlp_builders import metrics as metrics_request

Signal = Any  # "traces" | "metrics" | "logs"
SIGNALS = ["traces", "metrics", "logs"]
REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
EVENTS: dict[str, EventType] = {
    "traces": "otlp.traces.v1",
    "metrics": "otlp.metrics.v1",
    "logs": "otlp.logs.v1",
}
TOO_DEEP = 51
"""Arrays in arrays: 102 messages below the value, past upb's 100 wherever the value is."""


def projections(signal: str) -> list[Any]:
    if signal == "traces":
        both = [OtelTracesProjection(30, compiled=False)]
        return both + ([OtelTracesProjection(30, compiled=True)] if COMPILED else [])
    if signal == "metrics":
        return [OtelMetricsProjection(30)]
    return [OtelLogsProjection(30)]


def stored(signal: str, body: bytes, encoding: Any) -> list[int]:
    """The rows each projection of `signal` writes for the stored request (its item tables;
    the trace-id lookup table aside)."""
    content_type = PROTOBUF if encoding == "protobuf" else JSON
    counts = []
    for projection in projections(signal):
        tables = projection.transform([record(EVENTS[signal], body, content_type=content_type)])
        rows = 0
        for table, block in tables.items():
            if table != TRACE_ID_TS:
                rows += (
                    block.rows if isinstance(block, RowBinary) else len(next(iter(block.values())))
                )
        counts.append(rows)
    return counts


def verdict(signal: str, body: bytes, encoding: Any) -> Checked | None:
    """What ingest answers: the check's counts (200), or None for a 400."""
    try:
        return check(signal, body, encoding)
    except Undecodable as refused:
        status = refused.status
    assert status == 400
    return None


def assert_stored_if_accepted(
    signal: str, body: bytes, encoding: Any, caplog: pytest.LogCaptureFixture
) -> Checked | None:
    checked = verdict(signal, body, encoding)
    if checked is not None and checked.accepted:
        caplog.clear()
        assert stored(signal, body, encoding) == [checked.accepted] * len(projections(signal))
        skipped = [r for r in caplog.records if "skipping" in r.getMessage()]
        assert not skipped, skipped[0].__dict__
    return checked


def filled(signal: str, **texts: Any) -> Filled:
    return Filled(REQUESTS[signal], T0, **texts)


@pytest.mark.parametrize("signal", SIGNALS)
def test_a_filled_request_is_stored_whole(signal: str, caplog: pytest.LogCaptureFixture) -> None:
    request = filled(signal)
    assert len(set(request.fields)) > 10  # it reaches the schema's string fields
    for encoding, body in (
        ("protobuf", request.request.SerializeToString()),
        ("json", orjson.dumps(otlp_json(request.request))),
    ):
        checked = assert_stored_if_accepted(signal, body, encoding, caplog)
        assert checked is not None
        assert checked.rejected == 0


@pytest.mark.parametrize("signal", SIGNALS)
def test_invalid_utf8_in_any_string_field_is_refused(signal: str) -> None:
    request = filled(signal)
    body = request.request.SerializeToString()
    for n, field in enumerate(request.fields):
        text = marker(n).encode()
        for bad in (b"\xff", b"\xc3", b"\xed\xa0"):  # not UTF-8; a lead byte cut; a surrogate
            broken = body.replace(text, bad + text[len(bad) :])
            assert broken != body
            with pytest.raises(Undecodable) as refused:
                check(signal, broken, "protobuf")
            assert "not valid UTF-8" in str(refused.value), field


@pytest.mark.parametrize("signal", SIGNALS)
def test_json_strings_that_are_not_unicode_are_refused(signal: str) -> None:
    request = filled(signal)
    text = orjson.dumps(otlp_json(request.request))
    for n in range(0, len(request.fields), 7):
        for bad in (b"\\ud800", b"\xff"):  # a lone surrogate escape; a byte that is not UTF-8
            broken = text.replace(marker(n).encode(), bad)
            with pytest.raises(Undecodable):
                check(signal, broken, "json")


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_values_nested_too_deep_are_refused_wherever_they_are(signal: str, encoding: str) -> None:
    request = filled(signal)
    assert request.any_values
    for place in request.any_values:
        body = too_deep(signal, encoding, place, TOO_DEEP)
        with pytest.raises(Undecodable) as refused:
            check(signal, body, encoding)
        assert "nest more than 100 deep" in str(refused.value), request.fields[place]


def too_deep(signal: str, encoding: str, place: int, levels: int) -> bytes:
    return with_deep_value(REQUESTS[signal], T0, place, levels, encoding)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_around_the_depth_limit_accepted_means_stored(
    signal: str, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each value place, nested from well within the limit to past it: accepted up to a
    depth, refused beyond it, and every accepted request stored whole."""
    request = filled(signal)
    places = request.any_values
    for place in places[:: max(1, len(places) // 16)] + places[-1:]:  # metrics repeat theirs
        verdicts = []
        for levels in range(44, TOO_DEEP + 1):
            body = too_deep(signal, encoding, place, levels)
            accepted = assert_stored_if_accepted(signal, body, encoding, caplog)
            verdicts.append(accepted is not None)
        assert verdicts[0], request.fields[place]
        assert not verdicts[-1], request.fields[place]
        assert verdicts == sorted(verdicts, reverse=True), verdicts  # accepted, then refused


def small(signal: str) -> bytes:
    """A plain request of a few items."""
    if signal == "traces":
        return traces(span(1), span(2)).SerializeToString()
    if signal == "logs":
        records = [LogRecord(time_unix_nano=T0, body=kv("", f"line {n}").value) for n in (1, 2)]
        return logs(*records).SerializeToString()
    point = NumberDataPoint(time_unix_nano=T0, as_int=1)
    gauge = Metric(name="m", gauge=Gauge(data_points=[point, point]))
    return metrics_request(gauge).SerializeToString()


@pytest.mark.parametrize("signal", SIGNALS)
def test_mutated_requests_accepted_means_stored(
    signal: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests one random edit away from valid ones (a flipped bit, a changed byte, a cut,
    a slice doubled or dropped): whatever ingest accepts, its projection stores whole."""
    valid = [filled(signal).request.SerializeToString(), small(signal)]
    outcomes: Counter[str] = Counter()
    for body in mutations(seed=13, count=1500, valid=valid):
        checked = assert_stored_if_accepted(signal, body, "protobuf", caplog)
        outcomes["refused" if checked is None else "accepted"] += 1
    # Both outcomes are common, so neither side of the property is tested vacuously.
    assert outcomes["accepted"] > 150, outcomes
    assert outcomes["refused"] > 150, outcomes
