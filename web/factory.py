"""What every Hutch Falcon app shares: orjson media, the one error shape, request metrics,
lifespan wiring, and routes that several resources serve together (by HTTP method)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import falcon
import falcon.asgi
import falcon.media
import orjson

from base.client_errors import BadRequest
from web.error_handler import handle_error
from web.request_metrics import RequestMetrics

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

Route = tuple[str, object]


class Lifespan:
    def __init__(self, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]):
        self._start = start
        self._stop = stop

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        await self._start()

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        await self._stop()


class RefuseNul:
    """A NUL in the path or a query parameter is refused with a 400 on every route.

    No name or value Hutch looks up or stores can hold one (PostgreSQL text cannot, and a
    lookup with one fails there instead of finding nothing), so every backend answers the
    same, before any lookup. Other characters are left to the routes."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if "\x00" in req.path:
            raise BadRequest("the path holds a NUL character", field="path")
        for name, value in req.params.items():
            values = value if isinstance(value, list) else [value]
            if "\x00" in name or any("\x00" in item for item in values):
                raise BadRequest("a query parameter holds a NUL character", field=name)


class Combined:
    """One resource made of several: each HTTP method goes to the first that has it."""

    def __init__(self, resources: Sequence[object]) -> None:
        for method in METHODS:
            for resource in resources:
                responder = getattr(resource, f"on_{method}", None)
                if responder is not None:
                    setattr(self, f"on_{method}", responder)
                    break


def new_app(
    routes: Sequence[Route],
    *,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    middleware: list[Any] = [Lifespan(start, stop), RequestMetrics(), RefuseNul()]
    app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response] = falcon.asgi.App(
        middleware=middleware
    )
    json = falcon.media.JSONHandler(dumps=orjson.dumps, loads=orjson.loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json
    app.resp_options.default_media_type = falcon.MEDIA_JSON
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, handle_error)
    app.add_error_handler(falcon.HTTPError, handle_error)
    by_uri: dict[str, list[object]] = {}
    for uri, resource in routes:
        by_uri.setdefault(uri, []).append(resource)
    for uri, resources in by_uri.items():
        app.add_route(uri, resources[0] if len(resources) == 1 else Combined(resources))
    return app
