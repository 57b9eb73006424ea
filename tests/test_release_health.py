"""GET /api/apps/{app}/release-health over real uploads, downloads and telemetry: per
version downloads, error and warning rates per thousand downloads or sessions, first seen,
trend, per-day series and `regressed`; the owner's only, and bad parameters refused."""

from __future__ import annotations

import datetime
import time
from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.builds import direct_upload, json_of
from tests.support.documented import assert_documented
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def send(c: httpx.Client, secret: str, events: list[dict[str, Any]]) -> None:
    answer = c.post("/api/telemetry", json=events, headers={"X-Secret": secret})
    assert answer.status_code == 202, answer.text
    time.sleep(0.01)  # each version's events after the one before: first seen orders them


def health(server: Server, token: str, app: str, **params: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.get(f"/api/apps/{app}/release-health", params=params)


def events(kind: str, version: str, n: int, **bits: str) -> list[dict[str, Any]]:
    return [{"kind": kind, "version": version, "bits": dict(bits)} for _ in range(n)]


@pytest.fixture(scope="module")
def rhea(server: Server) -> dict[str, str]:
    """rhea-app: builds downloaded (4 downloads of 1.0.0, 2 of 2.0.0), telemetry without
    sessions, and 3.0.0 seen in telemetry only. rhea-live: sessions, no builds."""
    secret, token = developer_with_app(server.settings, "rhea", "rhea-app")
    live_secret = create_app(server, token, "rhea-live")
    with server.client() as c:
        for version, files in (("1.0.0", 4), ("2.0.0", 2)):
            for i in range(files):
                name = f"rhea-{version}-{i}.apk"
                json_of(direct_upload(c, token, "rhea-app", version, name, name.encode()), 201)
                path = f"/api/apps/rhea-app/versions/{version}/{name}"
                answer = c.get(path, headers={"X-Forwarded-For": f"192.0.2.{i + 1}"})
                assert answer.status_code == 302, answer.text
            time.sleep(0.01)
        send(c, secret, events("error", "1.0.0", 2) + events("warning", "1.0.0", 1))
        send(c, secret, events("error", "2.0.0", 2) + events("info", "2.0.0", 3))
        send(c, secret, events("error", "3.0.0", 1) + events("error", "", 5))
        for version, sessions, errors in (("1.0", 4, 1), ("1.1", 2, 1), ("1.2", 4, 1)):
            batch = [
                {"kind": "info", "version": version, "bits": {"sessionId": f"{version}-s{i}"}}
                for i in range(sessions)
            ]
            batch += events("error", version, errors, sessionId=f"{version}-s0")
            batch += events("warning", version, 1)  # no session: counted, not a session
            send(c, live_secret, batch)
    return {"secret": secret, "token": token}


def create_app(server: Server, token: str, name: str) -> str:
    with server.client(Authorization=f"Bearer {token}") as c:
        answer = c.post("/api/apps", json={"name": name})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["secret"])


def settled(server: Server, token: str, app: str, errors: int, downloads: int = 0) -> Any:
    def probe() -> Any:
        body = health(server, token, app).json()
        rows = body["versions"]
        counted = sum(r["errors"] for r in rows), sum(r["downloads"] for r in rows)
        return body if counted == (errors, downloads) else None

    return eventually(probe)


def test_rates_per_thousand_downloads_and_regressions(server: Server, rhea: dict[str, str]) -> None:
    body = settled(server, rhea["token"], "rhea-app", errors=5, downloads=6)
    assert_documented(body, "ReleaseHealth")
    assert body["app"] == "rhea-app"
    assert body["denominator"] == "downloads"
    assert body["regression"] == {"ratio": 1.5, "minDeltaPerThousand": 1.0}
    rows = {r["version"]: r for r in body["versions"]}
    assert [r["version"] for r in body["versions"]] == ["3.0.0", "2.0.0", "1.0.0"]
    one, two, three = rows["1.0.0"], rows["2.0.0"], rows["3.0.0"]
    assert (one["downloads"], one["downloadsInRange"], one["errors"], one["warnings"]) == (
        4, 4, 2, 1,
    )  # fmt: skip
    assert (one["errorsPerThousand"], one["warningsPerThousand"]) == (500.0, 250.0)
    assert (two["downloads"], two["errors"], two["events"], two["errorsPerThousand"]) == (
        2, 2, 5, 1000.0,
    )  # fmt: skip
    assert two["regressed"] is True
    assert two["previousVersion"] == "1.0.0"
    assert one["regressed"] is False
    assert one["previousVersion"] is None
    assert (three["uploaded"], three["downloads"], three["errorsPerThousand"]) == (False, 0, None)
    assert three["regressed"] is False  # no denominator: no rate to compare
    assert one["uploaded"]
    assert one["firstSeen"] < two["firstSeen"] < three["firstSeen"]
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert one["daily"] == [{"day": today, "errors": 2, "warnings": 1}]
    assert two["trend"] == {"errorsLast7Days": 2, "errorsPrevious7Days": 0, "direction": "up"}


