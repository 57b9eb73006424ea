"""The Falcon apps of Hutch's services, made from the one route table (hutch/routes.py).

- `ingest_app`: the ingest service. With `forward_to` (under `hutch serve`, the process
  owning chDB), it forwards the query service's routes there, each with the methods its
  resources answer; without, it answers the query routes that need no analytics itself.
- `query_app`: the query service.
- `combined_app`: every route in one app, for a process that holds every store itself
  (tests, and deployments whose analytics store is a ClickHouse server).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import falcon.asgi

from hutch.routes import ROUTES, Route, Service
from hutch.runtime import Runtime
from ingest.forward import Forwarded, Forwarder
from web.factory import METHODS, new_app

App = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


def methods(resource: type) -> tuple[str, ...]:
    return tuple(m for m in METHODS if hasattr(resource, f"on_{m}"))


def served(runtime: Runtime, *services: Service) -> list[Route]:
    return [r for r in ROUTES if r.service in services and r.when(runtime)]


def forwarded_methods() -> dict[str, tuple[str, ...]]:
    """uri -> the methods the ingest service forwards to the query service: those of the
    query routes that no ingest route of that uri answers itself."""
    local = {(r.uri, m) for r in ROUTES if r.service != "query" for m in methods(r.resource)}
    found: dict[str, tuple[str, ...]] = {}
    for route in ROUTES:
        if route.service == "query":
            extra = [m for m in methods(route.resource) if (route.uri, m) not in local]
            if extra:
                found[route.uri] = (*found.get(route.uri, ()), *extra)
    return found


def _app(
    runtime: Runtime, pairs: Iterable[tuple[str, object]], stop: Callable[[], Awaitable[None]]
) -> App:
    return new_app(list(pairs), start=runtime.start, stop=stop)


def ingest_app(runtime: Runtime, forward_to: str | None = None) -> App:
    own = served(runtime, "ingest", "both")
    pairs: list[tuple[str, object]] = [(r.uri, r.make(runtime)) for r in own]
    forwarder = Forwarder(forward_to) if forward_to else None
    if forwarder is None:
        alone = [r for r in served(runtime, "query") if r.alone]
        pairs += [(r.uri, r.make(runtime)) for r in alone]
    else:
        pairs += [(uri, Forwarded(forwarder, m)) for uri, m in forwarded_methods().items()]

    async def stop() -> None:
        if forwarder is not None:
            await forwarder.close()
        await runtime.close()

    return _app(runtime, pairs, stop)


def query_app(runtime: Runtime) -> App:
    routes = served(runtime, "query", "both")
    return _app(runtime, ((r.uri, r.make(runtime)) for r in routes), runtime.close)


def combined_app(runtime: Runtime) -> App:
    routes = served(runtime, "ingest", "query", "both")
    return _app(runtime, ((r.uri, r.make(runtime)) for r in routes), runtime.close)
