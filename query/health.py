"""GET /api/health as Builtiful documents it: a fresh UUIDv7 and the database's time,
after checking that every store this process uses answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import falcon
import falcon.asgi
import orjson

from schemas.envelope import uuid7
from storage.analytics import Analytics
from storage.log import EventLog
from storage.relational import Relational

Check = Callable[[], Awaitable[str]]
TIMEOUT_S = 2.0


class Health:
    def __init__(self, checks: Mapping[str, Check], clock_store: str = "relational") -> None:
        self._checks = checks
        self._clock_store = clock_store

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        stores: dict[str, str] = {}
        times: dict[str, str] = {}
        for name, check in self._checks.items():
            try:
                times[name] = await asyncio.wait_for(check(), TIMEOUT_S)
                stores[name] = "ok"
            except Exception as exc:  # any failure means unhealthy; say which store and why
                stores[name] = f"unavailable: {str(exc)[:200] or type(exc).__name__}"
        healthy = all(v == "ok" for v in stores.values())
        db_time = times.get(self._clock_store)
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        if not healthy:
            resp.set_header("Retry-After", "5")
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(
            {
                "message": "it works!" if healthy else "degraded",
                "id": uuid7(),
                "db_time": {"Time": db_time, "Valid": db_time is not None},
                "stores": stores,
            }
        )


def store_checks(log: EventLog, db: Relational, analytics: Analytics | None) -> Health:
    """Health over the stores a process holds: the log, the relational store and, where the
    process has it, the analytics store."""

    async def log_check() -> str:
        await log.end_offset("apps", 0)
        return "ok"

    async def relational() -> str:
        return await asyncio.to_thread(db.ping)

    checks: dict[str, Check] = {"log": log_check, "relational": relational}
    if analytics is not None:
        store = analytics

        async def analytics_check() -> str:
            return await asyncio.to_thread(store.ping)

        checks["analytics"] = analytics_check
    return Health(checks)
