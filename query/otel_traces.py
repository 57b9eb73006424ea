"""Traces over otel_traces: GET /api/traces/{traceId} (one trace, every span) and
GET /api/traces (search: traces with a span matching the filters, newest first).

One trace may span several of a developer's apps (a request crossing services that report
as different apps); a lookup returns the spans of every app the caller may read.
A span exported twice (a client retry) is shown once.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest, NotFound
from query.otel_params import (
    attribute_clauses,
    attribute_filters,
    duration_nanos,
    iso_nanos,
    or_none,
    run,
    scoped_apps,
    time_clauses,
    time_range,
    trace_id,
)
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

MAX_SPANS = 10_000
DEFAULT_TRACES, MAX_TRACES = 20, 200
STATUS_CODES = {"unset": "Unset", "ok": "Ok", "error": "Error"}

_BOUNDS = """
SELECT toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)), count()
FROM otel_traces_trace_id_ts
WHERE App IN {apps:Array(String)} AND TraceId = {trace:String}
"""

_SPANS = """
SELECT App, toUnixTimestamp64Nano(Timestamp), SpanId, ParentSpanId, TraceState, SpanName,
       SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
       Duration, StatusCode, StatusMessage,
       arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes,
       Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
FROM otel_traces
WHERE App IN {apps:Array(String)} AND TraceId = {trace:String}
  AND Timestamp >= fromUnixTimestamp64Nano({start:Int64})
  AND Timestamp < fromUnixTimestamp64Nano({end:Int64})
ORDER BY Timestamp, SpanId
LIMIT 1 BY App, SpanId
LIMIT {limit:UInt32}
"""

_MATCHING = """
SELECT App, TraceId, toUnixTimestamp64Nano(min(Timestamp)) AS first, count()
FROM otel_traces
WHERE {where}
GROUP BY App, TraceId
{having}
ORDER BY first DESC, App DESC, TraceId DESC
LIMIT {{limit:UInt32}}
"""

_SUMMARIES = """
SELECT App, TraceId, toUnixTimestamp64Nano(min(Timestamp)),
       max(toUnixTimestamp64Nano(Timestamp) + Duration), uniqExact(SpanId),
       argMinIf(ServiceName, Timestamp, ParentSpanId = ''),
       argMinIf(SpanName, Timestamp, ParentSpanId = ''),
       uniqExactIf(SpanId, StatusCode = 'Error'), arraySort(groupUniqArray(ServiceName))
