"""The errors a client is answered with: `{"error": {"code", "message", "field"?}, "message"}`
with the fitting status. The top-level `message` repeats `error.message` for clients that read
it there (Builtiful's); one shape serves both. CommandContext and resources raise these;
`from_storage` says what a storage error means to the client; web/error_handler.py turns all
of them into answers."""

from __future__ import annotations

import logging
import time
from typing import Any

from schemas.error_body import error_body
from storage.errors import Backpressure, BadQuery, Conflict, Unavailable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1
REFUSAL_LOG_EVERY_S = 5.0


class _RefusalLog:
    """Why requests are refused with a 503, logged at most once per interval: the answer
    itself names no backend, and an outage would otherwise log every request."""

    def __init__(self) -> None:
        self._last = -REFUSAL_LOG_EVERY_S

    def note(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last >= REFUSAL_LOG_EVERY_S:
            self._last = now
            cause = f"{type(exc).__name__}: {exc}"
            log.warning("refusing requests with 503", extra={"error": cause})


REFUSALS = _RefusalLog()


class HutchError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field)


class BadRequest(HutchError):
    status, code = 400, "bad_request"


class Unauthorized(HutchError):
    status, code = 401, "unauthorized"


class Forbidden(HutchError):
    status, code = 403, "forbidden"


class NotFound(HutchError):
    status, code = 404, "not_found"


class MethodNotAllowed(HutchError):
    status, code = 405, "method_not_allowed"


class ConflictError(HutchError):
    status, code = 409, "conflict"


class PayloadTooLarge(HutchError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(HutchError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(HutchError):
    status, code = 422, "unprocessable"


class TooManyRequests(HutchError):
    status, code = 429, "too_many_requests"


class PreconditionFailed(HutchError):
    status, code = 412, "precondition_failed"


class PreconditionRequired(HutchError):
    status, code = 428, "precondition_required"


class BadGateway(HutchError):
    """A service Hutch relies on (GitHub) failed to answer meaningfully."""

    status, code = 502, "bad_gateway"


class ServiceUnavailable(HutchError):
    status, code = 503, "unavailable"


class InsufficientStorage(HutchError):
    status, code = 507, "insufficient_storage"


def from_storage(exc: Exception) -> HutchError:
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(exc, Backpressure | Unavailable):
        REFUSALS.note(exc)
    if isinstance(exc, Backpressure):
        return ServiceUnavailable(
            "Hutch is taking in more than it can store right now; retry shortly",
            code="overloaded",
            headers=retry,
        )
    if isinstance(exc, Unavailable):
        return ServiceUnavailable("a backing store is unavailable; retry shortly", headers=retry)
    if isinstance(exc, Conflict):
        return ConflictError(str(exc))
    if isinstance(exc, BadQuery):
        return BadRequest(str(exc), code="bad_query")
    raise exc
