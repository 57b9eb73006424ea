"""POST /api/sql's limits hold in every step of a query (its analysis included), stop it with
a 400 the client must not retry, and share the engine fairly between developers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

SLOW = (
    "SELECT count() FROM (SELECT arrayJoin(range(20000)) AS a) AS x, "
    "(SELECT arrayJoin(range(200000)) AS b) AS y WHERE a * b % 7 = 3"
)
"""About 4 billion row pairs: far longer than the time limit below."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(
        tmp_path_factory.mktemp("limits") / "data",
        HUTCH_SQL_TIMEOUT="2",
        HUTCH_SQL_MAX_MEMORY=str(256 << 20),
        HUTCH_SQL_MAX_PER_DEVELOPER="1",
        HUTCH_SQL_MAX_CONCURRENT="3",
        HUTCH_SQL_MAX_RESULT_BYTES=str(1 << 20),
    )


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    _, ann = developer_with_app(server.settings, "ann", "ann-app")
    _, bob = developer_with_app(server.settings, "bob", "bob-app")
    return {"ann": ann, "bob": bob}


def ask(server: Server, token: str, text: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.post("/api/sql", json={"sql": text})


def stopped(answer: httpx.Response, code: str) -> dict[str, Any]:
    assert answer.status_code == 400, answer.text
    assert "Retry-After" not in answer.headers
    error = error_of(answer)
    assert (error["code"], error["field"]) == (code, "sql"), error
    return error


@pytest.mark.parametrize(
    "query",
    [
        SLOW,
        f"SELECT ({SLOW})",  # a scalar subquery: the analysis runs it, under the same limit
        f"SELECT 1 LIMIT ({SLOW})",
        f"SELECT 1 WHERE 1 IN ({SLOW})",
    ],
)
def test_a_query_past_its_time_is_stopped(
    server: Server, tokens: dict[str, str], query: str
) -> None:
    started = time.monotonic()
    error = stopped(ask(server, tokens["ann"], query), "sql_timeout")
    assert "Timeout exceeded" in error["message"]
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "query",
    [
        "SELECT groupArray(toString(a)) FROM (SELECT arrayJoin(range(50000000)) AS a)",
        "SELECT (SELECT groupArray(toString(a)) FROM (SELECT arrayJoin(range(50000000)) AS a))",
    ],
)
def test_a_query_past_its_memory_is_stopped(
    server: Server, tokens: dict[str, str], query: str
) -> None:
    error = stopped(ask(server, tokens["ann"], query), "sql_memory")
    assert "memory limit" in error["message"].lower()


def test_a_result_past_its_size_is_stopped(server: Server, tokens: dict[str, str]) -> None:
    query = "SELECT repeat(toString(a), 100000) FROM (SELECT arrayJoin(range(100)) AS a)"
    error = stopped(ask(server, tokens["ann"], query), "sql_too_large")
    assert "Limit for result exceeded" in error["message"]


def test_one_developers_heavy_queries_do_not_refuse_anothers(
    server: Server, tokens: dict[str, str]
) -> None:
    answers: list[httpx.Response] = []
    heavy = threading.Thread(target=lambda: answers.append(ask(server, tokens["ann"], SLOW)))
    heavy.start()
    try:
        time.sleep(0.5)  # for the heavy one to be admitted (it runs for 2 s)
        assert not answers, answers[0].text
        second = ask(server, tokens["ann"], "SELECT 1")
        assert second.status_code == 429, second.text
        assert second.headers["Retry-After"] == "1"
        assert "one developer" in error_of(second)["message"]
        other = ask(server, tokens["bob"], "SELECT 1")
        assert (other.status_code, other.json()["rows"]) == (200, [[1]])
    finally:
        heavy.join(timeout=60)
    stopped(answers[0], "sql_timeout")
    assert ask(server, tokens["ann"], "SELECT 1").status_code == 200  # admitted again


def test_the_limits_are_the_settings(tmp_path: Path) -> None:
    from base.settings import Settings

    settings = Settings.from_env({"HUTCH_DATA": str(tmp_path), "HUTCH_SQL_MAX_PER_DEVELOPER": "3"})
    assert (settings.sql_max_per_developer, settings.sql_max_concurrent) == (3, 4)
    assert (settings.sql_max_memory, settings.sql_max_result_bytes) == (1 << 30, 64 << 20)
