"""How OTLP/HTTP routes refuse a request: a google.rpc.Status in the request's encoding.

OTLP clients parse a 4xx/5xx body as a Status (binary for protobuf requests, OTLP/JSON for
JSON requests), so these routes do not answer with Hutch's usual `{"error": {...}}`. The
same facts travel in the Status instead: the message, and one `google.rpc.ErrorInfo` detail
whose `reason` is Hutch's error code (`invalid_secret`, `payload_too_large`...), `domain`
is `hutch`, and `metadata.field` names the parameter at fault when there is one. A request
whose Content-Type is neither encoding (415) gets the Status as JSON.
"""

from __future__ import annotations

import dataclasses

from google.rpc import code_pb2, error_details_pb2, status_pb2

from base.client_errors import REFUSALS, RETRY_AFTER_S, HutchError
from ingest.otlp_http import serialize
from schemas.otlp.decoding import Encoding, OtlpError, content_type
from storage.errors import Backpressure, Unavailable

DOMAIN = "hutch"

_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}
_OTLP_REASONS = {400: "malformed_otlp", 413: "payload_too_large", 415: "unsupported_media_type"}


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """What to answer instead of an Export*ServiceResponse."""

    status: int
    reason: str
    message: str
    field: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def body(self, encoding: Encoding) -> bytes:
        status = status_pb2.Status(code=_RPC_CODES.get(self.status, code_pb2.UNKNOWN))
        status.message = self.message
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        if self.field is not None:
            info.metadata["field"] = self.field
        status.details.add().Pack(info)
        return serialize(status, encoding)

    def content_type(self, encoding: Encoding) -> str:
        return content_type(encoding)


def refusal(exc: Exception) -> Refusal | None:
    """The answer to an exception an OTLP route lets out, or None if it is not one of ours."""
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, OtlpError):
        return Refusal(exc.status, _OTLP_REASONS.get(exc.status, "bad_request"), str(exc))
    if isinstance(exc, HutchError):
        headers = dict(exc.headers)
        if exc.status in (429, 503):
            headers.setdefault("Retry-After", str(RETRY_AFTER_S))
        return Refusal(exc.status, exc.code, exc.message, exc.field, headers)
    if isinstance(exc, Backpressure | Unavailable):
        REFUSALS.note(exc)
    if isinstance(exc, Backpressure):
        # Too much is waiting for the log: the client should slow down (OTLP's throttling).
        return Refusal(
            429, "overloaded", "Hutch is taking in more than it can store; retry later", None, retry
        )
    if isinstance(exc, Unavailable):
        return Refusal(503, "unavailable", "the event log is unavailable; retry later", None, retry)
    return None
