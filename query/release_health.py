"""GET /api/apps/{app}/release-health: per app version, newest first, how it is doing.

For each version: downloads (the builds projection's counters, state/release_reads.py), error
and warning telemetry events in the range, their rates per thousand of a denominator, when
the version was first seen, a trend and a per-day series, and `regressed`.

- Denominator: sessions when the app's telemetry carries them (distinct non-empty
  `bits.sessionId` of any kind of event of that version in the range; telemetry has no
  session column), else downloads (all-time counted downloads of the version's builds: every
  install can report at any later time, so downloads within the range would undercount old
  versions). One denominator for the whole answer, so versions compare like with like; a
  version whose denominator is 0 has null rates.
- First seen: the earlier of the version's first upload and its first event in the scanned
  range (the range, widened to the 14 days the trend needs).
- Newest first: by first seen. Events without a version are not listed.
- Trend: errors in the last 7 days before `until` against the 7 days before those.
- Regressed: the version's error rate exceeds the next older version's by more than
  REGRESSION_RATIO times and by at least REGRESSION_MIN_DELTA per thousand.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from query.analytics_bounds import Bounds, bounded_query
from schemas.envelope import iso_micros, micros_to_datetime, now_micros
from state import release_reads
from storage.analytics import Analytics
from storage.relational import Relational
from web import query_string as params
from web.auth import Authenticator

DAY = 86_400_000_000
DEFAULT_DAYS = 14
MAX_DAYS = 90
DEFAULT_VERSIONS = 20
MAX_VERSIONS = 100
TREND_DAYS = 7
REGRESSION_RATIO = 1.5
REGRESSION_MIN_DELTA = 1.0

PER_VERSION = """
SELECT version, sum(errors), sum(warnings), sum(events), uniqExactIfMerge(sessions),
    toUnixTimestamp64Micro(min(first_at)), sum(last7), sum(prev7),
    arrayFilter(d -> d.2 + d.3 > 0, arraySort(groupArray((toString(day), errors, warnings))))
FROM
(
    SELECT version, toDate(received_at) AS day,
        countIf(kind = 'error' AND received_at >= since) AS errors,
        countIf(kind = 'warning' AND received_at >= since) AS warnings,
        countIf(received_at >= since) AS events,
        uniqExactIfState(sid, sid != '' AND received_at >= since) AS sessions,
        min(received_at) AS first_at,
        countIf(kind = 'error' AND received_at >= fromUnixTimestamp64Micro({last7:Int64}))
            AS last7,
        countIf(kind = 'error' AND received_at < fromUnixTimestamp64Micro({last7:Int64})
            AND received_at >= fromUnixTimestamp64Micro({prev7:Int64})) AS prev7
    FROM
    (
        SELECT version, kind, received_at, fromUnixTimestamp64Micro({since:Int64}) AS since,
            if(position(bits, '"sessionId"') > 0, JSONExtractString(bits, 'sessionId'), '')
                AS sid
        FROM telemetry_events
        WHERE app = {app:String} AND version != ''
            AND received_at >= fromUnixTimestamp64Micro({scan:Int64})
            AND received_at < fromUnixTimestamp64Micro({until:Int64})
    )
    GROUP BY version, day
)
GROUP BY version
LIMIT 10000
"""
"""One scan of the app's events in the range (widened to the trend's 14 days), aggregated per
version and day, then per version: the counts, sessions, first event, trend and the days with
errors or warnings as (day, errors, warnings). Two levels rather than a sumMap over every
row: the per-day rows are few, and the bench measured the pair faster."""


def time_range(req: falcon.asgi.Request) -> tuple[int, int]:
    """(since, until) in epoch microseconds: `since`/`until`, else the last `days` days."""
    until = params.time_micros(req, "until") or now_micros()
    days = params.limit(req, DEFAULT_DAYS, MAX_DAYS, name="days")
    since = params.time_micros(req, "since") or until - days * DAY
    if since >= until:
        raise BadRequest("since must be before until", field="since", code="bad_range")
    if until - since > MAX_DAYS * DAY:
        raise BadRequest(f"the range is at most {MAX_DAYS} days", field="since", code="bad_range")
    return since, until


def per_thousand(count: int, denominator: int) -> float | None:
    return None if denominator == 0 else round(count * 1000 / denominator, 3)


def regressed(rate: float | None, previous: float | None) -> bool:
    if rate is None or previous is None:
        return False
    return rate > previous * REGRESSION_RATIO and rate - previous >= REGRESSION_MIN_DELTA


def days(series: Any) -> list[dict[str, Any]]:
    """The engine's [(day, errors, warnings)] as rows, oldest first."""
    return [{"day": str(d), "errors": int(e), "warnings": int(w)} for d, e, w in series or []]


