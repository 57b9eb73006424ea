"""The one place errors become answers: Falcon's error handler for every app, mapping what a
resource lets out (a client error, a data definition's refusal, a storage error, Falcon's own
HTTP errors) to the one error shape; anything else is logged and answered as a 500 without a
stack trace."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import orjson

from base.client_errors import (
    RETRY_AFTER_S,
    BadRequest,
    ConflictError,
    Forbidden,
    HutchError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    from_storage,
)
from schemas.validation import Invalid
from storage.errors import Backpressure, BadQuery, Conflict, Unavailable

log = logging.getLogger(__name__)


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
