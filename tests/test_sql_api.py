"""POST /api/sql: one read-only SELECT that sees only the developer's own apps' rows.

Two developers share the store; every hostile query below runs as one of them and must either
be refused with a clear 400 or answer without a trace of the other's rows (each of the other's
rows carries the marker OTHER-ROW, and its app name is never ours).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from query.sql_scope import ScopedSql, SqlError, table_filters
from schemas.clickhouse import load
from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MARK = "OTHER-ROW"


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    data = server.settings
    mine_secret, token = developer_with_app(data, "quinn", "quinn-one")
    developer_with_app(data, "quinn", "quinn-two")  # a second app of the same developer
    theirs_secret, theirs_token = developer_with_app(data, "rex", "rex-app")
    _, lonely_token = developer_with_app(data, "sol", "sol-app")
    for secret, bits, n in ((mine_secret, {"who": "quinn"}, 3), (theirs_secret, {"who": MARK}, 5)):
        with server.client(**{"X-Secret": secret}) as c:
            events = [{"kind": "info", "version": "1.0.0", "bits": bits}] * n
            assert c.post("/api/telemetry", json=events).status_code == 202
            report = {"flagName": "f", "enabled": True, "context": {"note": str(bits["who"])}}
            assert c.post("/v1/flags/eval", json={"evaluations": [report]}).status_code == 202
    # A table outside the allow-list, holding the other developer's secret.
    analytics = server.runtime.analytics  # type: ignore[attr-defined]
    analytics.execute(
        "CREATE TABLE IF NOT EXISTS secret_table (app String, s String) "
        "ENGINE = MergeTree ORDER BY app"
    )
    analytics.insert("secret_table", {"app": ["rex-app"], "s": [MARK]})

    def projected() -> bool:
        counts = [
            [int(n) for n in sql(server, t, "SELECT (SELECT count() FROM telemetry_events), "
                "(SELECT count() FROM flag_evaluations)").json()["rows"][0]]
            for t in (token, theirs_token)
        ]  # fmt: skip
        return counts == [[3, 1], [5, 1]]

    eventually(projected)
    return {"token": token, "theirs": theirs_token, "lonely": lonely_token}


def sql(server: Server, token: str, text: str, **extra: Any) -> Any:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.post("/api/sql", json={"sql": text, **extra})


def rows(server: Server, token: str, text: str, **extra: Any) -> list[list[Any]]:
    answer = sql(server, token, text, **extra)
    assert answer.status_code == 200, answer.text
    assert MARK not in answer.text
    assert "rex-app" not in answer.text
    return list(answer.json()["rows"])


def test_a_select_answers_with_columns_types_and_rows(
    server: Server, world: dict[str, Any]
) -> None:
    answer = sql(
        server, world["token"], "SELECT app, count() AS n FROM telemetry_events GROUP BY app"
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == [
        {"name": "app", "type": "LowCardinality(String)"},
        {"name": "n", "type": "UInt64"},
    ]
    assert body["rows"] == [["quinn-one", "3"]]
    assert (body["rowCount"], body["truncated"]) == (1, False)
    assert body["elapsedMs"] >= 0


def test_row_limit_truncates(server: Server, world: dict[str, Any]) -> None:
    body = sql(server, world["token"], "SELECT arrayJoin(range(100)) AS n", limit=10).json()
    assert (body["rowCount"], body["truncated"], body["limit"]) == (10, True, 10)
    assert [r[0] for r in body["rows"]] == [str(i) for i in range(10)] or body["rows"][0] == [0]
    bad = sql(server, world["token"], "SELECT 1", limit=10**9)
    assert (bad.status_code, error_of(bad)["field"]) == (400, "limit")


def test_text_bodies_and_params(server: Server, world: dict[str, Any]) -> None:
    with server.client(Authorization=f"Bearer {world['token']}") as c:
        text = c.post(
            "/api/sql",
            content=b"SELECT count() FROM telemetry_events",
            headers={"Content-Type": "text/plain"},
        )
    assert text.json()["rows"] == [["3"]]
    bound = rows(
        server,
        world["token"],
        "SELECT count() FROM telemetry_events WHERE version = {v:String}",
        params={"v": "1.0.0"},
    )
    assert bound == [["3"]]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT app, count() FROM telemetry_events GROUP BY app",
        "SELECT * FROM telemetry_events WHERE app = 'rex-app'",
        "SELECT * FROM telemetry_events WHERE app IN ('rex-app', 'quinn-one')",
        "SELECT count() FROM (SELECT * FROM telemetry_events)",
        "SELECT (SELECT groupArray(bits) FROM telemetry_events)",
        "WITH x AS (SELECT * FROM telemetry_events) SELECT bits FROM x",
        "WITH x AS (SELECT * FROM telemetry_events), y AS (SELECT * FROM x) SELECT * FROM y",
        'SELECT bits FROM "telemetry_events"',
        "SELECT bits FROM `telemetry_events`",
        "SELECT telemetry_events.bits FROM telemetry_events",
        "SELECT t.bits FROM telemetry_events AS t",
        "SELECT bits FROM telemetry_events UNION ALL SELECT bits FROM telemetry_events",
        "SELECT app FROM telemetry_events UNION DISTINCT SELECT App FROM flag_evaluations",
        "SELECT t.app, f.FlagName, f.Context FROM telemetry_events AS t "
        "JOIN flag_evaluations AS f ON t.app = f.App",
        "SELECT * FROM telemetry_events AS a, telemetry_events AS b",
        "SELECT t.bits FROM telemetry_events AS t GLOBAL LEFT JOIN flag_evaluations AS f "
        "ON t.app = f.App",
        "SELECT * FROM flag_evaluations WHERE App IN (SELECT app FROM telemetry_events)",
        "SELECT count() FROM flag_evaluations WHERE (App, FlagName) IN "
        "(SELECT App, FlagName FROM flag_evaluations)",
        "SELECT * FROM flag_evaluations WHERE Context['note'] = 'OTHER-ROW'",
        "SELECT count() FROM telemetry_events WHERE (app, received_at, id, kind, version, bits, "
        "retention_days) IN telemetry_events",
        "SELECT min(received_at), max(received_at), count(), any(app) FROM telemetry_events",
        "SELECT * FROM (SELECT 1 AS x) AS telemetry_events",
        "SELECT 1 /* ; SELECT * FROM secret_table */",
        "SELECT * FROM telemetry_events -- ; DROP TABLE telemetry_events",
        "SELECT arrayJoin([app, bits]) FROM telemetry_events",
        "SELECT bits, count() OVER (PARTITION BY app) FROM telemetry_events",
    ],
)
def test_queries_see_only_the_developers_rows(
    server: Server, world: dict[str, Any], query: str
) -> None:
    """The other's rows never show, and the caller's own do: a scope that answered nothing
    would fail here."""
    answer = rows(server, world["token"], query)
    if query in EXACT:
        assert answer == EXACT[query]
    else:
        assert "quinn" in str(answer) or answer in ([["3"]], [["1"]]), answer


EXACT: dict[str, Any] = {
    "SELECT * FROM telemetry_events WHERE app = 'rex-app'": [],
    "SELECT * FROM flag_evaluations WHERE Context['note'] = 'OTHER-ROW'": [],
    "SELECT * FROM (SELECT 1 AS x) AS telemetry_events": [[1]],
    "SELECT 1 /* ; SELECT * FROM secret_table */": [[1]],
}
"""Queries whose answer holds no name: what it must be exactly."""


def test_the_other_developer_sees_their_own(server: Server, world: dict[str, Any]) -> None:
    answer = sql(server, world["theirs"], "SELECT bits FROM telemetry_events")
    assert answer.json()["rowCount"] == 5
    assert MARK in answer.text


def test_a_developer_without_apps_sees_nothing(server: Server, world: dict[str, Any]) -> None:
    assert rows(server, world["lonely"], "SELECT count() FROM telemetry_events") == [["0"]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        # Other databases, system tables, tables outside the allow-list.
        ("SELECT * FROM default.telemetry_events", "sql_refused"),
        ("SELECT * FROM `default`.`telemetry_events`", "sql_refused"),
        ("SELECT * FROM `default.telemetry_events`", "sql_refused"),
        ('SELECT * FROM "default"."telemetry_events"', "sql_refused"),
        (
            "SELECT bits FROM telemetry_events UNION ALL SELECT bits FROM default.telemetry_events",
            "sql_refused",
        ),
        ("SELECT name FROM system.tables", "sql_refused"),
        ("SELECT * FROM system.one", "sql_refused"),
        ("SELECT * FROM information_schema.tables", "sql_refused"),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "sql_refused"),
        ("SELECT * FROM secret_table", "sql_error"),
        ("SELECT * FROM telemetry_events WHERE app IN secret_table", "sql_error"),
        ("SELECT * FROM telemetry_events WHERE app GLOBAL NOT IN (secret_table)", "sql_error"),
        ("SELECT * FROM telemetry_events WHERE EXISTS (SELECT * FROM secret_table)", "sql_error"),
        (
            "SELECT count() FROM telemetry_events WHERE app IN (SELECT app FROM secret_table)",
            "sql_error",
        ),
        (
            "SELECT * FROM telemetry_events WHERE app IN (SELECT name FROM system.databases)",
            "sql_refused",
        ),
        ("WITH (SELECT groupArray(s) FROM secret_table) AS x SELECT x", "sql_error"),
        # A bare name resolves in the caller's scope database, which has no such table.
        ("SELECT (SELECT groupArray(s) FROM secret_table)", "sql_error"),
        ("SELECT throwIf(1, (SELECT any(s) FROM secret_table))", "sql_error"),
        (
            "SELECT (SELECT groupArray(s) FROM secret_table), "
            "(WITH secret_table AS (SELECT 1 AS s) SELECT 1)",
            "sql_error",
        ),
        ("SELECT * FROM hutch_scoped.telemetry_events", "sql_refused"),
        ("SELECT * FROM hutch_scoped.telemetry_events(apps = ['rex-app'])", "sql_refused"),
        (
            "WITH telemetry_events AS (SELECT * FROM secret_table) SELECT * FROM telemetry_events",
            "sql_error",
        ),
        # Table functions, harmless or not.
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "sql_refused"),
        ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", "sql_refused"),
        ("SELECT * FROM remote('127.0.0.1', default.telemetry_events)", "sql_refused"),
        ("SELECT * FROM merge(currentDatabase(), 'telemetry')", "sql_refused"),
        ("SELECT * FROM numbers(10)", "sql_refused"),
        ("SELECT * FROM view(SELECT * FROM secret_table)", "sql_refused"),
        ("SELECT * FROM generateRandom('a Int8') LIMIT 1", "sql_refused"),
        ("SELECT * FROM telemetry_events AS t JOIN numbers(3) AS n ON 1", "sql_refused"),
        # Functions that reach outside the tables.
        ("SELECT file('/etc/passwd')", "sql_refused"),
        ("SELECT dictGet('d', 'x', toUInt64(1))", "sql_refused"),
        ("SELECT joinGet('secret_table', 's', 'rex-app')", "sql_refused"),
        ("SELECT getSetting('additional_table_filters')", "sql_refused"),
        ("SELECT count() FROM telemetry_events WHERE sleepEachRow(1) = 0", "sql_refused"),
        # Settings, formats, files.
        ("SELECT * FROM telemetry_events SETTINGS additional_table_filters = {}", "sql_refused"),
        ("SELECT 1 SETTINGS readonly = 0", "sql_refused"),
        ("SELECT * FROM (SELECT * FROM telemetry_events SETTINGS max_threads = 1)", "sql_refused"),
        ("SELECT 1 FORMAT TSV", "sql_refused"),
        ("SELECT 1 INTO OUTFILE '/tmp/hutch-sql-test'", "sql_refused"),
        ("SELECT * FROM {t:Identifier}", "sql_refused"),
        # Anything but one SELECT.
        ("SELECT 1; SELECT 2", "sql_syntax"),
        ("SELECT 1; DROP TABLE telemetry_events", "sql_syntax"),
        ("SELECT 1 -- x\n; DROP TABLE telemetry_events", "sql_syntax"),
        ("INSERT INTO telemetry_events (app) VALUES ('quinn-one')", "sql_refused"),
        ("ALTER TABLE telemetry_events DELETE WHERE 1", "sql_refused"),
        ("DROP TABLE telemetry_events", "sql_refused"),
        ("TRUNCATE TABLE telemetry_events", "sql_refused"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "sql_refused"),
        ("CREATE VIEW v AS SELECT * FROM secret_table", "sql_refused"),
        ("SET readonly = 0", "sql_refused"),
        ("SYSTEM DROP DNS CACHE", "sql_refused"),
        ("OPTIMIZE TABLE telemetry_events", "sql_refused"),
        ("SHOW TABLES", "sql_refused"),
        ("DESCRIBE TABLE secret_table", "sql_refused"),
        ("EXPLAIN SELECT * FROM secret_table", "sql_refused"),
        ("EXISTS TABLE secret_table", "sql_refused"),
        ("USE system", "sql_refused"),
        ("KILL QUERY WHERE 1", "sql_refused"),
        ("GRANT ALL ON *.* TO default", "sql_refused"),
        ("SELEC 1", "sql_syntax"),
    ],
)
def test_hostile_queries_are_refused(
    server: Server, world: dict[str, Any], query: str, code: str
) -> None:
    answer = sql(server, world["token"], query, params={"t": "secret_table"})
    assert answer.status_code == 400, answer.text
    assert "Retry-After" not in answer.headers
    error = error_of(answer)
    assert (error["code"], error["field"]) == (code, "sql")
    assert MARK not in answer.text
    assert "rex-app" not in answer.text


def test_the_store_is_unharmed(server: Server, world: dict[str, Any]) -> None:
    for query in ("SELECT 1; DROP TABLE telemetry_events", "DROP TABLE telemetry_events"):
        sql(server, world["token"], query)
    assert rows(server, world["token"], "SELECT count() FROM telemetry_events") == [["3"]]


def test_bad_requests(server: Server, world: dict[str, Any]) -> None:
    with server.client(Authorization=f"Bearer {world['token']}") as c:
        assert error_of(c.post("/api/sql", json={"sql": ""}))["field"] == "sql"
        assert error_of(c.post("/api/sql", json={"query": "SELECT 1"}))["field"] == "sql"
        assert error_of(c.post("/api/sql", json={"sql": "SELECT 1", "params": [1]}))["field"] == (
            "params"
        )
        nested = c.post("/api/sql", json={"sql": "SELECT 1", "params": {"x": {"a": 1}}})
        assert error_of(nested)["field"] == "params.x"
        unknown = c.post("/api/sql", json={"sql": "SELECT nope FROM telemetry_events"})
        assert (unknown.status_code, error_of(unknown)["code"]) == (400, "sql_error")
        xml = c.post("/api/sql", content=b"<q/>", headers={"Content-Type": "application/xml"})
        assert xml.status_code == 415
    with server.client() as anonymous:
        assert anonymous.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 401


def test_queries_time_out(server: Server, world: dict[str, Any]) -> None:
    scoped = ScopedSql(server.runtime.analytics, timeout_s=0.001)  # type: ignore[attr-defined]
    heavy = "SELECT sum(cityHash64(toString(number))) FROM (SELECT arrayJoin(range(50000000)) AS number)"
    with pytest.raises(SqlError) as caught:
        scoped.run(["quinn-one"], heavy, {}, 10)
    assert caught.value.kind == "timeout"


def test_the_base_tables_are_filtered_a_second_time(server: Server, world: dict[str, Any]) -> None:
    """Even a scope view showing the wrong apps would not show them: the run's
    additional_table_filters hold the base table to the developer's apps."""
    analytics = server.runtime.analytics  # type: ignore[attr-defined]
    catalog = ScopedSql(analytics, timeout_s=5).catalog()
    wrong = "SELECT DISTINCT app FROM (SELECT * FROM default.telemetry_events)"
    assert sorted(r[0] for r in analytics.query(wrong).rows) == ["quinn-one", "rex-app"]
    filters = table_filters(catalog.home, sorted(catalog.tables), ["quinn-one"])
    filtered = analytics.query(wrong, settings={"additional_table_filters": filters})
    assert filtered.rows == [["quinn-one"]]


