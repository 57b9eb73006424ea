"""Attributes read from their encoded bytes (projections/otel_raw.py) come out exactly as
the message-based reading (otel_common.attributes) gives them."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from projections import otel_raw
from projections.otel_common import attributes
from projections.otel_raw import decode_raw, raw_attributes
from schemas.otlp.decoding import Undecodable
from tests.support.otlp_builders import kv, span, traces

VARIETY = [
    kv("z.last", "z"),
    kv("http.status_code", 503),
    kv("ok", False),
    kv("ratio", 1 / 3),
    kv("huge", 1e22),
    kv("raw", b"\x00\xff"),
    kv("list", AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="<&>")]))),
    kv("map", AnyValue(kvlist_value=KeyValueList(values=[kv("b", 1), kv("a", 2)]))),
    kv("unset", AnyValue()),
    kv("dup", "first"),
    kv("a.first", "a"),
    kv("dup", "second"),
    kv("é", "ünïcode"),
]


def encoded(values: list[KeyValue]) -> list[bytes]:
    return [value.SerializeToString() for value in values]


@pytest.mark.parametrize("values", [[], VARIETY[:1], VARIETY, list(reversed(VARIETY))])
def test_encoded_attributes_read_as_the_messages_do(values: list[KeyValue]) -> None:
    expected = attributes(values)
    assert raw_attributes(encoded(values)) == expected
    assert list(raw_attributes(encoded(values))) == list(expected)  # same key order
    assert raw_attributes(encoded(values)) == expected  # again, from the memory


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otel_raw, "CACHE_LIMIT", 5)
    for n in range(20):
        assert raw_attributes(encoded([kv("n", n)])) == {"n": str(n)}
    assert len(otel_raw._cache) <= 5


def test_requests_decode_with_raw_item_attributes_and_message_resources() -> None:
    request = traces(span(1, attributes=VARIETY[:3]))
    decoded = decode_raw("traces", request.SerializeToString(), "application/x-protobuf")
    resource_spans = decoded.resource_spans[0]  # type: ignore[attr-defined]
    assert attributes(resource_spans.resource.attributes) == {"service.name": "checkout"}
    (raw,) = resource_spans.scope_spans[0].spans
    assert raw_attributes(list(raw.attributes)) == attributes(VARIETY[:3])
    assert isinstance(Span.FromString(raw.SerializeToString()), Span)


def test_undecodable_payloads_are_bad_requests() -> None:
    with pytest.raises(Undecodable):
        decode_raw("traces", b"\x0a\xff", "application/x-protobuf")
    with pytest.raises(Undecodable):
        decode_raw("logs", b"{not json", "application/json")
