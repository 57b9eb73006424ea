"""GET /api/logs: OTLP log records from otel_logs, newest first, cursor-paginated.

Severity follows the OpenTelemetry ranges of SeverityNumber (TRACE 1-4, DEBUG 5-8,
INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24); a record without a number is judged by
its SeverityText. Records with the same timestamp are ordered by a hash of their content,
so the cursor is exact.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from query.otel_params import (
    attribute_clauses,
    attribute_filters,
    iso_nanos,
    or_none,
    run,
    scoped_apps,
    span_id,
    time_clauses,
    time_range,
    trace_id,
)
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_TEXT_LEVELS = {name: n + 1 for n, name in enumerate(SEVERITIES)} | {"WARNING": 4, "CRITICAL": 6}

_LEVEL = (
    "if(SeverityNumber > 0, least(intDiv(SeverityNumber - 1, 4) + 1, 6), "
    f"transform(upper(SeverityText), {list(_TEXT_LEVELS)}, {list(_TEXT_LEVELS.values())}, 0))"
)
_HASH = (
    "cityHash64(App, ServiceName, TraceId, SpanId, SeverityNumber, SeverityText, Body, "
    "LogAttributes)"
)

_SELECT = f"""
SELECT App, toUnixTimestamp64Nano(Timestamp) AS nanos, {_HASH} AS h, ServiceName,
       SeverityText, SeverityNumber, {_LEVEL} AS level, Body, TraceId, SpanId, TraceFlags,
       LogAttributes, ResourceAttributes, ScopeName, ScopeVersion, ScopeAttributes, EventName
FROM otel_logs
WHERE {{where}}
ORDER BY Timestamp DESC, h DESC
LIMIT {{{{limit:UInt32}}}}
"""


def level(req: falcon.asgi.Request, name: str, raw: str) -> int:
    found = _TEXT_LEVELS.get(raw.strip().upper())
    if found is None:
        raise BadRequest(
            f"{name} must be one of {', '.join(SEVERITIES)}, got {raw!r}",
            field=name,
            code="bad_severity",
        )
    return found


class LogListing:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        apps = await scoped_apps(self._auth, req)
        where = ["App IN {apps:Array(String)}"]
        bound: dict[str, Any] = {"apps": apps}
        service = req.get_param("serviceName")
        if service:
            where.append("ServiceName = {service:String}")
            bound["service"] = service
        levels = [level(req, "severity", raw) for raw in params.csv(req, "severity")]
        if levels:
            where.append(f"{_LEVEL} IN {{levels:Array(UInt8)}}")
            bound["levels"] = levels
        minimum = req.get_param("minSeverity")
        if minimum:
            where.append(f"{_LEVEL} >= {{min_level:UInt8}}")
            bound["min_level"] = level(req, "minSeverity", minimum)
        text = req.get_param("q")
        if text:
            where.append("positionCaseInsensitiveUTF8(Body, {text:String}) > 0")
            bound["text"] = text
        trace = req.get_param("traceId")
        if trace is not None:
            where.append("TraceId = {trace:String}")
            bound["trace"] = trace_id(trace)
        span = req.get_param("spanId")
        if span is not None:
            where.append("SpanId = {span:String}")
            bound["span"] = span_id(span)
        where += attribute_clauses(
            attribute_filters(req), ("LogAttributes", "ResourceAttributes"), bound
        )
        since, until = time_range(req)
        where += time_clauses("Timestamp", since, until, bound)
        limit = params.limit(req, DEFAULT_LIMIT, MAX_LIMIT)
        cursor = params.decode_cursor(req, (int, int))
        if cursor is not None:
            where.append(
                "Timestamp <= fromUnixTimestamp64Nano({c_at:Int64}) AND "
                "(toUnixTimestamp64Nano(Timestamp), h) < ({c_at:Int64}, {c_h:UInt64})"
            )
            bound["c_at"], bound["c_h"] = cursor
        if not apps:
            resp.data = orjson.dumps({"logs": [], "next": None})
            return
        bound["limit"] = limit + 1
        rows = (await run(self._analytics, _SELECT.format(where=" AND ".join(where)), bound)).rows
        logs = [_log(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = params.encode_cursor([int(last[1]), int(last[2])])
        resp.data = orjson.dumps({"logs": logs, "next": next_cursor})


def _log(row: list[Any]) -> dict[str, Any]:
    level_ = int(row[6])
    return {
        "time": iso_nanos(row[1]),
        "appName": row[0],
        "serviceName": row[3],
        "severity": SEVERITIES[level_ - 1] if level_ else None,
        "severityText": row[4],
        "severityNumber": int(row[5]),
        "body": row[7],
        "traceId": or_none(row[8]),
        "spanId": or_none(row[9]),
        "traceFlags": int(row[10]),
        "attributes": row[11],
        "resourceAttributes": row[12],
        "scope": {"name": row[13], "version": row[14], "attributes": row[15]},
        "eventName": or_none(row[16]),
    }
