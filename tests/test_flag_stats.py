"""Evaluation reports land in ClickHouse; GET /api/flags/{name}/stats counts exposures per
time bucket, variant, enabled state and app version, for the developer's own apps only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gina(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "gina", "gina-app")
    reports = [
        {
            "flagName": "banner",
            "enabled": True,
            "variant": "red",
            "context": {"appVersion": "1.0.0"},
        },
        {
            "flagName": "banner",
            "enabled": True,
            "variant": "red",
            "context": {"appVersion": "1.0.0"},
        },
        {"flagName": "banner", "enabled": True, "variant": "blue", "context": {"version": "2.0.0"}},
        {"flagName": "banner", "enabled": False, "context": {"userId": "u1"}},
        {"flagName": "other", "enabled": True},
    ]
    with server.client(**{"X-Secret": secret}) as c:
        assert c.post("/v1/flags/eval", json={"evaluations": reports}).status_code == 202
    return {"secret": secret, "token": token}


def stats(server: Server, token: str, name: str, **params: str) -> Any:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.get(f"/api/flags/{name}/stats", params=params)


def test_exposures_per_bucket_variant_and_version(server: Server, gina: dict[str, str]) -> None:
    def counted() -> Any:
        body = stats(server, gina["token"], "banner", appName="gina-app").json()
        return body if body["total"]["exposures"] == 4 else None

    body = eventually(counted)
    assert body["apps"] == ["gina-app"]
    assert body["bucket"] == "1h"
    assert body["total"] == {
        "exposures": 4,
        "enabled": 3,
        "disabled": 1,
        "variants": {"red": 2, "blue": 1},
    }
    assert len(body["buckets"]) == 1
    bucket = body["buckets"][0]
    assert bucket["start"].endswith(":00:00.000Z")
    assert bucket["exposures"] == 4
    assert body["versions"] == [
        {"version": "1.0.0", "exposures": 2, "enabled": 2, "disabled": 0, "variants": {"red": 2}},
        {"version": None, "exposures": 1, "enabled": 0, "disabled": 1, "variants": {}},
        {"version": "2.0.0", "exposures": 1, "enabled": 1, "disabled": 0, "variants": {"blue": 1}},
    ]
    minutes = stats(server, gina["token"], "banner", bucket="1m").json()
    assert minutes["total"]["exposures"] == 4
    assert sum(b["exposures"] for b in minutes["buckets"]) == 4


def test_stats_are_scoped_to_the_developers_apps(server: Server, gina: dict[str, str]) -> None:
    eventually(lambda: stats(server, gina["token"], "banner").json()["total"]["exposures"] == 4)
    _, token = developer_with_app(server.settings, "hank", "hank-app")
    theirs = stats(server, token, "banner").json()
    assert theirs["apps"] == ["hank-app"]
    assert theirs["total"]["exposures"] == 0
    refused = stats(server, token, "banner", appName="gina-app")
    assert (refused.status_code, error_of(refused)["field"]) == (403, "appName")
    with server.client() as c:
        assert c.get("/api/flags/banner/stats").status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "1y"}, "bucket"),
        ({"bucket": "0m"}, "bucket"),
        ({"bucket": "32d"}, "bucket"),
        ({"bucket": "1s", "since": "2020-01-01T00:00:00Z"}, "bucket"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_parameters(
    server: Server, gina: dict[str, str], params: dict[str, str], field: str
) -> None:
    answer = stats(server, gina["token"], "banner", **params)
    assert (answer.status_code, error_of(answer)["field"]) == (400, field)
