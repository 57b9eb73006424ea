"""The analytics conformance suite: chDB and a ClickHouse server must pass it unchanged.

A test module subclasses `AnalyticsConformance` and provides the `analytics` fixture.
Tables get unique names, so a shared server database is fine.
"""

from __future__ import annotations

import uuid

import orjson
import pytest

from storage.analytics import Analytics
from storage.analytics.protocol import EngineInsert
from storage.errors import BadQuery
from tests.support.rowbinary import encode_rows


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


ROW_BINARY_COLUMNS = {
    "app": "String",  # a LowCardinality(String) column takes a String
    "at": "DateTime64(6)",
    "n": "UInt64",
    "attrs": "Map(String, String)",
    "ev.name": "Array(String)",
}


ROW_BINARY_APP = "ü" * 5
"""10 bytes: the rows start with a line feed (its length), which must not be read as the
end of the INSERT statement; and they are not valid UTF-8 as a whole (0xff in n)."""


def row_binary_rows(n: int) -> list[tuple[object, ...]]:
    return [
        (ROW_BINARY_APP, 1795000000_000000 + i, 2**64 - 1 - i, {"k": str(i), "q'": "t\tx"}, ["e"])
        for i in range(n)
    ]


def lines(*objects: object) -> bytes:
    return b" ".join(orjson.dumps(o) for o in objects)


