"""Reading request bodies: content type, size limit, time limit, JSON decoding, with the
right errors."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from base.client_errors import BadRequest, HutchError, PayloadTooLarge, UnsupportedMediaType


def media_type(req: falcon.asgi.Request) -> str:
    return (req.content_type or "").split(";", 1)[0].strip().lower()


async def read_body(req: falcon.asgi.Request, max_bytes: int) -> bytes:
    """The whole body, refusing (413) past `max_bytes` without reading further."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"body of {length} bytes is over the {max_bytes}-byte limit")
    if length is not None:
        data: bytes = await req.stream.read(length)
        return data
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(req: falcon.asgi.Request, max_bytes: int) -> Any:
    """The body as JSON. A request without Content-Type is read as JSON; any other type than
    application/json (or +json) is refused with 415."""
    kind = media_type(req)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType(
            f"expected Content-Type: application/json, got {kind!r}", field="Content-Type"
        )
    data = await read_body(req, max_bytes)
    if not data:
        raise BadRequest("the request body is empty; expected JSON", code="empty_body")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None


COMMAND_BODY_BYTES = 16 * 1024
"""The most a command's JSON body (create an app, a token, a build...) may weigh."""


async def read_json_object(
    req: falcon.asgi.Request, max_bytes: int = COMMAND_BODY_BYTES
) -> dict[str, Any]:
    """The body as a JSON object; 400 if it is JSON of another shape."""
    body = await read_json(req, max_bytes)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="bad_body")
    return body


def send_json(resp: falcon.asgi.Response, status: int, body: Any) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)


class RequestTimeout(HutchError):
    """The client did not send its request in time (web/client_timeouts.py raises it from
    the application's own read of the body)."""

    status, code = 408, "request_timeout"
