"""Forward reads to the process that owns the analytics store.

chDB lives in one process, so under `hutch serve` the ingest workers answer reads by passing
them to the query process over a Unix socket (or, in production, to `HUTCH_QUERY_URL`). The
client sees one service on one port.

The request is forwarded as it arrived: the raw path and query (not Falcon's decoded ones,
which may hold control characters no HTTP client will send) and the raw header bytes (which
may be latin-1 or UTF-8, not only ASCII). What cannot be written on the wire again is refused
with a 400, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import falcon.asgi
import httpx

from base.client_errors import BadRequest, ServiceUnavailable

_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"host",
    b"content-length",
    b"x-forwarded-for",
}
_NOT_RETURNED = {name.decode() for name in _HOP_BY_HOP} | {"content-encoding", "date", "server"}
"""Answer headers not passed back: httpx has already decoded the body, and this server sends
its own Date and Server (two of each would be a malformed answer)."""
TIMEOUT_S = 30.0

# RFC 9110 field-value: visible ASCII and obs-text, with single spaces or tabs inside.
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
# Bytes a request-target may carry as they are; '?' and '#' delimit, so they are escaped too.
_TARGET_BYTE = re.compile(rb"[^\x21-\x22\x24-\x3e\x40-\x7e]")
_DOT_SEGMENT = re.compile(rb"(?<=/)\.\.?(?=/|$)")


def _escape(raw: bytes) -> str:
    """Percent-encode what a request-target cannot hold; decoding gives back `raw`."""
    return _TARGET_BYTE.sub(lambda m: b"%%%02X" % m.group()[0], raw).decode("ascii")


def target(raw_path: bytes, query: bytes) -> str:
    """The request-target to forward: the same path and query once percent-decoded. Dot
    segments, and a second slash at the start (which would read as a host), are escaped so
    the client library takes the path as it is: the query service must route the path this
    process routed."""
    path = _DOT_SEGMENT.sub(lambda m: m.group().replace(b".", b"%2E"), raw_path)
    if path.startswith(b"//"):
        path = b"/%2F" + path[2:]
    escaped = _escape(path) or "/"
    return f"{escaped}?{_escape(query)}" if query else escaped


def forwarded_headers(raw: Sequence[tuple[bytes, bytes]], client: str) -> list[tuple[bytes, bytes]]:
    headers = [(name, value) for name, value in raw if name.lower() not in _HOP_BY_HOP]
    for name, value in headers:
        if not _FIELD_VALUE.fullmatch(value):
            raise BadRequest(
                "a header value holds control characters",
                code="invalid_header",
                field=name.decode("latin-1"),
            )
    headers.append((b"x-forwarded-for", client.encode("latin-1", "replace")))
    return headers


class Forwarder:
    def __init__(self, url: str) -> None:
        if url.startswith("unix://"):
            transport = httpx.AsyncHTTPTransport(uds=url.removeprefix("unix://"))
            self._client = httpx.AsyncClient(
                transport=transport, base_url="http://hutch-query", timeout=TIMEOUT_S
            )
        else:
            self._client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=TIMEOUT_S)

    async def forward(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.forwarded = True
        scope = req.scope
        raw_path = scope.get("raw_path") or req.path.encode("utf-8", "surrogateescape")
        headers = forwarded_headers(scope["headers"], req.remote_addr or "")
        body = await req.stream.read() if req.method in ("POST", "PUT", "PATCH") else None
        try:
            answer = await self._client.request(
                req.method,
                target(raw_path, scope.get("query_string", b"")),
                headers=headers,
                content=body,
            )
        except (httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            # A request this process took in but cannot write again: the client's doing.
            raise BadRequest(f"the request cannot be forwarded: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the query service is unavailable ({type(exc).__name__}); retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        resp.status = answer.status_code
        for name, value in answer.headers.items():
            if name.lower() not in _NOT_RETURNED:
                resp.append_header(name, value)
        resp.data = answer.content

    async def close(self) -> None:
        await self._client.aclose()


class Forwarded:
    """A resource answering the given methods by forwarding them."""

    def __init__(self, forwarder: Forwarder, methods: Sequence[str]) -> None:
        for method in methods:
            setattr(self, f"on_{method}", self._forward)
        self._forwarder = forwarder

    async def _forward(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: object
    ) -> None:
        await self._forwarder.forward(req, resp)
