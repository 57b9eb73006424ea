"""The ClickHouse server adapter passes the analytics conformance suite.

It runs against tests/support/clickhouse_standin.py (ClickHouse's HTTP interface in front of
chDB, in a process of its own) always, and against a real server too when CLICKHOUSE_URL is set
(`clickhouse://user:pw@host:8123/db`). No ClickHouse server can be installed on the machines
these tests run on, so that variant is skipped when the variable is unset, even under CI=true:
the stand-in is what CI exercises.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hutch.wiring import open_analytics
from storage.analytics import Analytics
from storage.analytics.clickhouse import ClickHouseAnalytics, ClickHouseConfig
from storage.errors import BadQuery, Unavailable
from tests.conformance.analytics import AnalyticsConformance, columns, create
from tests.support.clickhouse import DATABASE, PASSWORD, USER, StandIn
from tests.support.servers import free_port
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    server = StandIn(free_port(), tmp_path_factory.mktemp("clickhouse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["standin", "server"])
def target_url(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        url = os.environ.get("CLICKHOUSE_URL", "")
        if not url:
            # Not need_service: CI cannot install a ClickHouse server here, so no failure.
            pytest.skip("no ClickHouse server here: set CLICKHOUSE_URL")
        return url
    standin: StandIn = request.getfixturevalue("standin")
    return standin.url


class TestClickHouseAnalytics(AnalyticsConformance):
    @pytest.fixture
    def analytics(self, target_url: str) -> Iterator[Analytics]:
        store = ClickHouseAnalytics.from_url(target_url)
        yield store
        store.close()


@pytest.fixture
def table() -> str:
    return f"clickhouse_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(target_url: str) -> Iterator[ClickHouseAnalytics]:
    analytics = ClickHouseAnalytics.from_url(target_url)
    yield analytics
    analytics.close()


def test_a_large_array_parameter_is_bound(store: ClickHouseAnalytics, table: str) -> None:
    # Parameters over 4 KiB leave the URL for a multipart form body.
    create(store, table)
    store.insert(table, columns(2, app="needle"))
    haystack = [f"app-{i:05d}-'\t\\" for i in range(2000)] + ["needle"]
    result = store.query(
        f"SELECT count() FROM {table} WHERE app IN {{apps:Array(String)}}", {"apps": haystack}
    )
    assert int(result.rows[0][0]) == 2


def test_a_query_without_placeholders_keeps_its_percent_signs(store: ClickHouseAnalytics) -> None:
    result = store.query("SELECT '100%' LIKE '%0\\%'", {"unused": 1})
    assert result.rows == [[1]]


def test_an_unknown_table_is_a_bad_query_with_its_code(store: ClickHouseAnalytics) -> None:
    with pytest.raises(BadQuery) as raised:
        store.query("SELECT * FROM no_such_table_here")
    assert raised.value.code == 60  # UNKNOWN_TABLE


def test_wrong_credentials_make_the_store_unavailable(standin: StandIn) -> None:
    store = ClickHouseAnalytics.from_url(f"clickhouse://hutch:wrong@127.0.0.1:{standin.port}/")
    with pytest.raises(Unavailable, match="Authentication failed"):
        store.ping()


def test_queries_in_a_named_database_go_as_the_analyst_user(standin: StandIn) -> None:
    """With sql_user set, POST /api/sql's queries (those naming their database) use those
    credentials and no others: here they are wrong, so only those fail."""
    store = ClickHouseAnalytics.from_url(standin.url + "?sql_user=analyst&sql_password=nope")
    try:
        assert store.query("SELECT 1").rows == [[1]]
        with pytest.raises(Unavailable, match="Authentication failed"):
            store.query("SELECT 1", database=DATABASE)
    finally:
        store.close()
    same = ClickHouseAnalytics.from_url(standin.url)
    try:
        assert same.query("SELECT currentDatabase()", database="system").rows == [["system"]]
    finally:
        same.close()


def test_nothing_listening_is_unavailable() -> None:
    store = ClickHouseAnalytics.from_url(f"clickhouse://127.0.0.1:{free_port()}/?connect_timeout=2")
    with pytest.raises(Unavailable):
        store.query("SELECT 1")
    with pytest.raises(Unavailable):
        store.insert("t", {"a": [1]})


def test_a_query_outlasting_the_read_timeout_is_unavailable(standin: StandIn) -> None:
    store = ClickHouseAnalytics.from_url(standin.url + "?send_receive_timeout=1")
    try:
        with pytest.raises(Unavailable):
            store.query("SELECT sleep(2)")
    finally:
        store.close()


def test_a_server_restart_is_unavailable_then_recovers(tmp_path: Path, table: str) -> None:
    server = StandIn(free_port(), tmp_path)
    server.start()
    store = ClickHouseAnalytics.from_url(server.url)
    try:
        create(store, table)
        store.insert(table, columns(3), dedup_token="t1")
        server.stop()
        with pytest.raises(Unavailable):
            store.query(f"SELECT count() FROM {table}")
        with pytest.raises(Unavailable):
            store.insert(table, columns(3), dedup_token="t2")
        server.start()
        store.insert(table, columns(3), dedup_token="t2")  # the retry, after the outage
        assert int(store.query(f"SELECT count() FROM {table}").rows[0][0]) == 6
    finally:
        store.close()
        server.stop()


def test_a_closed_store_is_unavailable(store: ClickHouseAnalytics) -> None:
    store.close()
    with pytest.raises(Unavailable):
        store.query("SELECT 1")


def test_urls_give_the_connection_settings() -> None:
    config = ClickHouseConfig.from_url(
        "clickhouse://u:p%40ss@ch.internal:9000/events?secure=1&send_receive_timeout=30"
    )
    assert (config.host, config.port, config.username, config.password) == (
        "ch.internal",
        9000,
        "u",
        "p@ss",
    )
    assert (config.database, config.secure, config.send_receive_timeout_s) == ("events", True, 30)
    tls = ClickHouseConfig.from_url("clickhouses://ch")
    assert (tls.port, tls.secure, tls.username, tls.database) == (8443, True, "default", "default")
    with pytest.raises(ValueError, match="unknown ClickHouse URL options: compresion"):
        ClickHouseConfig.from_url("clickhouse://ch/?compresion=1")


def test_the_settings_open_a_clickhouse_store_without_connecting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, HUTCH_ANALYTICS=f"clickhouse://127.0.0.1:{free_port()}/db")
    store = open_analytics(settings)
    assert isinstance(store, ClickHouseAnalytics)
    store.close()


def test_the_standin_serves_clickhouse_connects_own_insert_and_query(
    standin: StandIn, table: str
) -> None:
    # Guards the stand-in itself: the driver's default path (Native blocks, lz4-compressed
    # inserts, a session id, typed results) works against it as against a server.
    import clickhouse_connect

    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=standin.port, username=USER, password=PASSWORD, database=DATABASE
    )
    try:
        client.command(f"CREATE TABLE {table} (n UInt32, s LowCardinality(String)) ENGINE = Log")
        client.insert(table, [[1, "a"], [2, "b"]], column_names=["n", "s"])
        assert client.query(f"SELECT n, s FROM {table} ORDER BY n").result_rows == [
            (1, "a"),
            (2, "b"),
        ]
    finally:
        client.close()


def test_values_bind_in_the_text_form_chdb_gets(store: ClickHouseAnalytics) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    result = store.query(
        "SELECT toString({at:DateTime64(6, 'UTC')}), {none:Nullable(String)} IS NULL, "
        "{flag:Bool}, {names:Array(Nullable(String))}",
        {"at": at, "none": None, "flag": True, "names": ["a", None]},
    )
    assert result.rows == [["2026-01-02 03:04:05.123456", 1, True, ["a", None]]]
