"""The adversarial corpus for POST /api/sql: queries an attacker with a token of their own
would try, each with what the answer must be.

Placeholders: `{t}` a queryable table, `{a}` its owner column (the app's, or the tenant's
for a table of tenants' rows such as job_logs), `{c}` a text expression of a row that holds
the seeded marker. A query may bind `{own:String}`: the attacker's own app, or own tenant, in
`{t}` (the case's `table`). No query names the victim, their app, their tenant or their
markers: an answer that shows them got them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Expect(Enum):
    OWN = "own"
    """200, and the attacker's own rows are in it."""
    EMPTY = "empty"
    """200 with no rows of anyone's."""
    REFUSED = "refused"
    """400 sql_refused: Hutch's checks stop it before anything runs."""
    FAILS = "fails"
    """400 (refused, or the engine's error: e.g. a name the scope database does not have)."""
    SAFE = "safe"
    """200 or 400, whichever; never another's data (error texts as a side channel)."""


@dataclass(frozen=True, slots=True)
class Case:
    sql: str
    expect: Expect
    table: str | None = None
    """The table it was made for (None: a global case)."""


TEXT: dict[str, str] = {
    "telemetry_events": "toString(bits)",
    "flag_evaluations": "toString(Context)",
    "otel_logs": "Body",
    "otel_traces": "SpanName",
    "otel_traces_trace_id_ts": "TraceId",
    "otel_metrics_gauge": "MetricName",
    "otel_metrics_sum": "MetricName",
    "otel_metrics_histogram": "MetricName",
    "otel_metrics_exponential_histogram": "MetricName",
    "otel_metrics_summary": "MetricName",
    "job_logs": "Line",
}
"""Per queryable table, an expression of a row showing its marker."""

