"""GET /api/metrics: the metric names an app reports, or, with `name`, one metric's series
over time (one aggregation per `step`), from the otel_metrics_* tables.

Aggregations: gauges and sums aggregate their points' values; histograms and summaries
aggregate their Sum and Count (avg is sum(Sum)/sum(Count), the mean of the observations),
and histograms their Min and Max.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import falcon.asgi
import orjson

from base.client_errors import BadRequest, NotFound
from query.otel_params import (
    attribute_clauses,
    attribute_filters,
    duration_nanos,
    iso_nanos,
    run,
    scoped_apps,
    time_clauses,
    time_range,
)
from schemas.envelope import now_micros
from storage.analytics import Analytics
from web import query_string as params
from web.auth import Authenticator

MetricType = Literal["gauge", "sum", "histogram", "exponential_histogram", "summary"]
METRIC_TYPES: tuple[MetricType, ...] = get_args(MetricType)
Aggregation = Literal["avg", "min", "max", "sum", "count", "last"]
AGGREGATIONS: tuple[Aggregation, ...] = get_args(Aggregation)

DEFAULT_LIMIT, MAX_LIMIT = 200, 1000
DEFAULT_STEP_S = 60
DEFAULT_WINDOW_NS = 3600 * 10**9
MAX_BUCKETS = 11_000
MAX_POINTS = 100_000

_VALUE = {
    "avg": "avg(Value)",
    "min": "min(Value)",
    "max": "max(Value)",
    "sum": "sum(Value)",
    "count": "count()",
    "last": "argMax(Value, TimeUnix)",
}
_DISTRIBUTION = {
    "avg": "sum(Sum) / nullIf(sum(Count), 0)",
    "min": "min(Min)",
    "max": "max(Max)",
    "sum": "sum(Sum)",
    "count": "sum(Count)",
    "last": "argMax(Sum / nullIf(Count, 0), TimeUnix)",
}
AGGREGATE: dict[MetricType, dict[str, str]] = {
    "gauge": _VALUE,
    "sum": _VALUE,
    "histogram": _DISTRIBUTION,
    "exponential_histogram": _DISTRIBUTION,
    "summary": {k: v for k, v in _DISTRIBUTION.items() if k not in ("min", "max")},
}

_NAMES = """
SELECT MetricName, type, any(MetricUnit), any(MetricDescription),
       arraySort(groupUniqArray(ServiceName)), toUnixTimestamp64Nano(max(TimeUnix)), count()
FROM ({union})
GROUP BY MetricName, type
{having}
ORDER BY MetricName, type
LIMIT {{limit:UInt32}}
"""
_NAMES_PART = (
    "SELECT MetricName, '{kind}' AS type, MetricUnit, MetricDescription, ServiceName, TimeUnix"
    " FROM otel_metrics_{kind} WHERE {where}"
)

_KINDS = """
SELECT type, any(MetricUnit), any(MetricDescription) FROM ({union}) GROUP BY type ORDER BY type
"""
_KINDS_PART = (
    "SELECT '{kind}' AS type, MetricUnit, MetricDescription FROM otel_metrics_{kind}"
    " WHERE App IN {{apps:Array(String)}} AND MetricName = {{name:String}}"
)

_SERIES = """
SELECT {group} AS g,
       toUnixTimestamp(toStartOfInterval(TimeUnix, toIntervalSecond({{step:UInt32}}))) AS bucket,
       {value} AS value