def test_a_scope_database_holds_only_its_apps_views(server: Server, world: dict[str, Any]) -> None:
    analytics = server.runtime.analytics  # type: ignore[attr-defined]
    scope, catalog = ScopedSql(analytics, timeout_s=5).scope(["quinn-one"])
    listed = analytics.query(
        "SELECT name, engine FROM system.tables WHERE database = {d:String} ORDER BY name",
        {"d": scope},
    )
    assert listed.rows == [[t, "View"] for t in sorted(catalog.tables)]
    seen = analytics.query(f"SELECT DISTINCT app FROM `{scope}`.telemetry_events")
    assert seen.rows == [["quinn-one"]]


def test_a_query_over_a_developers_own_rows_may_use_final(
    server: Server, world: dict[str, Any]
) -> None:
    assert rows(server, world["token"], "SELECT count() FROM telemetry_events FINAL") == [["3"]]


def test_otel_tables_are_scoped_by_app_too(server: Server, world: dict[str, Any]) -> None:
    analytics = server.runtime.analytics  # type: ignore[attr-defined]
    analytics.execute(load("otel_logs", retention_days=30))
    now = f"{time.time():.9f}"
    analytics.insert(
        "otel_logs",
        {
            "App": ["quinn-one", "rex-app"],
            "Timestamp": [now, now],
            "Body": ["mine", MARK],
        },
    )
    scoped = ScopedSql(analytics, timeout_s=5)  # a fresh one sees the new table at once
    result = scoped.run(["quinn-one", "quinn-two"], "SELECT App, Body FROM otel_logs", {}, 100)
    assert result.rows == [["quinn-one", "mine"]]