OWN = Expect.OWN
PER_TABLE: list[tuple[str, Expect]] = [
    # Plain reads, quoted names, aliases, qualifiers of columns.
    ("SELECT {a}, {c} FROM {t}", OWN),
    ("SELECT * FROM {t}", OWN),
    ("SELECT {a}, {c} FROM `{t}`", OWN),
    ('SELECT {a}, {c} FROM "{t}"', OWN),
    ("SELECT x.{a}, {c} FROM {t} AS x", OWN),
    ("SELECT {t}.{a}, {c} FROM {t}", OWN),
    ("SELECT {a}, {c} FROM {t} AS telemetry_events", OWN),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM {t}))", OWN),
    ("SELECT {a}, {c} FROM {t} ARRAY JOIN [1, 2] AS n", OWN),
    ("SELECT {a}, count() FROM {t} GROUP BY {a} WITH TOTALS", OWN),
    # CTEs, also shadowing table names.
    ("WITH s AS (SELECT * FROM {t}) SELECT {a}, {c} FROM s", OWN),
    ("WITH {t} AS (SELECT * FROM {t}) SELECT {a}, {c} FROM {t}", Expect.SAFE),
    ("WITH otel_logs AS (SELECT * FROM {t}) SELECT {a} FROM otel_logs", OWN),
    ("WITH `default.{t}` AS (SELECT * FROM {t}) SELECT {a} FROM `default.{t}`", Expect.REFUSED),
    ("WITH `default.{t}` AS (SELECT 1) SELECT * FROM default.{t}", Expect.REFUSED),
    (
        "WITH `default.{t}` AS (SELECT 1) SELECT (SELECT groupArray({a}) FROM default.{t})",
        Expect.REFUSED,
    ),
    ("WITH (SELECT groupArray({c}) FROM {t}) AS x SELECT x", OWN),
    # A CTE named like the qualified table in another scope than the read (the reported hole:
    # the analysis ran the scalar subquery over the real table, and its error carried it).
    (
        "SELECT toUInt64((SELECT any({c}) FROM default.{t} WHERE {a} != 'mallory-app')), "
        "(WITH `default.{t}` AS (SELECT 1) SELECT 1)",
        Expect.REFUSED,
    ),
    (
        "SELECT (SELECT toUInt64(any({c})) FROM default.{t} WHERE {a} != 'mallory-app'), "
        "(WITH `default.{t}` AS (SELECT 1) SELECT 1)",
        Expect.REFUSED,
    ),
    (
        "SELECT 1 LIMIT (SELECT toUInt64(any({c})) FROM default.{t} WHERE {a} != 'mallory-app')"
        ", (WITH `default.{t}` AS (SELECT 1) SELECT 1)",
        Expect.REFUSED,
    ),
    (
        "SELECT (SELECT groupArray({c}) FROM default.{t}), "
        "(WITH `default.{t}` AS (SELECT 1) SELECT 1)",
        Expect.REFUSED,
    ),
    (
        "WITH `system.tables` AS (SELECT 1) SELECT toUInt64((SELECT any({c}) FROM "
        "default.{t} WHERE {a} != 'mallory-app'))",
        Expect.REFUSED,
    ),
    # Scalar, correlated and IN subqueries.
    ("SELECT (SELECT groupArray(({a}, {c})) FROM {t})", OWN),
    ("SELECT {a}, (SELECT count() FROM {t} AS i WHERE i.{a} = o.{a}) FROM {t} AS o", OWN),
    ("SELECT {a}, {c} FROM {t} WHERE {a} IN (SELECT {a} FROM {t})", OWN),
    ("SELECT {a}, {c} FROM {t} WHERE {a} GLOBAL IN (SELECT {a} FROM {t})", OWN),
    ("SELECT {a}, {c} FROM {t} WHERE {a} NOT IN (SELECT 'nobody')", OWN),
    ("SELECT {a}, {c} FROM {t} WHERE EXISTS (SELECT 1 FROM {t})", OWN),
    # Unions and joins.
    ("SELECT {a} FROM {t} UNION ALL SELECT {a} FROM {t}", OWN),
    ("SELECT {a} FROM {t} UNION DISTINCT SELECT app FROM telemetry_events", OWN),
    ("SELECT a.{a}, b.{a} FROM {t} AS a JOIN {t} AS b ON a.{a} = b.{a}", OWN),
    ("SELECT a.{a}, e.bits FROM {t} AS a LEFT JOIN telemetry_events AS e ON a.{a} = e.app", OWN),
    ("SELECT * FROM {t} AS a, {t} AS b", OWN),
    ("SELECT a.{a} FROM {t} AS a FULL OUTER JOIN {t} AS b USING ({a})", OWN),
    # Arrays and lambdas.
    ("SELECT arrayMap(x -> concat(x, '!'), groupArray({c})) FROM {t}", OWN),
    ("SELECT arrayJoin([{a}, toString({c})]) FROM {t}", OWN),
    ("SELECT arrayFilter(x -> x != '', groupArray({a})) FROM {t}", OWN),
    # Nothing of anyone else's, whatever the filter says.
    ("SELECT {a}, {c} FROM {t} WHERE {a} != {{own:String}}", Expect.EMPTY),
    ("SELECT {a}, {c} FROM {t} WHERE NOT ({a} IN (SELECT {a} FROM {t}))", Expect.EMPTY),
    # Errors as a side channel.
    ("SELECT toUInt64((SELECT any({c}) FROM {t}))", Expect.SAFE),
    ("SELECT (SELECT toUInt64(any({c})) FROM {t} WHERE {a} != 'mallory-app')", Expect.SAFE),
    ("SELECT 1 LIMIT (SELECT toUInt64(any({c})) FROM {t})", Expect.SAFE),
    ("SELECT toUInt64((SELECT any({c}) FROM {t} WHERE {a} != 'mallory-app'))", Expect.SAFE),
    ("SELECT throwIf(1, (SELECT any(toString({c})) FROM {t}))", Expect.SAFE),
    ("SELECT toDate((SELECT groupArray({a}) FROM {t}))", Expect.SAFE),
    ("SELECT * FROM {t} WHERE toUInt8({c}) = 1", Expect.SAFE),
    ("SELECT CAST((SELECT any({a}) FROM {t}), 'Enum8(\\'x\\' = 1)')", Expect.SAFE),
    ("SELECT {c} FROM {t} FINAL", Expect.SAFE),
    ("SELECT {c} FROM {t} SAMPLE 1 / 2", Expect.SAFE),
    # Other databases, by name or by function.
    ("SELECT * FROM default.{t}", Expect.REFUSED),
    ("SELECT * FROM `default`.`{t}`", Expect.REFUSED),
    ("SELECT * FROM `default.{t}`", Expect.REFUSED),
    ("SELECT (SELECT groupArray({a}) FROM default.{t}) FROM {t}", Expect.REFUSED),
    ("SELECT toUInt64((SELECT any({c}) FROM default.{t} WHERE {a} != 'x'))", Expect.REFUSED),
    ("SELECT * FROM {t} WHERE {a} IN default.{t}", Expect.REFUSED),
    ("SELECT * FROM {t} WHERE {a} GLOBAL IN (SELECT {a} FROM default.{t})", Expect.REFUSED),
    ("SELECT * FROM {t} AS m JOIN default.{t} AS v USING ({a})", Expect.REFUSED),
    ("SELECT {a} FROM {t} UNION ALL SELECT {a} FROM default.{t}", Expect.REFUSED),
    ("SELECT * FROM hutch_scope_00000000000000000000000000000000.{t}", Expect.REFUSED),
    ("SELECT * FROM merge('default', '^{t}$')", Expect.REFUSED),
    ("SELECT * FROM merge(currentDatabase(), '{t}')", Expect.REFUSED),
    ("SELECT * FROM merge(REGEXP('.*'), '{t}')", Expect.REFUSED),
    ("SELECT * FROM cluster('default', default.{t})", Expect.REFUSED),
    ("SELECT * FROM clusterAllReplicas('default', 'default', '{t}')", Expect.REFUSED),
    ("SELECT * FROM remote('127.0.0.1', 'default', '{t}')", Expect.REFUSED),
    ("SELECT * FROM view(SELECT * FROM default.{t})", Expect.REFUSED),
    ("SELECT * FROM loop(default.{t}) LIMIT 1", Expect.REFUSED),
    ("SELECT * FROM mergeTreeIndex('default', '{t}')", Expect.REFUSED),
    ("SELECT joinGet('default.{t}', '{a}', 1)", Expect.REFUSED),
    ("SELECT dictGet('default.{t}', '{a}', 1)", Expect.REFUSED),
    ("SELECT hasColumnInTable('default', '{t}', '{a}')", Expect.REFUSED),
    ("SELECT * FROM (EXPLAIN SELECT * FROM default.{t})", Expect.REFUSED),
    ("SELECT * FROM {t} SETTINGS additional_table_filters = {{}}", Expect.REFUSED),
    ("SELECT * FROM (SELECT * FROM {t} SETTINGS max_threads = 1)", Expect.REFUSED),
]

