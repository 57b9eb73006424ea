"""What the OTLP read routes share: app scoping, id and filter parameters, nanosecond times.

Every query binds its values as ClickHouse parameters (`{name:Type}`); the only text put
into SQL is built here from fixed fragments, never from a request.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import falcon.asgi

from base.client_errors import BadRequest
from storage.analytics import Analytics, QueryResult
from web import query_string as params
from web.auth import Authenticator

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)?$")
_NANOS_PER = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_NANOS_PER["h"] = 3600 * 10**9
MAX_ATTRIBUTE_FILTERS = 10


async def scoped_apps(auth: Authenticator, req: falcon.asgi.Request) -> list[str]:
    """The apps the bearer token's developer may read: all of theirs, or the one `appName`
    names (404 if no such app, 403 if another developer's)."""
    developer = await auth.developer(req)
    app_name = req.get_param("appName")
    if app_name:
        return [(await auth.owned_app(developer.name, app_name)).name]
    return [app.name for app in await auth.apps_of(developer.name)]


async def run(
    analytics: Analytics, sql: str, bound: dict[str, Any], **settings: Any
) -> QueryResult:
    return await asyncio.to_thread(analytics.query, sql, bound, settings=settings or None)


def trace_id(raw: str | None, name: str = "traceId") -> str:
    """A trace id as stored: 32 lowercase hex digits; 400 otherwise."""
    if raw is None or not _TRACE_ID.match(raw):
        raise BadRequest(f"{name} must be 32 hexadecimal digits", field=name, code="bad_trace_id")
    return raw.lower()


def span_id(raw: str, name: str = "spanId") -> str:
    if not _SPAN_ID.match(raw):
        raise BadRequest(f"{name} must be 16 hexadecimal digits", field=name, code="bad_span_id")
    return raw.lower()


def duration_nanos(req: falcon.asgi.Request, name: str) -> int | None:
    """A duration such as `250ms`, `1.5s`, `2m` (a bare number is milliseconds), in ns."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    match = _DURATION.match(raw.strip())
    if match is None:
        raise BadRequest(
            f"{name} must be a duration such as 250ms, 1.5s or 2m, got {raw!r}",
            field=name,
            code="bad_duration",
        )
    number, unit = match.groups()
    return round(float(number) * _NANOS_PER[unit or "ms"])


def attribute_filters(req: falcon.asgi.Request) -> list[tuple[str, str]]:
    """`attribute=key=value` parameters (repeatable; every one must match)."""
    found: list[tuple[str, str]] = []
    for raw in req.get_param_as_list("attribute") or []:
        key, equals, value = raw.partition("=")
        if not equals or not key:
            raise BadRequest(
                f"attribute must be key=value, got {raw!r}", field="attribute", code="bad_attribute"
            )
        found.append((key, value))
    if len(found) > MAX_ATTRIBUTE_FILTERS:
        raise BadRequest(
            f"at most {MAX_ATTRIBUTE_FILTERS} attribute filters",
            field="attribute",
            code="bad_attribute",
        )
    return found


def attribute_clauses(
    filters: list[tuple[str, str]], maps: tuple[str, ...], bound: dict[str, Any]
) -> list[str]:
    """One condition per filter: the key has the value in any of `maps` (column names)."""
    clauses = []
    for n, (key, value) in enumerate(filters):
        bound[f"ak{n}"], bound[f"av{n}"] = key, value
        either = " OR ".join(f"{m}[{{ak{n}:String}}] = {{av{n}:String}}" for m in maps)
        clauses.append(f"({either})")
    return clauses


def time_range(req: falcon.asgi.Request) -> tuple[int | None, int | None]:
    """`since` (inclusive) and `until` (exclusive) as epoch nanoseconds."""
    since = params.time_micros(req, "since")
    until = params.time_micros(req, "until")
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be after since", field="until", code="bad_range")
    return (
        None if since is None else since * 1000,
        None if until is None else until * 1000,
    )


def time_clauses(
    column: str, since: int | None, until: int | None, bound: dict[str, Any]
) -> list[str]:
    clauses = []
    if since is not None:
        clauses.append(f"{column} >= fromUnixTimestamp64Nano({{since:Int64}})")
        bound["since"] = since
    if until is not None:
        clauses.append(f"{column} < fromUnixTimestamp64Nano({{until:Int64}})")
        bound["until"] = until
    return clauses


def iso_nanos(nanos: int | str) -> str:
    """Epoch nanoseconds as ISO 8601 UTC with all nine fraction digits and a Z."""
    value = int(nanos)
    seconds, fraction = divmod(value, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{fraction:09d}Z"


def or_none(value: str) -> str | None:
    """Empty ids and texts as null in answers."""
    return value or None
