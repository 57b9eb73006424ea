"""POST /api/sql: one read-only ClickHouse SELECT over the developer's own rows (bearer token):
their apps' rows, and their tenants' (job_logs).

Body: `{"sql": "SELECT ...", "params"?: {"name": value}, "limit"?: n}` as JSON, or the SQL
alone as `text/plain`. `params` bind ClickHouse query parameters (`{name:Type}` in the text).
Answer: `{"columns": [{"name", "type"}], "rows": [[...]], "rowCount", "elapsedMs",
"truncated", "limit"}`; values as ClickHouse's JSONCompact writes them (64-bit integers as
strings). A query Hutch will not run is a 400 `sql_refused`; one ClickHouse refuses is a 400
`sql_error` (`sql_syntax`, `sql_timeout`, `sql_memory`, `sql_too_large`), with ClickHouse's
message: a query stopped by a limit fails the same way again, so it is never a 503. Too many
queries at once (per developer, or in all) is a 429 with Retry-After.
How the scope holds: query/sql_scope.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest, TooManyRequests, UnsupportedMediaType
from query.sql_guard import Refused
from query.sql_scope import ScopedSql, SqlError
from web.auth import Authenticator
from web.body import media_type, read_body

MAX_BODY = 64 * 1024
MAX_PARAMS = 100
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _param(value: object) -> bool:
    if isinstance(value, list):
        return all(_param(v) and not isinstance(v, list) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def parse_request(kind: str, data: bytes) -> tuple[str, dict[str, Any], int | None]:
    """(sql, params, limit) from a JSON or text/plain body; 400 naming the field otherwise."""
    if kind in ("text/plain", "application/sql"):
        return data.decode("utf-8", errors="replace"), {}, None
    if kind and kind != "application/json":
        raise UnsupportedMediaType(
            f"send application/json or text/plain, not {kind!r}", field="Content-Type"
        )
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="malformed_json") from None
    if not isinstance(body, dict):
        raise BadRequest('the body must be {"sql": "SELECT ..."}', code="bad_body")
    sql, params, limit = body.get("sql"), body.get("params", {}), body.get("limit")
    if not isinstance(sql, str):
        raise BadRequest("sql must be a string", field="sql", code="bad_sql")
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise BadRequest(f"params must be an object of at most {MAX_PARAMS} values", field="params")
    for name, value in params.items():
        if not PARAM_NAME.match(name) or not _param(value):
            raise BadRequest(
                "each param needs a name of letters, digits and '_' and a scalar value or a "
                "list of scalars",
                field=f"params.{name}",
            )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise BadRequest("limit must be an integer", field="limit", code="bad_limit")
    return sql, params, limit


class Admission:
    """How many queries run at once: at most `total`, and at most `each` per developer, so
    one developer's heavy queries cannot refuse everyone else's. Both are counted in this
    process (the one query process of `hutch serve`)."""

    def __init__(self, total: int, each: int) -> None:
        self._total = total
        self._each = each
        self._running: dict[str, int] = {}

    @contextlib.contextmanager
    def admit(self, developer: str) -> Iterator[None]:
        mine = self._running.get(developer, 0)
        if mine >= self._each:
            raise TooManyRequests(
                f"you have {mine} SQL queries running, the most one developer may; retry "
                "when one has finished",
                headers={"Retry-After": "1"},
            )
        if sum(self._running.values()) >= self._total:
            raise TooManyRequests(
                "too many SQL queries are running; retry shortly", headers={"Retry-After": "1"}
            )
        self._running[developer] = mine + 1
        try:
            yield
        finally:
            left = self._running[developer] - 1
            if left:
                self._running[developer] = left
            else:
                del self._running[developer]


class SqlQuery:
    def __init__(
        self, scoped: ScopedSql, auth: Authenticator, max_rows: int, admission: Admission
    ) -> None:
        self._scoped = scoped
        self._auth = auth
        self._max_rows = max_rows
        self._admission = admission

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        sql, params, limit = parse_request(media_type(req), await read_body(req, MAX_BODY))
        if not sql.strip():
            raise BadRequest("sql is empty", field="sql", code="bad_sql")
        limit = self._max_rows if limit is None else limit
        if not 1 <= limit <= self._max_rows:
            raise BadRequest(
                f"limit must be between 1 and {self._max_rows}", field="limit", code="bad_limit"
            )
        with self._admission.admit(developer.name):
            apps = [a.name for a in await self._auth.apps_of(developer.name)]
            tenants = [t.id for t in await self._auth.tenants_of(developer.name)]
            try:
                result = await asyncio.to_thread(
                    self._scoped.run, apps, sql, params, limit, tenants=tenants
                )
            except Refused as exc:
                raise BadRequest(exc.message, field="sql", code="sql_refused") from None
            except SqlError as exc:
                code = "sql_error" if exc.kind == "query" else f"sql_{exc.kind}"
                raise BadRequest(exc.message, field="sql", code=code) from None
        columns = zip(result.columns, result.types, strict=True)
        resp.data = orjson.dumps(
            {
                "columns": [{"name": n, "type": t} for n, t in columns],
                "rows": result.rows,
                "rowCount": len(result.rows),
                "elapsedMs": round(result.elapsed_s * 1000, 3),
                "truncated": result.truncated,
                "limit": limit,
            }
        )