FROM otel_traces
WHERE App IN {apps:Array(String)} AND TraceId IN {traces:Array(String)}
GROUP BY App, TraceId
"""


def span_json(row: list[Any]) -> dict[str, Any]:
    start, duration = int(row[1]), int(row[12])
    return {
        "spanId": row[2],
        "parentSpanId": or_none(row[3]),
        "appName": row[0],
        "serviceName": row[7],
        "name": row[5],
        "kind": row[6],
        "startTime": iso_nanos(start),
        "endTime": iso_nanos(start + duration),
        "durationNs": duration,
        "durationMs": duration / 1e6,
        "statusCode": row[13],
        "statusMessage": row[14],
        "traceState": row[4],
        "attributes": row[11],
        "resourceAttributes": row[8],
        "scope": {"name": row[9], "version": row[10]},
        "events": [
            {"time": iso_nanos(t), "name": n, "attributes": a}
            for t, n, a in zip(row[15], row[16], row[17], strict=True)
        ],
        "links": [
            {"traceId": t, "spanId": s, "traceState": st, "attributes": a}
            for t, s, st, a in zip(row[18], row[19], row[20], row[21], strict=True)
        ],
    }


def trace_json(trace: str, rows: list[list[Any]], truncated: bool) -> dict[str, Any]:
    """The whole trace: its spans in start order, each with its parent and children."""
    spans = [span_json(row) for row in rows]
    ids = {span["spanId"] for span in spans}
    children: dict[str, list[str]] = {}
    for span in spans:
        if span["parentSpanId"] in ids:
            children.setdefault(span["parentSpanId"], []).append(span["spanId"])
    for span in spans:
        span["childSpanIds"] = children.get(span["spanId"], [])
    start = min(int(row[1]) for row in rows)
    end = max(int(row[1]) + int(row[12]) for row in rows)
    return {
        "traceId": trace,
        "startTime": iso_nanos(start),
        "endTime": iso_nanos(end),
        "durationNs": end - start,
        "durationMs": (end - start) / 1e6,
        "spanCount": len(spans),
        "truncated": truncated,
        "rootSpanIds": [s["spanId"] for s in spans if s["parentSpanId"] not in ids],
        "services": sorted({s["serviceName"] for s in spans}),
        "spans": spans,
    }


class TraceLookup:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, traceId: str
    ) -> None:
        apps = await scoped_apps(self._auth, req)
        trace = trace_id(traceId)
        limit = params.limit(req, MAX_SPANS, MAX_SPANS)
        missing = NotFound(f"no trace {trace} in your apps", field="traceId")
        if not apps:
            raise missing
        bounds = await run(self._analytics, _BOUNDS, {"apps": apps, "trace": trace})
        first, last, found = (int(v) for v in bounds.rows[0])
        if not found:
            raise missing
        # The lookup table has whole seconds (of span starts): widen to the next second.
        # (Bounds are compared as DateTime64: `Timestamp < toDateTime(x)` misses rows in
        # chDB 26.9's index analysis.)
        bound = {
            "apps": apps,
            "trace": trace,
            "start": first * 10**9,
            "end": (last + 1) * 10**9,
            "limit": limit + 1,
        }
        rows = (await run(self._analytics, _SPANS, bound)).rows
        if not rows:
            raise missing
        resp.data = orjson.dumps(trace_json(trace, rows[:limit], len(rows) > limit))


class TraceSearch:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        apps = await scoped_apps(self._auth, req)
        where = ["App IN {apps:Array(String)}"]
        bound: dict[str, Any] = {"apps": apps}
        for name, column in (("serviceName", "ServiceName"), ("spanName", "SpanName")):
            value = req.get_param(name)
            if value:
                where.append(f"{column} = {{{name}:String}}")
                bound[name] = value
        status = req.get_param("statusCode")
        if status:
            if status.lower() not in STATUS_CODES:
                raise BadRequest(
                    "statusCode must be one of Unset, Ok, Error",
                    field="statusCode",
                    code="bad_status_code",
                )
            where.append("StatusCode = {status:String}")
            bound["status"] = STATUS_CODES[status.lower()]
        for name, op in (("minDuration", ">="), ("maxDuration", "<=")):
            nanos = duration_nanos(req, name)
            if nanos is not None:
                where.append(f"Duration {op} {{{name}:UInt64}}")
                bound[name] = nanos
        filters = attribute_filters(req)
        where += attribute_clauses(filters, ("SpanAttributes", "ResourceAttributes"), bound)
        since, until = time_range(req)
        where += time_clauses("Timestamp", since, until, bound)
        limit = params.limit(req, DEFAULT_TRACES, MAX_TRACES)
        cursor = params.decode_cursor(req, (int, str, str))
        having = ""
        if cursor is not None:
            having = (
                "HAVING (first, App, TraceId) < ({c_first:Int64}, {c_app:String}, {c_trace:String})"
            )
            bound["c_first"], bound["c_app"], bound["c_trace"] = cursor
        if not apps:
            resp.data = orjson.dumps({"traces": [], "next": None})
            return
        bound["limit"] = limit + 1
        sql = _MATCHING.format(where=" AND ".join(where), having=having)
        matching = (await run(self._analytics, sql, bound)).rows
        page = matching[:limit]
        summaries: dict[tuple[str, str], list[Any]] = {}
        if page:
            found = await run(
                self._analytics,
                _SUMMARIES,
                {"apps": sorted({r[0] for r in page}), "traces": [r[1] for r in page]},
            )
            summaries = {(r[0], r[1]): r for r in found.rows}
        traces = [
            _summary(summaries[(r[0], r[1])], int(r[3])) for r in page if (r[0], r[1]) in summaries
        ]
        next_cursor = None
        if len(matching) > limit:
            last = page[-1]
            next_cursor = params.encode_cursor([int(last[2]), last[0], last[1]])
        resp.data = orjson.dumps({"traces": traces, "next": next_cursor})


def _summary(row: list[Any], matched: int) -> dict[str, Any]:
    start, end = int(row[2]), int(row[3])
    return {
        "traceId": row[1],
        "appName": row[0],
        "rootServiceName": or_none(row[5]),
        "rootSpanName": or_none(row[6]),
        "startTime": iso_nanos(start),
        "endTime": iso_nanos(end),
        "durationNs": end - start,
        "durationMs": (end - start) / 1e6,
        "spanCount": int(row[4]),
        "errorCount": int(row[7]),
        "matchedSpans": matched,
        "services": row[8],
    }
