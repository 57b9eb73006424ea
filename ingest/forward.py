"""Forward reads to the process that owns the analytics store.

chDB lives in one process, so under `hutch serve` the ingest workers answer reads by passing
them, unchanged, to the query process over a Unix socket (or, in production, to
`HUTCH_QUERY_URL`). The client sees one service on one port.
"""

from __future__ import annotations

from collections.abc import Sequence

import falcon.asgi
import httpx

from ingest.errors import ServiceUnavailable

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
TIMEOUT_S = 30.0


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
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-forwarded-for"] = req.remote_addr or ""
        body = await req.stream.read() if req.method in ("POST", "PUT", "PATCH") else None
        try:
            answer = await self._client.request(
                req.method, req.relative_uri, headers=headers, content=body
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the query service is unavailable ({type(exc).__name__}); retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        resp.status = answer.status_code
        for name, value in answer.headers.items():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-encoding":
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
