"""Release health and flag impact run within the limits of POST /api/sql (HUTCH_SQL_TIMEOUT,
HUTCH_SQL_MAX_MEMORY, query/analytics_bounds.py): an aggregation that reaches one is a 503
`query_too_heavy` asking for a narrower range, never a 500 or a 400. A module of its own:
chDB opens one data directory per process, so this server cannot run beside another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose aggregations may use 64 KiB (HUTCH_SQL_MAX_MEMORY bounds them too)."""
    data = tmp_path_factory.mktemp("tight") / "data"
    yield from serve_in_thread(data, HUTCH_SQL_MAX_MEMORY=str(64 << 10))


def test_an_aggregation_over_its_memory_bound_is_a_503(tight: Server) -> None:
    secret, token = developer_with_app(tight.settings, "tess", "tess-app")
    with tight.client() as c:
        batch = [
            {"kind": "error", "version": f"1.{i % 50}", "bits": {"sessionId": f"s{i}"}}
            for i in range(1000)
        ]
        assert c.post("/api/telemetry", json=batch, headers={"X-Secret": secret}).status_code == 202
    with tight.client(Authorization=f"Bearer {token}") as c:
        eventually(lambda: c.get("/api/telemetry", params={"limit": "1"}).json()["events"])
        answers = [c.get("/api/apps/tess-app/release-health"), c.get("/api/flags/any/impact")]
    for answer in answers:
        error = error_of(answer)
        assert (answer.status_code, error["code"]) == (503, "query_too_heavy"), answer.text
        assert "narrow the time range" in error["message"]