FROM otel_metrics_{kind}
WHERE {where}
GROUP BY g, bucket
ORDER BY g, bucket
LIMIT {{points:UInt32}}
"""


def _filters(req: falcon.asgi.Request, bound: dict[str, Any]) -> list[str]:
    where = ["App IN {apps:Array(String)}"]
    service = req.get_param("serviceName")
    if service:
        where.append("ServiceName = {service:String}")
        bound["service"] = service
    where += attribute_clauses(attribute_filters(req), ("Attributes", "ResourceAttributes"), bound)
    return where


class MetricQuery:
    def __init__(self, analytics: Analytics, auth: Authenticator) -> None:
        self._analytics = analytics
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        apps = await scoped_apps(self._auth, req)
        name = req.get_param("name")
        if name:
            resp.data = orjson.dumps(await self._series(req, apps, name))
        else:
            resp.data = orjson.dumps(await self._names(req, apps))

    async def _names(self, req: falcon.asgi.Request, apps: list[str]) -> dict[str, Any]:
        bound: dict[str, Any] = {"apps": apps}
        where = _filters(req, bound)
        since, until = time_range(req)
        where += time_clauses("TimeUnix", since, until, bound)
        text = req.get_param("q")
        if text:
            where.append("positionCaseInsensitiveUTF8(MetricName, {text:String}) > 0")
            bound["text"] = text
        limit = params.limit(req, DEFAULT_LIMIT, MAX_LIMIT)
        cursor = params.decode_cursor(req, (str, str))
        having = ""
        if cursor is not None:
            having = "HAVING (MetricName, type) > ({c_name:String}, {c_type:String})"
            bound["c_name"], bound["c_type"] = cursor
        if not apps:
            return {"metrics": [], "next": None}
        bound["limit"] = limit + 1
        union = " UNION ALL ".join(
            _NAMES_PART.format(kind=kind, where=" AND ".join(where)) for kind in METRIC_TYPES
        )
        rows = (await run(self._analytics, _NAMES.format(union=union, having=having), bound)).rows
        metrics = [
            {
                "name": r[0],
                "type": r[1],
                "unit": r[2],
                "description": r[3],
                "services": r[4],
                "lastSeen": iso_nanos(r[5]),
                "points": int(r[6]),
            }
            for r in rows[:limit]
        ]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = params.encode_cursor([rows[limit - 1][0], rows[limit - 1][1]])
        return {"metrics": metrics, "next": next_cursor}

    async def _series(self, req: falcon.asgi.Request, apps: list[str], name: str) -> dict[str, Any]:
        aggregation = req.get_param("aggregation") or "avg"
        if aggregation not in AGGREGATIONS:
            raise BadRequest(
                f"aggregation must be one of {', '.join(AGGREGATIONS)}",
                field="aggregation",
                code="bad_aggregation",
            )
        wanted = req.get_param("type")
        if wanted is not None and wanted not in METRIC_TYPES:
            raise BadRequest(
                f"type must be one of {', '.join(METRIC_TYPES)}", field="type", code="bad_type"
            )
        step_ns = duration_nanos(req, "step")
        step = DEFAULT_STEP_S if step_ns is None else step_ns // 10**9
        if step < 1:
            raise BadRequest("step must be at least 1s", field="step", code="bad_step")
        since, until = time_range(req)
        until = now_micros() * 1000 if until is None else until
        since = until - DEFAULT_WINDOW_NS if since is None else since
        if since >= until:
            raise BadRequest("until must be after since", field="until", code="bad_range")
        if (until - since) / (step * 10**9) > MAX_BUCKETS:
            raise BadRequest(
                f"more than {MAX_BUCKETS} steps between since and until: use a larger step",
                field="step",
                code="bad_step",
            )
        group_by = req.get_param("groupBy")
        missing = NotFound(f"no metric named {name!r} in your apps", field="name")
        if not apps:
            raise missing
        union = " UNION ALL ".join(_KINDS_PART.format(kind=kind) for kind in METRIC_TYPES)
        kinds = (
            await run(self._analytics, _KINDS.format(union=union), {"apps": apps, "name": name})
        ).rows
        found = {row[0]: row for row in kinds if wanted is None or row[0] == wanted}
        if not found:
            raise missing
        if len(found) > 1:
            raise BadRequest(
                f"{name!r} is reported as {' and '.join(found)}: pass type=",
                field="type",
                code="ambiguous_metric",
            )
        ((kind, unit, description),) = (tuple(row) for row in found.values())
        expression = AGGREGATE[kind].get(aggregation)
        if expression is None:
            raise BadRequest(
                f"a {kind} metric has no {aggregation}", field="aggregation", code="bad_aggregation"
            )
        bound: dict[str, Any] = {"apps": apps, "name": name, "step": step, "points": MAX_POINTS}
        where = [*_filters(req, bound), "MetricName = {name:String}"]
        where += time_clauses("TimeUnix", since, until, bound)
        group = "''"
        if group_by:
            group = "Attributes[{group_by:String}]"
            bound["group_by"] = group_by
        sql = _SERIES.format(group=group, value=expression, kind=kind, where=" AND ".join(where))
        rows = (await run(self._analytics, sql, bound)).rows
        series: dict[str, list[dict[str, Any]]] = {}
        for g, bucket, value in rows:
            series.setdefault(g, []).append(
                {"time": iso_nanos(int(bucket) * 10**9), "value": _number(value)}
            )
        return {
            "name": name,
            "type": kind,
            "unit": unit,
            "description": description,
            "aggregation": aggregation,
            "stepSeconds": step,
            "since": iso_nanos(since),
            "until": iso_nanos(until),
            "groupBy": group_by or None,
            "series": [
                {"group": {group_by: g} if group_by else {}, "points": points}
                for g, points in series.items()
            ],
        }


def _number(value: Any) -> float | None:
    """A JSON number, or null for a missing, NaN or infinite value."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
