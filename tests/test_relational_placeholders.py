"""The shared SQL's `:name` parameters in psycopg's form, without touching anything else."""

from __future__ import annotations

import pytest

from storage.relational.placeholders import to_pyformat


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t WHERE b = :b", "SELECT a FROM t WHERE b = %(b)s"),
        ("VALUES (:p, :t_2)", "VALUES (%(p)s, %(t_2)s)"),
        ("SELECT :v::bigint", "SELECT %(v)s::bigint"),
        ("SELECT x::text, y ::int", "SELECT x::text, y ::int"),
        ("SELECT '10:30 :no' || :yes", "SELECT '10:30 :no' || %(yes)s"),
        ("SELECT 'it''s :no', :yes", "SELECT 'it''s :no', %(yes)s"),
        ("SELECT E'it\\'s :no', :yes", "SELECT E'it\\'s :no', %(yes)s"),
        ('SELECT "odd:name" FROM t', 'SELECT "odd:name" FROM t'),
        ("SELECT $$ :no $$, $t$ :no $t$, :yes", "SELECT $$ :no $$, $t$ :no $t$, %(yes)s"),
        ("SELECT 1 -- :no\n, :yes", "SELECT 1 -- :no\n, %(yes)s"),
        ("SELECT /* :no /* nested */ :no */ :yes", "SELECT /* :no /* nested */ :no */ %(yes)s"),
        ("SELECT 5 % 3, 'a%b' LIKE :p", "SELECT 5 %% 3, 'a%%b' LIKE %(p)s"),
        ("SELECT 1 -- 100%", "SELECT 1 -- 100%%"),
        ("SELECT ':' || :a", "SELECT ':' || %(a)s"),
        ("SELECT 'unclosed :x", "SELECT 'unclosed :x"),
    ],
)
def test_parameters_become_pyformat(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


def test_a_lone_colon_is_kept() -> None:
    assert to_pyformat("SELECT a[1:2], : x") == "SELECT a[1:2], : x"
