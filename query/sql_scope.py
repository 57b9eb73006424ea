"""Run one analyst's SELECT so that every table it can reach holds only the caller's rows.

The isolation is built, not recognised: the query runs with a *scope database* as its
current database, `hutch_scope_<hash of the app and tenant sets>`, which holds one view per
queryable table, `SELECT * FROM <db>.<table> WHERE <app column> IN (<the apps>)` (or, for a
table of tenants' rows such as job_logs, `FINAL WHERE Tenant IN (<the tenants>)`), and
nothing else. A bare table name can only resolve there (or to the query's own CTEs), so
whatever the query does with names, aliases, CTEs, subqueries or `IN t`, it reads the
caller's rows or fails with "unknown table". What keeps a name from leaving that database is
checked on ClickHouse's own parse before anything runs (query/sql_guard.py): no name carries
a database, no table functions, no functions reaching outside the tables, no SETTINGS.

Nothing of the caller's is evaluated before the run: the checks read `formatQuerySingleLine`
(the text is a bound parameter) and `EXPLAIN AST` (a parse, bounded by the engine's
max_query_size, max_parser_depth and max_parser_backtracks; no analysis, so no scalar
subquery runs). The one run carries every limit from its first step, the analysis included:

- `readonly = 2`, `max_execution_time`, `max_memory_usage`, `max_result_bytes` and the row
  `limit`, each stopping the query with an error the client must not retry (a 400);
- `additional_table_filters` on every base table: the app (or tenant) filter applied once
  more by the engine to any read of that table, through the views or otherwise.

A scope database's name is a digest of its app set and its tenant set together, and its
views are made from those sets alone, so a database never holds a view for other sets; each
process makes a database's views once (CREATE OR REPLACE) and again for tables that appear
later. On a ClickHouse server, the run can also go as an analyst user granted only the
scope databases (storage/analytics/clickhouse.py, ops/clickhouse/analyst.sql). Blocking:
call from a worker thread.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from query.sql_guard import Refused, check_identifiers, check_syntax
from storage.analytics import Analytics
from storage.errors import BadQuery

SCOPE_PREFIX = "hutch_scope_"
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
    "job_logs": "Tenant",
}
"""Queryable tables and the column naming each row's owner: its app, or its tenant for the
tables in BY_TENANT."""
BY_TENANT: frozenset[str] = frozenset({"job_logs"})
"""Tables whose rows belong to a tenant (CI jobs), not to an app: the caller sees the rows
of the tenants they are a member of."""
FINAL: frozenset[str] = frozenset({"job_logs"})
"""ReplacingMergeTree tables: their views read them FINAL, so a query sees each row once
whether or not the engine has merged the copies yet (a query's own FINAL does not reach
through a view)."""

REFRESH_S = 5.0


class SqlError(Exception):
    """ClickHouse refused or stopped the query; `kind` is syntax, timeout, memory, too_large
    or query."""

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


@dataclass(frozen=True, slots=True)
class Catalog:
    home: str
    """The database holding Hutch's tables."""
    tables: frozenset[str]
    """The queryable tables that exist."""
    databases: frozenset[str]


_PREFIX = re.compile(r"^(Code: \d+\. DB::Exception: )+")
_VERSION = re.compile(r" \(version [0-9.]+[^)]*\)")
_SCOPE = re.compile(r"[:.]? In scope .*?(?= \([A-Z_]+\)$|$)", re.DOTALL)
_KINDS = {159: "timeout", 241: "memory", 396: "too_large", 62: "syntax"}


def clean(message: str) -> str:
    """ClickHouse's message without its code prefix and the 'In scope <query>' echo."""
    text = _PREFIX.sub("", message.strip())
    text = _VERSION.sub("", _SCOPE.sub("", text))
    return text[:1000]


def scope_database(apps: Sequence[str], tenants: Sequence[str] = ()) -> str:
    """The scope database of an app set and a tenant set: the same name for the same sets,
    in any order, and never the same for other sets (each set keeps its own place)."""
    sets = {"apps": sorted(set(apps)), "tenants": sorted(set(tenants))}
    digest = hashlib.sha256(orjson.dumps(sets)).hexdigest()
    return SCOPE_PREFIX + digest[:32]


def literal_list(names: Sequence[str]) -> str:
    """`'a', 'b'` (or `''` for none: no app or tenant is named "", so nothing matches)."""
    listed = sorted(set(names)) or [""]
    return ", ".join("'" + a.replace("\\", "\\\\").replace("'", "\\'") + "'" for a in listed)


def owners(table: str, apps: Sequence[str], tenants: Sequence[str]) -> Sequence[str]:
    """Whose rows of `table` the caller sees: their tenants' or their apps'."""
    return tenants if table in BY_TENANT else apps


