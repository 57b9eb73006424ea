"""The SQL guard's pure parts: the rewrite onto scoped views, CTE names, and the checks of
ClickHouse's AST and query-tree output (fed here with text of the shape ClickHouse prints)."""

from __future__ import annotations

import pytest

from query.sql_guard import Refused, check_resolution, check_syntax
from query.sql_rewrite import cte_names, rewrite

VIEWS = {
    "telemetry_events": "hutch_scoped.telemetry_events",
    "flag_evaluations": "hutch_scoped.flag_evaluations",
}
CALL = "hutch_scoped.telemetry_events(apps = ['a', 'b'])"


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        ("SELECT * FROM telemetry_events", f"SELECT * FROM {CALL} AS telemetry_events"),
        ("SELECT * FROM telemetry_events AS t", f"SELECT * FROM {CALL} AS t"),
        (
            "SELECT telemetry_events.app FROM telemetry_events",
            f"SELECT telemetry_events.app FROM {CALL} AS telemetry_events",
        ),
        ("SELECT 1 AS telemetry_events", "SELECT 1 AS telemetry_events"),
        ("SELECT x.telemetry_events FROM y AS x", "SELECT x.telemetry_events FROM y AS x"),
        ("SELECT 'telemetry_events' AS s", "SELECT 'telemetry_events' AS s"),
        ("SELECT 1 WHERE a IN (telemetry_events)", f"SELECT 1 WHERE a IN (SELECT * FROM {CALL})"),
        ("SELECT 1 WHERE a IN telemetry_events", f"SELECT 1 WHERE a IN (SELECT * FROM {CALL})"),
        ("SELECT * FROM `telemetry_events`", f"SELECT * FROM {CALL} AS telemetry_events"),
    ],
)
def test_rewrite_points_tables_at_scoped_views(canonical: str, expected: str) -> None:
    assert rewrite(canonical, VIEWS, ["a", "b"]) == expected


def test_rewrite_refuses_identifier_parameters_and_shadowing() -> None:
    with pytest.raises(Refused, match="Identifier"):
        rewrite("SELECT * FROM {t:Identifier}", VIEWS, ["a"])
    with pytest.raises(Refused, match="reuse"):
        rewrite("WITH telemetry_events AS (SELECT 1) SELECT 2", VIEWS, ["a"])


def test_cte_names() -> None:
    sql = "WITH a AS (SELECT 1), `b c` AS MATERIALIZED (SELECT 2), 5 AS k SELECT 'x AS (' FROM a"
    assert cte_names(sql) == {"a", "b c"}


AST_SELECT = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier {table}"""


def test_syntax_check_allows_queryable_tables_and_ctes() -> None:
    check_syntax(AST_SELECT.format(table="telemetry_events"), VIEWS, set())
    check_syntax(AST_SELECT.format(table="recent (alias r)"), VIEWS, {"recent"})
    for table in ("secret", "default.telemetry_events", "system.tables"):
        with pytest.raises(Refused, match="not a table you can query"):
            check_syntax(AST_SELECT.format(table=table), VIEWS, set())


def test_syntax_check_refuses_other_statements_and_formats() -> None:
    with pytest.raises(Refused, match="only a SELECT"):
        check_syntax(
            "DropQuery  telemetry_events (children 1)\n Identifier telemetry_events", VIEWS, set()
        )
    with pytest.raises(Refused, match="FORMAT"):
        check_syntax(
            AST_SELECT.format(table="telemetry_events") + "\n Identifier JSON", VIEWS, set()
        )


TREE = """QUERY id: 0
  JOIN TREE
    TABLE_FUNCTION id: 3, alias: __table1, table_function_name: {name}
      ARGUMENTS
        LIST id: 5, nodes: 1
          FUNCTION id: 6, function_name: equals, function_type: ordinary
            ARGUMENTS
              LIST id: 7, nodes: 2
                IDENTIFIER id: 8, identifier: apps
                CONSTANT id: 9, constant_value: Array_[{apps}], constant_value_type: Array(String)"""


def test_resolution_check_wants_scoped_views_bound_to_the_apps() -> None:
    check_resolution(
        TREE.format(name="hutch_scoped.telemetry_events", apps="'a', 'b'"), VIEWS, ["a", "b"]
    )
    with pytest.raises(Refused):
        check_resolution(
            TREE.format(name="hutch_scoped.telemetry_events", apps="'c'"), VIEWS, ["a", "b"]
        )
    with pytest.raises(Refused):
        check_resolution(TREE.format(name="numbers", apps="'a', 'b'"), VIEWS, ["a", "b"])
    direct = (
        "QUERY id: 0\n  JOIN TREE\n    TABLE id: 3, alias: __table1, table_name: default.secret"
    )
    with pytest.raises(Refused, match=r"default\.secret"):
        check_resolution(direct, VIEWS, ["a"])
    one = "QUERY id: 0\n  JOIN TREE\n    TABLE id: 3, alias: __table1, table_name: system.one"
    check_resolution(one, VIEWS, ["a"])