def trend(last7: int, prev7: int) -> dict[str, Any]:
    direction = "up" if last7 > prev7 else "down" if last7 < prev7 else "flat"
    return {"errorsLast7Days": last7, "errorsPrevious7Days": prev7, "direction": direction}


class ReleaseHealth:
    def __init__(
        self, analytics: Analytics, db: Relational, auth: Authenticator, bounds: Bounds
    ) -> None:
        self._analytics = analytics
        self._db = db
        self._auth = auth
        self._bounds = bounds

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        developer = await self._auth.developer(req)
        await self._auth.owned_app(developer.name, app)
        since, until = time_range(req)
        limit = params.limit(req, DEFAULT_VERSIONS, MAX_VERSIONS)
        answer = await asyncio.to_thread(self._read, app, since, until, limit)
        resp.data = orjson.dumps(answer)
        resp.content_type = falcon.MEDIA_JSON

    def _read(self, app: str, since: int, until: int, limit: int) -> dict[str, Any]:
        last7 = until - TREND_DAYS * DAY
        prev7 = last7 - TREND_DAYS * DAY
        bound = {
            "app": app,
            "since": since,
            "until": until,
            "scan": min(since, prev7),
            "last7": last7,
            "prev7": prev7,
        }
        counted = bounded_query(self._analytics, self._bounds, PER_VERSION, bound).rows
        events = {str(r[0]): [int(v) for v in r[1:8]] for r in counted}
        daily = {str(r[0]): r[8] for r in counted}
        from_day = micros_to_datetime(since).date().isoformat()
        to_day = (micros_to_datetime(until) - timedelta(microseconds=1)).date().isoformat()
        builds = {b.version: b for b in release_reads.versions_of(self._db, app, from_day, to_day)}
        first_seen: dict[str, int] = {}
        for version in events.keys() | builds.keys():
            seen = [events[version][4]] if version in events else []
            if version in builds:
                seen.append(builds[version].first_uploaded_at)
            if min(seen) < until:
                first_seen[version] = min(seen)
        ordered = sorted(first_seen, key=lambda v: (first_seen[v], v), reverse=True)
        listed = ordered[: limit + 1]  # one more: the oldest listed is compared to it
        sessions = sum(events[v][3] for v in listed if v in events)
        denominator = "sessions" if sessions else "downloads"
        rows: list[dict[str, Any]] = []
        for version in listed:
            errors, warnings, total, session_count, _, last, prev = events.get(version, [0] * 7)
            build = builds.get(version)
            downloads = build.downloads if build else 0
            base = session_count if denominator == "sessions" else downloads
            rows.append(
                {
                    "version": version,
                    "firstSeen": iso_micros(first_seen[version]),
                    "uploaded": build is not None,
                    "downloads": downloads,
                    "downloadsInRange": build.downloads_in_range if build else 0,
                    "sessions": session_count,
                    "events": total,
                    "errors": errors,
                    "warnings": warnings,
                    "errorsPerThousand": per_thousand(errors, base),
                    "warningsPerThousand": per_thousand(warnings, base),
                    "trend": trend(last, prev),
                    "daily": days(daily.get(version)),
                }
            )
        for i, row in enumerate(rows):
            older = rows[i + 1] if i + 1 < len(rows) else None
            previous = older["errorsPerThousand"] if older else None
            row["previousVersion"] = older["version"] if older else None
            row["regressed"] = regressed(row["errorsPerThousand"], previous)
        return {
            "app": app,
            "since": iso_micros(since),
            "until": iso_micros(until),
            "denominator": denominator,
            "regression": {"ratio": REGRESSION_RATIO, "minDeltaPerThousand": REGRESSION_MIN_DELTA},
            "versions": rows[:limit],
        }