def test_rates_per_thousand_sessions(server: Server, rhea: dict[str, str]) -> None:
    body = settled(server, rhea["token"], "rhea-live", errors=3)
    assert_documented(body, "ReleaseHealth")
    assert body["denominator"] == "sessions"
    rows = [(r["version"], r["sessions"], r["errorsPerThousand"], r["regressed"])
            for r in body["versions"]]  # fmt: skip
    assert rows == [("1.2", 4, 250.0, False), ("1.1", 2, 500.0, True), ("1.0", 4, 250.0, False)]
    assert body["versions"][0]["warningsPerThousand"] == 250.0
    newest = health(server, rhea["token"], "rhea-live", limit="1").json()["versions"]
    assert [(r["version"], r["previousVersion"]) for r in newest] == [("1.2", "1.1")]
    second = health(server, rhea["token"], "rhea-live", limit="2").json()["versions"]
    assert second[1]["regressed"] is True  # compared with 1.0, which is not listed


def test_an_app_without_builds_or_telemetry(server: Server, rhea: dict[str, str]) -> None:
    create_app(server, rhea["token"], "rhea-empty")
    body = health(server, rhea["token"], "rhea-empty", days="1").json()
    assert (body["versions"], body["denominator"]) == ([], "downloads")


def test_a_range_before_the_events_counts_none(server: Server, rhea: dict[str, str]) -> None:
    settled(server, rhea["token"], "rhea-app", errors=5, downloads=6)
    body = health(
        server, rhea["token"], "rhea-app", since="2020-01-01T00:00:00Z", until="2020-02-01"
    ).json()
    assert (body["since"], body["until"]) == (
        "2020-01-01T00:00:00.000Z",
        "2020-02-01T00:00:00.000Z",
    )
    assert body["versions"] == []  # uploaded after the range: not yet seen then


def test_only_the_owner_sees_an_apps_release_health(server: Server, rhea: dict[str, str]) -> None:
    settled(server, rhea["token"], "rhea-app", errors=5, downloads=6)
    _, other = developer_with_app(server.settings, "otto", "otto-app")
    refused = health(server, other, "rhea-app")
    assert (refused.status_code, error_of(refused)["field"]) == (403, "appName")
    assert "1.0.0" not in refused.text
    missing = health(server, other, "no-such-app")
    assert (missing.status_code, error_of(missing)["field"]) == (404, "appName")
    assert health(server, other, "otto-app").json()["versions"] == []
    with server.client() as c:
        anonymous = c.get("/api/apps/rhea-app/release-health")
        assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"days": "0"}, "days", "bad_limit"),
        ({"days": "91"}, "days", "bad_limit"),
        ({"days": "week"}, "days", "bad_limit"),
        ({"limit": "0"}, "limit", "bad_limit"),
        ({"limit": "101"}, "limit", "bad_limit"),
        ({"since": "yesterday"}, "since", "bad_date"),
        ({"until": "2026-13-01"}, "until", "bad_date"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since", "bad_range"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since", "bad_range"),
    ],
)
def test_bad_parameters(
    server: Server, rhea: dict[str, str], params: dict[str, str], field: str, code: str
) -> None:
    answer = health(server, rhea["token"], "rhea-app", **params)
    error = error_of(answer)
    assert (answer.status_code, error["field"], error["code"]) == (400, field, code), error
    assert error["message"]
