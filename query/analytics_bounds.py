"""Hutch's own aggregate reads over ClickHouse (release health, flag impact), bounded as
POST /api/sql bounds an analyst's query: a time limit and a memory limit carried by the run
itself, so a large app's aggregation stops with a clear 503 rather than holding the engine.

The SQL is Hutch's and every value in it is a bound parameter; only the limits come from
settings (HUTCH_SQL_TIMEOUT, HUTCH_SQL_MAX_MEMORY). Blocking: call from a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from base.client_errors import ServiceUnavailable
from storage.analytics import Analytics, QueryResult
from storage.errors import BadQuery

_STOPPED = {159: "time", 241: "memory"}
"""ClickHouse's codes for a query stopped by its time or memory limit."""


@dataclass(frozen=True, slots=True)
class Bounds:
    timeout_s: float
    max_memory_bytes: int


def bounded_query(
    analytics: Analytics, bounds: Bounds, sql: str, params: Mapping[str, Any]
) -> QueryResult:
    """Run one of Hutch's SELECTs within `bounds`; 503 `query_too_heavy` when stopped."""
    settings = {
        "max_execution_time": bounds.timeout_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": bounds.max_memory_bytes,
    }
    try:
        return analytics.query(sql, params, settings=settings)
    except BadQuery as exc:
        stopped = _STOPPED.get(exc.code or 0)
        if stopped is None:
            raise
        raise ServiceUnavailable(
            f"the aggregation reached its {stopped} limit; narrow the time range",
            code="query_too_heavy",
        ) from None