def view_statement(
    scope: str, home: str, table: str, apps: Sequence[str], tenants: Sequence[str] = ()
) -> str:
    return (
        f"CREATE OR REPLACE VIEW `{scope}`.`{table}` DEFINER = CURRENT_USER SQL SECURITY "
        f"DEFINER AS SELECT * FROM `{home}`.`{table}`{' FINAL' if table in FINAL else ''} "
        f"WHERE {TABLES[table]} IN "
        f"({literal_list(owners(table, apps, tenants))})"
    )


def table_filters(
    home: str, tables: Sequence[str], apps: Sequence[str], tenants: Sequence[str] = ()
) -> str:
    """The additional_table_filters map: each base table held to `apps` (or `tenants`) by
    the engine."""
    entries = []
    for t in sorted(tables):
        listed = literal_list(owners(t, apps, tenants))
        condition = listed.replace("\\", "\\\\").replace("'", "\\'")
        entries.append(f"'{home}.{t}': '{TABLES[t]} IN ({condition})'")
    return "{" + ", ".join(entries) + "}"


class ScopedSql:
    def __init__(
        self,
        analytics: Analytics,
        *,
        timeout_s: float,
        max_memory_bytes: int = 1 << 30,
        max_result_bytes: int = 64 << 20,
    ) -> None:
        self._analytics = analytics
        self._timeout_s = timeout_s
        self._max_memory = max_memory_bytes
        self._max_result = max_result_bytes
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._checked_at = 0.0
        self._scopes: dict[str, frozenset[str]] = {}
        """Scope database -> the tables it has views for, made by this process."""

    def catalog(self) -> Catalog:
        """The queryable tables and the databases, looked up again every REFRESH_S."""
        with self._lock:
            if self._catalog is None or time.monotonic() - self._checked_at >= REFRESH_S:
                home = str(self._analytics.query("SELECT currentDatabase()").rows[0][0])
                found = self._analytics.query(
                    "SELECT name FROM system.tables WHERE database = currentDatabase()"
                )
                databases = self._analytics.query("SELECT name FROM system.databases")
                self._catalog = Catalog(
                    home,
                    frozenset(str(r[0]) for r in found.rows) & TABLES.keys(),
                    frozenset(str(r[0]) for r in databases.rows),
                )
                self._checked_at = time.monotonic()
            return self._catalog

    def scope(self, apps: Sequence[str], tenants: Sequence[str] = ()) -> tuple[str, Catalog]:
        """The scope database of `apps` and `tenants`, with a view for every queryable
        table."""
        catalog = self.catalog()
        name = scope_database(apps, tenants)
        with self._lock:
            missing = sorted(catalog.tables - self._scopes.get(name, frozenset()))
            if missing:
                self._analytics.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
                for table in missing:
                    statement = view_statement(name, catalog.home, table, apps, tenants)
                    self._analytics.execute(statement)
                self._scopes[name] = catalog.tables | self._scopes.get(name, frozenset())
        return name, catalog

    def run(
        self,
        apps: Sequence[str],
        sql: str,
        params: Mapping[str, Any],
        limit: int,
        *,
        tenants: Sequence[str] = (),
    ) -> SqlResult:
        """The query over the rows of `apps` and of `tenants` (none: no tenant's rows).
        Raises Refused (a query Hutch will not run) or SqlError (ClickHouse's refusal)."""
        scope, catalog = self.scope(apps, tenants)
        canonical = self._single_statement(sql)
        check_identifiers(canonical)
        check_syntax(self._ast(canonical, params), catalog.databases, catalog.tables)
        settings = {
            "readonly": 2,
            "max_execution_time": self._timeout_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self._max_memory,
            "max_result_bytes": self._max_result,
            "result_overflow_mode": "throw",
            "limit": limit + 1,
            "output_format_json_quote_64bit_integers": 1,
            "additional_table_filters": table_filters(
                catalog.home, sorted(catalog.tables), apps, tenants
            ),
        }
        try:
            result = self._analytics.query(canonical, params, settings=settings, database=scope)
        except BadQuery as exc:
            raise SqlError(_KINDS.get(exc.code or 0, "query"), clean(str(exc))) from None
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

    def _ast(self, canonical: str, params: Mapping[str, Any]) -> str:
        # No settings: the adapter would append them to the text, where the AST shows them.
        try:
            result = self._analytics.query(f"EXPLAIN AST {canonical}", params)
        except BadQuery as exc:
            raise SqlError("syntax", clean(str(exc))) from None
        return "\n".join(str(row[0]) for row in result.rows)


__all__ = ["BY_TENANT", "TABLES", "Refused", "ScopedSql", "SqlError", "SqlResult"]