def engine_insert(table: str, **settings: int | str) -> EngineInsert:
    """Rows of `create`'s table made by the engine from lines {"i", "app", "doc"}."""
    return EngineInsert(
        table=table,
        columns=("app", "at", "id", "n", "attrs"),
        select=(
            "SELECT app, fromUnixTimestamp64Micro(1795000000000000 + i, 'UTC'), "
            "toUUID(toString(generateUUIDv4())) , i * {scale:UInt64}, map('doc', doc) "
            "FROM {input} WHERE app != {skipped:String}"
        ),
        structure="i UInt64, app String, doc String",
        params={"scale": 10, "skipped": "it's\tskipped"},
        settings={"input_format_json_read_objects_as_strings": 1, **settings},
    )


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

    def test_an_insert_marks_its_rows(self, analytics: Analytics, table: str) -> None:
        """Each kind of insert hands its marker to the table (projections/sink.py relies on
        it), also with a deduplication token, and a row of an unmarked insert reads ''."""
        create(analytics, table)
        analytics.execute(
            f"ALTER TABLE {table} ADD COLUMN mark String MATERIALIZED getSetting('log_comment')"
        )
        analytics.insert(table, columns(2), dedup_token="c", marker="columns")
        block = encode_rows(ROW_BINARY_COLUMNS, row_binary_rows(3))
        analytics.insert_row_binary(table, block, dedup_token="r", marker="row binary")
        lines = b'{"i":1,"app":"a","doc":{}} {"i":2,"app":"b","doc":{}}'
        analytics.insert_json(engine_insert(table), lines, marker="json 'lines'")
        analytics.insert(table, columns(1))
        result = analytics.query(f"SELECT mark, count() FROM {table} GROUP BY mark ORDER BY mark")
        counts = {mark: int(n) for mark, n in result.rows}
        assert counts == {"": 1, "columns": 2, "json 'lines'": 2, "row binary": 3}

    def test_row_binary_rows_round_trip(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        block = encode_rows(ROW_BINARY_COLUMNS, row_binary_rows(3))
        assert analytics.insert_row_binary(table, block) == 3
        result = analytics.query(
            f"SELECT app, toUnixTimestamp64Micro(at), n, attrs, `ev.name`, tags FROM {table} "
            "ORDER BY at"
        )
        app, at, n, attrs, names, tags = result.rows[2]
        assert (app, int(at), int(n)) == (ROW_BINARY_APP, 1795000000_000002, 2**64 - 3)
        assert (attrs, names) == ({"k": "2", "q'": "t\tx"}, ["e"])
        assert tags == []  # a column the rows leave out takes its default

    def test_row_binary_with_the_same_token_inserts_once(
        self, analytics: Analytics, table: str
    ) -> None:
        create(analytics, table)
        block = encode_rows(ROW_BINARY_COLUMNS, row_binary_rows(4))
        analytics.insert_row_binary(table, block, dedup_token="span-1")
        analytics.insert_row_binary(table, block, dedup_token="span-1")
        analytics.insert_row_binary(table, block, dedup_token="span-2")
        assert analytics.insert_row_binary(table, encode_rows(ROW_BINARY_COLUMNS, [])) == 0
        assert int(analytics.query(f"SELECT count() FROM {table}").rows[0][0]) == 8

    def test_malformed_row_binary_is_a_bad_query(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        block = encode_rows(ROW_BINARY_COLUMNS, row_binary_rows(2))
        cut = block._replace(data=block.data[:-3])
        with pytest.raises(BadQuery):
            analytics.insert_row_binary(table, cut)
        assert int(analytics.query(f"SELECT count() FROM {table}").rows[0][0]) == 0

    def test_settings_apply_to_one_query(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        analytics.insert(table, columns(50))
        with pytest.raises(BadQuery):
            analytics.query(f"SELECT * FROM {table}", settings={"max_result_rows": 10})
        assert len(analytics.query(f"SELECT * FROM {table}").rows) == 50

    def test_a_query_runs_in_the_database_it_names(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        analytics.insert(table, columns(2))
        elsewhere = f"db_{table}"
        analytics.execute(f"CREATE DATABASE {elsewhere}")
        analytics.execute(f"CREATE VIEW {elsewhere}.{table} AS SELECT 'there' AS app")
        found = analytics.query(f"SELECT app FROM {table}", database=elsewhere)
        assert found.rows == [["there"]]
        for _ in range(10):  # every pooled connection is back home afterwards
            assert len(analytics.query(f"SELECT app FROM {table}").rows) == 2
        with pytest.raises(BadQuery):
            analytics.query(f"SELECT app FROM {table}_missing", database=elsewhere)
        assert len(analytics.query(f"SELECT app FROM {table}").rows) == 2
        analytics.execute(f"DROP DATABASE {elsewhere}")

    def test_a_query_stopped_by_its_own_memory_limit_is_a_bad_query(
        self, analytics: Analytics
    ) -> None:
        with pytest.raises(BadQuery, match="emory limit"):
            analytics.query(
                "SELECT groupArray(toString(a)) FROM (SELECT arrayJoin(range(5000000)) AS a)",
                settings={"max_memory_usage": 10_000_000},
            )

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

    def test_insert_json_makes_rows_in_the_engine(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        data = (
            '{"i":1,"app":"a","doc":{"x":1e20,"s":"é\\n"}}\n'
            '{"i":2,"app":"it\'s\\tskipped","doc":{}} '
            '{"i":3,"app":"b","doc":{"y":[1,2.50]},"unknown":true}'
        ).encode()
        assert analytics.insert_json(engine_insert(table), data) == 2
        result = analytics.query(f"SELECT app, toString(n), attrs['doc'] FROM {table} ORDER BY n")
        # An object read into a String keeps its text as sent (numbers are not rewritten).
        assert result.rows == [["a", "10", '{"x":1e20,"s":"é\\n"}'], ["b", "30", '{"y":[1,2.50]}']]

    def test_insert_json_with_the_same_token_inserts_once(
        self, analytics: Analytics, table: str
    ) -> None:
        create(analytics, table)
        data = lines(*({"i": i, "app": "a", "doc": {}} for i in range(20)))
        insert = engine_insert(table)
        assert analytics.insert_json(insert, data, dedup_token="span-1") == 20
        analytics.insert_json(insert, data, dedup_token="span-1")
        analytics.insert_json(insert, data, dedup_token="span-2")
        assert int(analytics.query(f"SELECT count() FROM {table}").rows[0][0]) == 40

    def test_insert_json_skips_lines_only_when_told(self, analytics: Analytics, table: str) -> None:
        create(analytics, table)
        data = lines({"i": 1, "app": "a", "doc": {}}, {"i": "two", "app": "a", "doc": {}})
        with pytest.raises(BadQuery):
            analytics.insert_json(engine_insert(table), data)
        assert int(analytics.query(f"SELECT count() FROM {table}").rows[0][0]) == 0
        tolerant = engine_insert(table, input_format_allow_errors_ratio=1)
        assert analytics.insert_json(tolerant, data) == 1
