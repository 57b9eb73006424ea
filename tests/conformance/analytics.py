"""The analytics conformance suite: chDB and a ClickHouse server must pass it unchanged.

A test module subclasses `AnalyticsConformance` and provides the `analytics` fixture.
Tables get unique names, so a shared server database is fine.
"""

from __future__ import annotations

import uuid

import pytest

from storage.analytics import Analytics
from storage.errors import BadQuery


def create(analytics: Analytics, table: str) -> None:
    analytics.execute(
        f"""CREATE TABLE {table} (
            app LowCardinality(String),
            at DateTime64(6, 'UTC'),
            id UUID,
            n UInt64,
            attrs Map(LowCardinality(String), String),
            tags Array(String),
            `ev.name` Array(String),
            `ev.n` Array(UInt32)
        ) ENGINE = MergeTree ORDER BY (app, at)
        SETTINGS non_replicated_deduplication_window = 100"""
    )


def columns(n: int, app: str = "a") -> dict[str, list[object]]:
    return {
        "app": [app] * n,
        "at": [f"1795000000.{i:06d}" for i in range(n)],
        "id": [str(uuid.UUID(int=i + 1)) for i in range(n)],
        "n": [2**63 + i for i in range(n)],
        "attrs": [{"k": str(i), "quote'd": "tab\there"} for i in range(n)],
        "tags": [["x", str(i)] for i in range(n)],
        "ev.name": [["e1", "e2"] for _ in range(n)],
        "ev.n": [[1, 2] for _ in range(n)],
    }


class AnalyticsConformance:
    @pytest.fixture
    def analytics(self) -> Analytics:
        raise NotImplementedError

    @pytest.fixture
    def table(self) -> str:
        return f"conformance_{uuid.uuid4().hex[:12]}"

    def test_insert_then_query_round_trips_every_type(
        self, analytics: Analytics, table: str
    ) -> None:
        create(analytics, table)
        assert analytics.insert(table, columns(3)) == 3
        result = analytics.query(
            f"SELECT app, toUnixTimestamp64Micro(at), toString(id), n, attrs, tags, `ev.name`, "
            f"`ev.n` FROM {table} ORDER BY at"
        )
        assert result.columns[0] == "app"
        assert result.types[3] == "UInt64"
        first = result.rows[0]
        assert first[0] == "a"
        assert int(first[1]) == 1795000000_000000
        assert first[2] == "00000000-0000-0000-0000-000000000001"
        assert int(first[3]) == 2**63
        assert first[4] == {"k": "0", "quote'd": "tab\there"}
        assert first[5] == ["x", "0"]
        assert first[6] == ["e1", "e2"]
        assert first[7] == [1, 2]

    def test_parameters_are_bound_not_spliced(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        analytics.insert(table, columns(2, app="it's\ta \\ app"))
        analytics.insert(table, columns(1, app="other"))
        result = analytics.query(
            f"SELECT count() FROM {table} WHERE app = {{app:String}}", {"app": "it's\ta \\ app"}
        )
        assert int(result.rows[0][0]) == 2
        result = analytics.query(
            f"SELECT count() FROM {table} "
            "WHERE app IN {apps:Array(String)} AND n >= {n:UInt64}",
            {"apps": ["other", "it's\ta \\ app"], "n": 2**63},
        )
        assert int(result.rows[0][0]) == 3

    def test_the_same_dedup_token_inserts_once(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        analytics.insert(table, columns(5), dedup_token="batch-1")
        analytics.insert(table, columns(5), dedup_token="batch-1")
        analytics.insert(table, columns(5), dedup_token="batch-2")
        assert int(analytics.query(f"SELECT count() FROM {table}").rows[0][0]) == 10

    def test_settings_apply_to_one_query(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        analytics.insert(table, columns(50))
        with pytest.raises(BadQuery):
            analytics.query(f"SELECT * FROM {table}", settings={"max_result_rows": 10})
        assert len(analytics.query(f"SELECT * FROM {table}").rows) == 50

    def test_bad_sql_is_a_bad_query(self, analytics: Analytics, table: str) -> None:
        with pytest.raises(BadQuery):
            analytics.query("SELEC 1")
        with pytest.raises(BadQuery):
            analytics.query(f"SELECT * FROM {table}_missing")

    def test_empty_insert_writes_nothing(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        assert analytics.insert(table, {"app": []}) == 0

    def test_ping_gives_the_time(self, analytics: Analytics) -> None:
        assert analytics.ping()[:2] == "20"
