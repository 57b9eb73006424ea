"""GET /api/telemetry: a developer's telemetry events, newest first, cursor-paginated."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from schemas.envelope import iso_micros
from schemas.events import TELEMETRY_KINDS
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_SELECT = """
SELECT toString(id), app, toString(kind), version, bits, toUnixTimestamp64Micro(received_at)
FROM telemetry_events
WHERE {where}
ORDER BY received_at DESC, id DESC
LIMIT {{limit:UInt32}}
"""


def build_query(
    apps: list[str],
    kinds: list[str],
    version: str | None,
    since: int | None,
    until: int | None,
    cursor: list[Any] | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """The SELECT for one page (limit + 1 rows, to know whether a next page exists)."""
    where = ["app IN {apps:Array(String)}"]
    bound: dict[str, Any] = {"apps": apps, "limit": limit + 1}
    if kinds:
        where.append("kind IN {kinds:Array(String)}")
        bound["kinds"] = kinds
    if version is not None:
        where.append("version = {version:String}")
        bound["version"] = version
    if since is not None:
        where.append("received_at >= fromUnixTimestamp64Micro({since:Int64})")
        bound["since"] = since
    if until is not None:
        where.append("received_at < fromUnixTimestamp64Micro({until:Int64})")
        bound["until"] = until
    if cursor is not None:
        where.append(
            "received_at <= fromUnixTimestamp64Micro({c_at:Int64}) AND "
            "(received_at, id) < (fromUnixTimestamp64Micro({c_at:Int64}), toUUID({c_id:String}))"
        )
        bound["c_at"], bound["c_id"] = cursor
    return _SELECT.format(where=" AND ".join(where)), bound


class TelemetryListing:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        app_name = req.get_param("appName")
        if app_name:
            apps = [(await self._auth.owned_app(developer.name, app_name)).name]
        else:
            apps = [a.name for a in await self._auth.apps_of(developer.name)]
        kinds = params.csv(req, "kind")
        for kind in kinds:
            if kind not in TELEMETRY_KINDS:
                raise BadRequest(
                    f"unknown kind {kind!r}; kinds are " + ",".join(TELEMETRY_KINDS),
                    field="kind",
                    code="bad_kind",
                )
        limit = params.limit(req, DEFAULT_LIMIT, MAX_LIMIT)
        since = params.time_micros(req, "since")
        until = params.time_micros(req, "until")
        cursor = params.decode_cursor(req, (int, str))
        if cursor is not None and not _UUID.match(cursor[1]):
            raise BadRequest("cursor is not valid", field="cursor", code="bad_cursor")
        version = req.get_param("version")
        if not apps:
            resp.data = orjson.dumps({"events": [], "next": None})
            return
        sql, bound = build_query(apps, kinds, version, since, until, cursor, limit)
        result = await asyncio.to_thread(
            self._analytics.query, sql, bound, settings={"read_in_order_use_virtual_row": 1}
        )
        rows = result.rows
        events = [
            {
                "id": r[0],
                "appName": r[1],
                "kind": r[2],
                "version": r[3],
                "bits": orjson.Fragment(r[4]),
                "receivedAt": iso_micros(int(r[5])),
            }
            for r in rows[:limit]
        ]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = params.encode_cursor([int(last[5]), last[0]])
        resp.data = orjson.dumps({"events": events, "next": next_cursor})
        resp.content_type = falcon.MEDIA_JSON
