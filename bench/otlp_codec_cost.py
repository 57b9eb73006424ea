"""CPU cost of Hutch's OTLP steps for one 100-span export request, measured with timeit.

    .venv/bin/python bench/otlp_codec_cost.py [--spans 100] [--attributes 10]

Prints microseconds per request (best of 5) for: the ingest check on a protobuf body, gzip
inflation, the ingest check on an OTLP/JSON body, and the otel_traces projection's
transform of the stored record. A single process, a few seconds; not a load test.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import os
import timeit
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest.otlp_http import inflate
from projections.otel_traces import transform
from schemas.envelope import JSON, PROTOBUF, new_envelope
from schemas.otlp.decoding import check
from storage.log import Record


def request(spans: int, attributes: int) -> ExportTraceServiceRequest:
    export = ExportTraceServiceRequest()
    resource_spans = export.resource_spans.add()
    for key, value in (("service.name", "bench"), ("host.name", "bench-1")):
        resource_spans.resource.attributes.append(
            KeyValue(key=key, value=AnyValue(string_value=value))
        )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "bench"
    trace_id = os.urandom(16)
    for n in range(spans):
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=os.urandom(8),
            name=f"GET /items/{n % 10}",
            kind=2,
            start_time_unix_nano=1_700_000_000_000_000_000 + n * 1000,
            end_time_unix_nano=1_700_000_000_000_100_000 + n * 1000,
        )
        for a in range(attributes - 1):
            span.attributes.add(key=f"attr.{a}", value=AnyValue(string_value=f"value-{a}"))
        span.attributes.add(key="http.status_code", value=AnyValue(int_value=200))
    return export


def otlp_json(export: ExportTraceServiceRequest) -> bytes:
    document: Any = json_format.MessageToDict(export, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(document)


def best_us(action: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(action, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--attributes", type=int, default=10)
    args = parser.parse_args()

    export = request(args.spans, args.attributes)
    body = export.SerializeToString()
    zipped = gzip.compress(body)
    text = otlp_json(export)
    record = Record(
        "otlp.traces",
        0,
        0,
        new_envelope("otlp.traces.v1", body, key="a", app="a", content_type=PROTOBUF),
    )
    json_record = Record(
        "otlp.traces",
        0,
        0,
        new_envelope("otlp.traces.v1", text, key="a", app="a", content_type=JSON),
    )
    print(
        f"{args.spans} spans, {args.attributes} attributes each: protobuf {len(body)} B, "
        f"gzip {len(zipped)} B, JSON {len(text)} B"
    )
    rows = [
        ("check, protobuf", lambda: check("traces", body, "protobuf"), 2000),
        ("inflate gzip", lambda: inflate(zipped, "gzip", 20 << 20), 2000),
        ("check, JSON", lambda: check("traces", text, "json"), 50),
        ("transform, protobuf record", lambda: transform([record]), 50),
        ("transform, JSON record", lambda: transform([json_record]), 20),
    ]
    for name, action, number in rows:
        print(f"{name:28s} {best_us(action, number):9.1f} µs per request")


if __name__ == "__main__":
    main()
