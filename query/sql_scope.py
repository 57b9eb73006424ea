"""Run one analyst's SELECT so that it sees only the rows of the developer's apps.

Defence in depth, each layer enough on its own for what it covers:

- Shape: ClickHouse parses the text (one statement, canonical) and its AST is checked: a
  SELECT, no SETTINGS / FORMAT / INTO OUTFILE, no table functions, no database-qualified
  names, no functions reaching outside (query/sql_guard.py `check_syntax`).
- Scope: each queryable table has a parameterized view in the `hutch_scoped` database,
  `SELECT * FROM <db>.<table> WHERE <app column> IN {apps:Array(String)}`; references are
  rewritten to call it with the developer's apps, and the analyzer's resolved query tree must
  read nothing but those calls, each with exactly those apps (`check_resolution`).
- Rows again: the run carries `additional_table_filters` on every base table, the same app
  filter applied by the engine to any read of that table, views included.
- Settings: `readonly = 2` (no writes or DDL), `limit` (rows returned), `max_execution_time`,
  `max_memory_usage`, and the analyzer forced on so the checked resolution is the one run.

Limits: the views expose every column of the developer's own rows; functions that report
about the server (version(), timezone()) still work; a query may still use the full time and
memory budget. Blocking: call from a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from query.sql_guard import Refused, check_resolution, check_syntax
from query.sql_rewrite import cte_names, rewrite
from storage.analytics import Analytics
from storage.errors import BadQuery

SCOPE_DB = "hutch_scoped"
TABLES: dict[str, str] = {
    "telemetry_events": "app",
    "flag_evaluations": "App",
    "otel_logs": "App",
    "otel_traces": "App",
    "otel_traces_trace_id_ts": "App",
    "otel_metrics_gauge": "App",
    "otel_metrics_sum": "App",
    "otel_metrics_histogram": "App",
    "otel_metrics_exponential_histogram": "App",
    "otel_metrics_summary": "App",
}
"""Queryable tables and the column naming each row's app."""

REFRESH_S = 5.0
NO_APPS = [""]
"""Bound when the developer has no app: no app is named "", so every view is empty."""


class SqlError(Exception):
    """ClickHouse refused or stopped the query; `kind` is syntax, timeout, memory or query."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class SqlResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    elapsed_s: float
    truncated: bool


_PREFIX = re.compile(r"^Code: \d+\. DB::Exception: ")
_SCOPE = re.compile(r"[:.]? In scope .*?(?= \([A-Z_]+\)$|$)", re.DOTALL)


def clean(message: str) -> str:
    """ClickHouse's message without its code prefix and the 'In scope <query>' echo."""
    text = _PREFIX.sub("", message.strip())
    text = _SCOPE.sub("", text)
    return text[:1000]


def _kind(exc: BadQuery) -> str:
    if exc.code == 159 or "TIMEOUT_EXCEEDED" in str(exc):
        return "timeout"
    if exc.code == 241 or "MEMORY_LIMIT_EXCEEDED" in str(exc):
        return "memory"
    if exc.code == 62:
        return "syntax"
    return "query"


class ScopedSql:
    def __init__(
        self, analytics: Analytics, *, timeout_s: float, max_memory_bytes: int = 1 << 30
    ) -> None:
        self._analytics = analytics
        self._timeout_s = timeout_s
        self._max_memory = max_memory_bytes
        self._lock = threading.Lock()
        self._views: dict[str, str] = {}
        self._taken: frozenset[str] = frozenset()
        self._database = ""
        self._checked_at = 0.0

    def views(self) -> tuple[dict[str, str], frozenset[str]]:
        """(table -> its scoped view, for the queryable tables that exist; the names of every
        table in the database). Views are (re)made once per process and for tables that
        appear later."""
        with self._lock:
            if time.monotonic() - self._checked_at < REFRESH_S:
                return dict(self._views), self._taken
            if not self._database:
                self._database = str(self._analytics.query("SELECT currentDatabase()").rows[0][0])
                self._analytics.execute(f"CREATE DATABASE IF NOT EXISTS {SCOPE_DB}")
            existing = self._analytics.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase()"
            )
            self._taken = frozenset(str(row[0]) for row in existing.rows)
            for table in sorted(self._taken & TABLES.keys()):
                if table not in self._views:
                    self._analytics.execute(
                        f"CREATE OR REPLACE VIEW {SCOPE_DB}.{table} AS SELECT * FROM "
                        f"`{self._database}`.{table} WHERE {TABLES[table]} IN "
                        "{apps:Array(String)}"
                    )
                    self._views[table] = f"{SCOPE_DB}.{table}"
            self._checked_at = time.monotonic()
            return dict(self._views), self._taken

    def run(
        self, apps: Sequence[str], sql: str, params: Mapping[str, Any], limit: int
    ) -> SqlResult:
        """Raises Refused (a query Hutch will not run) or SqlError (ClickHouse's refusal)."""
        views, taken = self.views()
        bound = sorted(apps) or NO_APPS
        limits = {"max_execution_time": self._timeout_s, "timeout_overflow_mode": "throw"}
        canonical = self._single_statement(sql)
        ctes = cte_names(canonical)
        for name in sorted(ctes & taken):
            raise Refused(f"the WITH name {name} is a table's name; choose another")
        # No settings here: the adapter appends them to the text, where the AST would show them.
        check_syntax(self._explain("AST", canonical, params, {}), views, ctes)
        final = rewrite(canonical, views, bound)
        self._single_statement(final)
        tree = self._explain("QUERY TREE", final, params, {**limits, "enable_analyzer": 1})
        check_resolution(tree, views, bound)
        settings = {
            **limits,
            "enable_analyzer": 1,
            "max_memory_usage": self._max_memory,
            "limit": limit + 1,
            "output_format_json_quote_64bit_integers": 1,
            "additional_table_filters": self.filters(views, bound),
            "readonly": 2,
        }
        try:
            result = self._analytics.query(final, params, settings=settings)
        except BadQuery as exc:
            raise SqlError(_kind(exc), clean(str(exc))) from None
        return SqlResult(
            result.columns,
            result.types,
            result.rows[:limit],
            result.elapsed_s,
            len(result.rows) > limit,
        )

    def _single_statement(self, sql: str) -> str:
        """ClickHouse's canonical text of `sql`, which must parse as one statement."""
        try:
            result = self._analytics.query("SELECT formatQuerySingleLine({q:String})", {"q": sql})
        except BadQuery as exc:
            raise SqlError("syntax", clean(str(exc))) from None
        return str(result.rows[0][0])

    def _explain(
        self, what: str, sql: str, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> str:
        try:
            result = self._analytics.query(f"EXPLAIN {what} {sql}", params, settings=settings)
        except BadQuery as exc:
            raise SqlError(_kind(exc), clean(str(exc))) from None
        return "\n".join(str(row[0]) for row in result.rows)

    def filters(self, views: Mapping[str, str], apps: list[str]) -> str:
        """The additional_table_filters map: each base table filtered to `apps` once more."""
        listed = ", ".join(f"\\'{a}\\'" for a in apps)
        entries = [
            f"'{self._database}.{table}': '{TABLES[table]} IN ({listed})'" for table in views
        ]
        return "{" + ", ".join(entries) + "}"


__all__ = ["TABLES", "Refused", "ScopedSql", "SqlError", "SqlResult"]
