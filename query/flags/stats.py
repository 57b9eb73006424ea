"""GET /api/flags/{name}/stats: exposures of one flag over time and per app version (bearer).

Query: `appName` (one of the developer's apps; default: all of them), `since` / `until` (ISO
8601; default: the last 24 hours), `bucket` (`30s`, `5m`, `1h`, `1d`, ...; default `1h`).
Buckets start at multiples of their width since the epoch (UTC) and only those with
exposures are listed. Each count is `{"exposures", "enabled", "disabled", "variants":
{name: n}}`; `versions` groups by the context's app version (`null`: reports without one).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from schemas.envelope import iso_micros, now_micros
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

BUCKET = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_BUCKET_S = 31 * 86_400
MAX_BUCKETS = 10_000
MAX_VERSIONS = 100
DEFAULT_SPAN = 86_400 * 1_000_000
MAX_NAME = 128

_WHERE = """
WHERE App IN {apps:Array(String)} AND FlagName = {flag:String}
  AND Timestamp >= fromUnixTimestamp64Micro({since:Int64})
  AND Timestamp < fromUnixTimestamp64Micro({until:Int64})
"""
BY_TIME = (
    "SELECT intDiv(toUnixTimestamp64Micro(Timestamp), {width:Int64}) * {width:Int64} AS start,"
    " Enabled, Variant, count() FROM flag_evaluations" + _WHERE + "GROUP BY start, Enabled,"
    " Variant ORDER BY start LIMIT 1000000"
)
BY_VERSION = (
    "SELECT AppVersion, Enabled, Variant, count() FROM flag_evaluations"
    + _WHERE
    + "GROUP BY AppVersion, Enabled, Variant LIMIT 100000"
)

Counts = dict[str, Any]


def bucket_micros(req: falcon.asgi.Request) -> tuple[str, int]:
    raw = req.get_param("bucket") or "1h"
    match = BUCKET.match(raw)
    seconds = int(match.group(1)) * UNIT_S[match.group(2)] if match else 0
    if not 1 <= seconds <= MAX_BUCKET_S:
        raise BadRequest(
            f"bucket must be a width such as 30s, 5m, 1h or 1d, at most 31d; got {raw!r}",
            field="bucket",
            code="bad_bucket",
        )
    return raw, seconds * 1_000_000


def counts() -> Counts:
    return {"exposures": 0, "enabled": 0, "disabled": 0, "variants": {}}


def add(target: Counts, enabled: bool, variant: str, n: int) -> None:
    target["exposures"] += n
    target["enabled" if enabled else "disabled"] += n
    if variant:
        target["variants"][variant] = target["variants"].get(variant, 0) + n


class FlagStats:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        developer = await self._auth.developer(req)
        if not 1 <= len(name) <= MAX_NAME:
            raise BadRequest(f"flag names are 1-{MAX_NAME} characters", field="name")
        app_name = req.get_param("appName")
        if app_name:
            apps = [(await self._auth.owned_app(developer.name, app_name)).name]
        else:
            apps = [a.name for a in await self._auth.apps_of(developer.name)]
        bucket, width = bucket_micros(req)
        until = params.time_micros(req, "until") or now_micros()
        since = params.time_micros(req, "since") or until - DEFAULT_SPAN
        if since >= until:
            raise BadRequest("since must be before until", field="since", code="bad_range")
        if (until - since) // width > MAX_BUCKETS:
            raise BadRequest(
                f"at most {MAX_BUCKETS} buckets: widen the bucket or narrow since/until",
                field="bucket",
                code="bad_bucket",
            )
        bound = {"apps": apps, "flag": name, "since": since, "until": until, "width": width}
        total = counts()
        buckets: dict[int, Counts] = {}
        versions: dict[str, Counts] = {}
        if apps:
            by_time = await asyncio.to_thread(self._analytics.query, BY_TIME, bound)
            by_version = await asyncio.to_thread(self._analytics.query, BY_VERSION, bound)
            for start, enabled, variant, n in by_time.rows:
                add(total, enabled, variant, int(n))
                add(buckets.setdefault(int(start), counts()), enabled, variant, int(n))
            for version, enabled, variant, n in by_version.rows:
                add(versions.setdefault(version, counts()), enabled, variant, int(n))
        top = sorted(versions.items(), key=lambda kv: (-kv[1]["exposures"], kv[0]))
        resp.data = orjson.dumps(
            {
                "flag": name,
                "apps": apps,
                "since": iso_micros(since),
                "until": iso_micros(until),
                "bucket": bucket,
                "total": total,
                "buckets": [
                    {"start": iso_micros(start), **c} for start, c in sorted(buckets.items())
                ],
                "versions": [{"version": v or None, **c} for v, c in top[:MAX_VERSIONS]],
            }
        )