GLOBAL: list[tuple[str, Expect]] = [
    ("SELECT * FROM system.tables", Expect.REFUSED),
    ("SELECT * FROM system.parts", Expect.REFUSED),
    ("SELECT * FROM system.settings", Expect.REFUSED),
    ("SELECT * FROM system.processes", Expect.REFUSED),
    ("SELECT * FROM system.errors", Expect.REFUSED),
    ("SELECT * FROM system.query_log", Expect.REFUSED),
    ("SELECT * FROM system.databases", Expect.REFUSED),
    ("SELECT * FROM system.one", Expect.REFUSED),
    ("SELECT * FROM `system.tables`", Expect.REFUSED),
    ("SELECT * FROM `system`.tables", Expect.REFUSED),
    ("SELECT * FROM information_schema.tables", Expect.REFUSED),
    ("SELECT * FROM INFORMATION_SCHEMA.COLUMNS", Expect.REFUSED),
    ("SELECT (SELECT groupArray(name) FROM system.tables)", Expect.REFUSED),
    ("SELECT toUInt64((SELECT any(query) FROM system.processes))", Expect.REFUSED),
    ("SELECT toUInt64((SELECT any(last_error_message) FROM system.errors))", Expect.REFUSED),
    ("SELECT 1 WHERE 'x' IN system.tables", Expect.REFUSED),
    ("SELECT system.tables.name FROM telemetry_events", Expect.REFUSED),
    ("SELECT * FROM numbers(10)", Expect.REFUSED),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", Expect.REFUSED),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", Expect.REFUSED),
    ("SELECT file('/etc/passwd')", Expect.REFUSED),
    ("SELECT getSetting('additional_table_filters')", Expect.REFUSED),
    ("SELECT * FROM {p:Identifier}", Expect.REFUSED),
    ("SELECT * FROM `telemetry_events\nTableIdentifier system.tables`", Expect.REFUSED),
    ("SELECT * FROM secret_table", Expect.FAILS),
    ("SELECT (SELECT any(s) FROM secret_table)", Expect.FAILS),
    ("SELECT toUInt64((SELECT any(s) FROM secret_table))", Expect.FAILS),
    ("SELECT * FROM telemetry_events WHERE app IN secret_table", Expect.FAILS),
    ("SELECT * FROM tables", Expect.FAILS),
    ("SELECT * FROM one", Expect.FAILS),
    ("SELECT * FROM databases", Expect.FAILS),
    ("WITH secret_table AS (SELECT 1 AS s) SELECT * FROM secret_table", Expect.SAFE),
    ("SELECT currentDatabase()", Expect.SAFE),
]


def corpus(owner_columns: dict[str, str]) -> list[Case]:
    """Every case, per queryable table (`owner_columns`: table -> its owner column) and
    global."""
    cases = [
        Case(template.format(t=table, a=owner, c=TEXT[table]), expect, table)
        for table, owner in sorted(owner_columns.items())
        for template, expect in PER_TABLE
    ]
    return cases + [Case(sql, expect) for sql, expect in GLOBAL]
