"""The SQL endpoint's pure parts: the checks of ClickHouse's canonical text and AST (fed here
with text of the shape ClickHouse prints), and the scope database's names and statements."""

from __future__ import annotations

import pytest

from query.sql_guard import Refused, check_identifiers, check_syntax
from query.sql_scope import literal_list, scope_database, table_filters, view_statement

DATABASES = {"default", "system", "INFORMATION_SCHEMA", "information_schema"}
TABLES = {"telemetry_events", "flag_evaluations"}

AST_SELECT = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier {table}"""


def test_bare_table_names_pass_whatever_they_name() -> None:
    """Which table a bare name reaches is the scope database's business, not the check's."""
    for table in ("telemetry_events", "recent (alias r)", "secret"):
        check_syntax(AST_SELECT.format(table=table), DATABASES, TABLES)


@pytest.mark.parametrize(
    "table",
    [
        "default.telemetry_events",
        "system.tables",
        "hutch_scope_ab.telemetry_events",
        "x.y (alias z)",
    ],
)
def test_a_table_name_with_a_database_is_refused(table: str) -> None:
    with pytest.raises(Refused, match="not a table you can query"):
        check_syntax(AST_SELECT.format(table=table), DATABASES, TABLES)


def test_identifiers_reaching_into_a_database_are_refused() -> None:
    ast = AST_SELECT.format(table="t") + "\n   Identifier system.tables.name"
    with pytest.raises(Refused, match="may not reach into a database"):
        check_syntax(ast, DATABASES, TABLES)
    check_syntax(AST_SELECT.format(table="t") + "\n   Identifier t.name", DATABASES, TABLES)


def test_in_with_a_qualified_table_is_refused() -> None:
    ast = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Function in (children 1)
     ExpressionList (children 2)
      Identifier app
      Identifier elsewhere.t"""
    with pytest.raises(Refused, match=r"IN elsewhere\.t"):
        check_syntax(ast, DATABASES, TABLES)


def test_other_statements_formats_settings_and_table_functions_are_refused() -> None:
    with pytest.raises(Refused, match="only a SELECT"):
        check_syntax("DropQuery  t (children 1)\n Identifier t", DATABASES, TABLES)
    with pytest.raises(Refused, match="FORMAT"):
        check_syntax(AST_SELECT.format(table="t") + "\n Identifier JSON", DATABASES, TABLES)
    with pytest.raises(Refused, match="SETTINGS"):
        check_syntax(AST_SELECT.format(table="t") + "\n   Set", DATABASES, TABLES)
    function = AST_SELECT.replace("TableIdentifier {table}", "Function numbers (children 1)")
    with pytest.raises(Refused, match="table functions"):
        check_syntax(function, DATABASES, TABLES)
    with pytest.raises(Refused, match=r"function dictGet\(\)"):
        check_syntax(
            AST_SELECT.format(table="t") + "\n   Function dictGet (children 1)", DATABASES, TABLES
        )


@pytest.mark.parametrize(
    "canonical",
    [
        "SELECT * FROM `t\\n TableIdentifier system.tables`",
        'SELECT "a\\tb" FROM t',
        "SELECT `a\x01b` FROM t",
        "SELECT * FROM {t:Identifier}",
        "SELECT * FROM t WHERE x = {t: identifier }",
    ],
)
def test_names_that_could_forge_the_tree_are_refused(canonical: str) -> None:
    with pytest.raises(Refused):
        check_identifiers(canonical)


def test_plain_names_strings_and_parameters_pass() -> None:
    check_identifiers("SELECT `a b`, 'x\\n`y\\\\' AS s, {v:String} FROM `telemetry_events`")


def test_a_scope_database_is_named_by_its_app_set() -> None:
    assert scope_database(["b", "a"]) == scope_database(["a", "b", "a"])
    assert scope_database(["a"]) != scope_database(["a", "b"])
    assert scope_database([]).startswith("hutch_scope_")
    assert scope_database(["a\0b"]) != scope_database(["a", "b"])


def test_statements_list_the_apps_as_literals() -> None:
    assert literal_list(["b", "a"]) == "'a', 'b'"
    assert literal_list([]) == "''"
    assert literal_list(["it's"]) == "'it\\'s'"
    view = view_statement("hutch_scope_x", "default", "telemetry_events", ["a"])
    assert view.endswith("FROM `default`.`telemetry_events` WHERE app IN ('a')")
    assert "SQL SECURITY DEFINER" in view
    assert table_filters("default", ["telemetry_events"], ["a"]) == (
        "{'default.telemetry_events': 'app IN (\\'a\\')'}"
    )
