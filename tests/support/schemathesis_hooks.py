"""schemathesis hooks for tests/test_schemathesis.py's run (loaded by `st` itself).

OTLP routes answer binary protobuf to protobuf requests; the document describes those
messages by the schemas of their JSON mapping. Decoding them here (a google.rpc.Status for a
refusal, the route's Export*ServiceResponse otherwise) lets schemathesis check those bodies
as it checks the JSON ones; a body that does not decode fails the run.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ANSWERS: dict[str, type[Message]] = {
    "/v1/traces": trace_service_pb2.ExportTraceServiceResponse,
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "/v1/logs": logs_service_pb2.ExportLogsServiceResponse,
}


@schemathesis.deserializer("application/x-protobuf")
def protobuf(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    kind = status_pb2.Status if response.status_code >= 400 else ANSWERS[ctx.operation.path]
    message = kind()
    message.ParseFromString(response.content)
    return json_format.MessageToDict(message)
