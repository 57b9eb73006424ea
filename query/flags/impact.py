"""GET /api/flags/{name}/impact: per variant of one flag, its exposures and the error rate
of the telemetry its users sent after their first exposure to it, against users not exposed.

Query: `appName` (one of the developer's apps; default: all of them), `since` / `until` (ISO
8601; default: the last 7 days, at most 90).

- Variant: the report's variant, else `enabled` / `disabled` (a flag without variants).
- User: in an evaluation, the context's `userId`, else its `targetingKey` (the keys flags
  bucket on, query/flags/resolution.py); in telemetry, `bits.userId` (telemetry has no user
  column: an SDK that wants flag impact sends the same id there). Users are told apart per
  app: the same id in two apps is two users.
- After exposure: a user's events (any kind) from their first exposure to that variant in
  the range until `until`; a user exposed to two variants counts in both, each from its own
  first exposure.
- Not exposed: users who sent telemetry with a `bits.userId` in the range and were never
  exposed to the flag in it.
- Error rate: errors per thousand of those events; `usersWithErrors` counts users.
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from query.analytics_bounds import Bounds, bounded_query
from schemas.envelope import iso_micros, now_micros
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

DAY = 86_400_000_000
DEFAULT_DAYS = 7
MAX_DAYS = 90
MAX_NAME = 128
MAX_VARIANTS = 100

_EXPOSURES = """
    SELECT App AS app,
        if(Variant != '', Variant, if(Enabled, 'enabled', 'disabled')) AS variant,
        if(Context['userId'] != '', Context['userId'], Context['targetingKey']) AS user,
        Timestamp
    FROM flag_evaluations
    WHERE App IN {apps:Array(String)} AND FlagName = {flag:String}
        AND Timestamp >= fromUnixTimestamp64Micro({since:Int64})
        AND Timestamp < fromUnixTimestamp64Micro({until:Int64})
"""
_EVENTS = """
    SELECT app, kind, received_at,
        if(position(bits, '"userId"') > 0, JSONExtractString(bits, 'userId'), '') AS user
    FROM telemetry_events
    WHERE app IN {apps:Array(String)}
        AND received_at >= fromUnixTimestamp64Micro({since:Int64})
        AND received_at < fromUnixTimestamp64Micro({until:Int64})
"""
EXPOSED = (
    "SELECT variant, count() AS exposures, uniqExactIf((app, user), user != '') AS users FROM ("
    + _EXPOSURES
    + ") GROUP BY variant ORDER BY exposures DESC, variant LIMIT {max_variants:UInt32}"
)
AFTER = (
    "WITH first AS (SELECT app, variant, user, min(Timestamp) AS first_at FROM ("
    + _EXPOSURES
    + ") WHERE user != '' GROUP BY app, variant, user), events AS ("
    + _EVENTS
    + ") SELECT variant, count() AS events, countIf(kind = 'error') AS errors,"
    " uniqExactIf((app, user), kind = 'error') AS users_with_errors"
    " FROM events INNER JOIN first ON events.app = first.app AND events.user = first.user"
    " WHERE events.user != '' AND received_at >= first_at"
    " GROUP BY variant LIMIT {max_variants:UInt32}"
)
NOT_EXPOSED = (
    "WITH exposed AS (SELECT DISTINCT app, user FROM ("
    + _EXPOSURES
    + ") WHERE user != ''), events AS ("
    + _EVENTS
    + ") SELECT uniqExact((app, user)) AS users, count() AS events,"
    " countIf(kind = 'error') AS errors, uniqExactIf((app, user), kind = 'error')"
    " FROM events WHERE user != '' AND (app, user) NOT IN exposed"
)


def time_range(req: falcon.asgi.Request) -> tuple[int, int]:
    until = params.time_micros(req, "until") or now_micros()
    since = params.time_micros(req, "since") or until - DEFAULT_DAYS * DAY
    if since >= until:
        raise BadRequest("since must be before until", field="since", code="bad_range")
    if until - since > MAX_DAYS * DAY:
        raise BadRequest(f"the range is at most {MAX_DAYS} days", field="since", code="bad_range")
    return since, until


def outcome(events: int, errors: int, users_with_errors: int) -> dict[str, Any]:
    rate = None if events == 0 else round(errors * 1000 / events, 3)
    return {
        "events": events,
        "errors": errors,
        "errorsPerThousandEvents": rate,
        "usersWithErrors": users_with_errors,
    }


class FlagImpact:
    def __init__(self, analytics: Analytics, auth: Authenticator, bounds: Bounds) -> None:
        self._analytics = analytics
        self._auth = auth
        self._bounds = bounds

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        developer = await self._auth.developer(req)
        if not 1 <= len(name) <= MAX_NAME:
            raise BadRequest(f"flag names are 1-{MAX_NAME} characters", field="name")
        app_name = req.get_param("appName")
        if app_name:
            apps = [(await self._auth.owned_app(developer.name, app_name)).name]
        else:
            apps = [a.name for a in await self._auth.apps_of(developer.name)]
        since, until = time_range(req)
        bound = {
            "apps": apps,
            "flag": name,
            "since": since,
            "until": until,
            "max_variants": MAX_VARIANTS,
        }
        answer = await asyncio.to_thread(self._read, bound) if apps else ([], outcome(0, 0, 0), 0)
        variants, not_exposed, unexposed_users = answer
        resp.data = orjson.dumps(
            {
                "flag": name,
                "apps": apps,
                "since": iso_micros(since),
                "until": iso_micros(until),
                "userKeys": {
                    "evaluations": ["context.userId", "context.targetingKey"],
                    "telemetry": "bits.userId",
                },
                "variants": variants,
                "notExposed": {"users": unexposed_users, **not_exposed},
            }
        )
        resp.content_type = falcon.MEDIA_JSON

    def _read(self, bound: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        def run(sql: str) -> list[list[Any]]:
            return bounded_query(self._analytics, self._bounds, sql, bound).rows

        after = {str(r[0]): [int(v) for v in r[1:]] for r in run(AFTER)}
        variants = []
        for variant, exposures, users in run(EXPOSED):
            events, errors, with_errors = after.get(str(variant), [0, 0, 0])
            variants.append(
                {
                    "variant": str(variant),
                    "exposures": int(exposures),
                    "usersExposed": int(users),
                    "afterExposure": outcome(events, errors, with_errors),
                }
            )
        rows = run(NOT_EXPOSED)
        users, events, errors, with_errors = (int(v) for v in rows[0]) if rows else (0, 0, 0, 0)
        return variants, outcome(events, errors, with_errors), users
