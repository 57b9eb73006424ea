"""The one error shape every endpoint answers with, and the mapping from domain errors.

`{"error": {"code": "...", "message": "...", "field": "..."}}` with the fitting status.
Resources raise these; storage errors are mapped once here; anything else is logged and
answered as a 500 without a stack trace.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon
import orjson

from schemas.validation import Invalid
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
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


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


def error_response(resp: falcon.asgi.Response, error: HutchError) -> None:
    resp.status = error.status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(error.body())
    for name, value in error.headers.items():
        resp.set_header(name, value)


async def handle_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: Exception, params: Any
) -> None:
    """Falcon error handler for every exception a resource lets out."""
    if isinstance(exc, HutchError):
        error = exc
    elif isinstance(exc, Invalid):
        error = Unprocessable(exc.message, field=exc.field, code="invalid")
    elif isinstance(exc, Backpressure | Unavailable | Conflict | BadQuery):
        error = from_storage(exc)
    elif isinstance(exc, falcon.HTTPError):
        error = _from_falcon(exc)
    else:
        log.exception("unhandled error", extra={"path": req.path, "method": req.method})
        error = HutchError("internal error; it has been logged", code="internal")
        error.status = 500
    if error.status >= 500 or error.status == 429:
        error.headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    error_response(resp, error)
    req.context.error_code = error.code


def _from_falcon(exc: falcon.HTTPError) -> HutchError:
    status = int(str(exc.status).split()[0]) if exc.status else 500
    codes = {
        400: BadRequest,
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        405: MethodNotAllowed,
        409: ConflictError,
        413: PayloadTooLarge,
        415: UnsupportedMediaType,
        422: Unprocessable,
        429: TooManyRequests,
        503: ServiceUnavailable,
    }
    kind = codes.get(status)
    message = exc.description or exc.title or "request refused"
    if kind is None:
        error = HutchError(message, code="http_error")
        error.status = status
        return error
    if status == 404:
        message = exc.description or "no such resource"
    if status == 405:
        message = "method not allowed on this resource"
    headers = dict(exc.headers or {})
    return kind(message, headers=headers)
