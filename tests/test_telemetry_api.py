"""Telemetry over HTTP, as BuildHut's users call it: send events with an app secret, list them
with a developer token. Real uvicorn, Falcon, SQLite log, projector and chDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.support.admin import developer_with_app, hutch
from tests.support.responses import error_of, list_all
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alice(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "alice", "alice-app")
    _, second = hutch(server.settings, "app", "create", "alice-two", "--developer", "alice")
    return {"secret": secret, "token": token, "second_secret": str(second["secret"])}


@pytest.fixture(scope="module")
def bob(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "bob", "bob-app")
    return {"secret": secret, "token": token}


def send(server: Server, secret: str, body: Any, app: str | None = "alice-app", **kw: Any) -> Any:
    params = {"appName": app} if app else {}
    with server.client() as c:
        return c.post(
            "/api/telemetry",
            params=params,
            headers={"X-Secret": secret, "Content-Type": "application/json", **kw},
            content=orjson.dumps(body),
        )


def listing(server: Server, token: str, **params: str) -> list[dict[str, Any]]:
    with server.client(Authorization=f"Bearer {token}") as c:
        return list_all(c, "/api/telemetry", "events", **params)


def test_an_event_sent_is_listed_with_its_fields(server: Server, alice: dict[str, str]) -> None:
    answer = send(
        server,
        alice["secret"],
        {"kind": "info", "version": "1.0.0", "bits": {"event": "app_opened"}},
    )
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 1}

    def found() -> list[dict[str, Any]]:
        return [e for e in listing(server, alice["token"]) if e["bits"] == {"event": "app_opened"}]

    (event,) = eventually(found)
    assert event["appName"] == "alice-app"
    assert event["kind"] == "info"
    assert event["version"] == "1.0.0"
    assert event["id"][14] == "7"  # a UUIDv7
    received = datetime.fromisoformat(event["receivedAt"])
    assert received.tzinfo is not None
    assert abs(datetime.now(UTC) - received) < timedelta(minutes=1)


def test_an_array_is_accepted_whole(server: Server, alice: dict[str, str]) -> None:
    events = [{"kind": "debug", "version": "2.0.0", "bits": {"batch": i}} for i in range(3)]
    answer = send(server, alice["secret"], events)
    assert (answer.status_code, answer.json()) == (202, {"accepted": 3})
    eventually(lambda: len(listing(server, alice["token"], version="2.0.0")) == 3)


def test_the_secret_may_come_in_the_query_or_the_body(
    server: Server, alice: dict[str, str]
) -> None:
    with server.client() as c:
        by_query = c.post(
            "/api/telemetry",
            params={"appName": "alice-app", "secret": alice["secret"]},
            json={"kind": "trace", "version": "q", "bits": {}},
        )
        by_body = c.post(
            "/api/telemetry",
            json={
                "kind": "trace",
                "version": "b",
                "bits": {},
                "secret": alice["secret"],
                "appName": "alice-app",
            },
        )
    assert by_query.status_code == 202
    assert by_body.status_code == 202


def test_without_app_name_the_secret_names_the_app(server: Server, alice: dict[str, str]) -> None:
    answer = send(
        server, alice["second_secret"], {"kind": "warning", "version": "s", "bits": {}}, app=None
    )
    assert answer.status_code == 202
    events = eventually(lambda: listing(server, alice["token"], appName="alice-two"))
    assert {e["appName"] for e in events} == {"alice-two"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"),
    [
        (b'{"kind": "info",', {}, 400, "malformed_json", None),
        (
            b'{"kind": "info"}',
            {"Content-Type": "text/plain"},
            415,
            "unsupported_media_type",
            "Content-Type",
        ),
        (orjson.dumps({"kind": "fatal", "bits": {}}), {}, 422, "invalid", "kind"),
        (orjson.dumps({"kind": "info", "bits": [1, 2]}), {}, 422, "invalid", "bits"),
        (orjson.dumps({"kind": "info", "bits": {}, "version": 3}), {}, 422, "invalid", "version"),
        (orjson.dumps([{"kind": "info"}] * 1001), {}, 422, "invalid", "body"),
        (orjson.dumps([{"kind": "info"}, {"kind": "nope"}]), {}, 422, "invalid", "[1].kind"),
        (orjson.dumps([]), {}, 422, "invalid", "body"),
        (b"", {}, 400, "empty_body", None),
    ],
)
def test_bad_input_gets_a_clear_error(
    server: Server,
    alice: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    with server.client() as c:
        answer = c.post(
            "/api/telemetry",
            params={"appName": "alice-app"},
            headers={"X-Secret": alice["secret"], "Content-Type": "application/json", **headers},
            content=body,
        )
    assert answer.status_code == status
    error = error_of(answer)
    assert error["code"] == code
    assert error.get("field") == field


def test_a_body_over_one_mebibyte_is_refused(server: Server, alice: dict[str, str]) -> None:
    big = {"kind": "info", "version": "1", "bits": {"blob": "x" * (1024 * 1024)}}
    answer = send(server, alice["secret"], big)
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "payload_too_large"


def test_secrets_are_checked(server: Server, alice: dict[str, str], bob: dict[str, str]) -> None:
    event = {"kind": "info", "version": "1", "bits": {}}
    missing = send(server, "", event)
    assert (missing.status_code, error_of(missing)["code"]) == (401, "missing_secret")
    unknown = send(server, "hs_" + "0" * 64, event)
    assert (unknown.status_code, error_of(unknown)["code"]) == (401, "invalid_secret")
    mismatched = send(server, bob["secret"], event, app="alice-app")
    assert mismatched.status_code == 403
    assert error_of(mismatched)["field"] == "appName"


def test_a_developer_sees_only_their_apps(
    server: Server, alice: dict[str, str], bob: dict[str, str]
) -> None:
    send(
        server,
        bob["secret"],
        {"kind": "error", "version": "bob", "bits": {"who": "bob"}},
        app="bob-app",
    )
    eventually(lambda: listing(server, bob["token"], version="bob"))
    assert all(e["appName"] != "bob-app" for e in listing(server, alice["token"]))
    with server.client(Authorization=f"Bearer {alice['token']}") as c:
        other = c.get("/api/telemetry", params={"appName": "bob-app"})
        unknown = c.get("/api/telemetry", params={"appName": "nobody-app"})
    assert (other.status_code, error_of(other)["code"]) == (403, "forbidden")
    assert unknown.status_code == 404


def test_filters_by_kind_version_and_time(server: Server, alice: dict[str, str]) -> None:
    kinds = ["error", "warning", "info", "error"]
    send(
        server,
        alice["secret"],
        [{"kind": k, "version": "filters", "bits": {"i": i}} for i, k in enumerate(kinds)],
    )
    eventually(lambda: len(listing(server, alice["token"], version="filters")) == 4)
    events = listing(server, alice["token"], version="filters")
    errors_and_warnings = listing(server, alice["token"], version="filters", kind="error,warning")
    assert sorted(e["kind"] for e in errors_and_warnings) == ["error", "error", "warning"]
    stamp = events[0]["receivedAt"]
    assert listing(server, alice["token"], version="filters", since=stamp)
    assert listing(server, alice["token"], version="filters", until=stamp) == []


def test_pages_follow_the_cursor_newest_first_without_repeats(
    server: Server, alice: dict[str, str]
) -> None:
    for batch in range(3):
        send(
            server,
            alice["secret"],
            [
                {"kind": "info", "version": "pages", "bits": {"n": batch * 10 + i}}
                for i in range(10)
            ],
        )
    eventually(lambda: len(listing(server, alice["token"], version="pages")) == 30)
    with server.client(Authorization=f"Bearer {alice['token']}") as c:
        pages = list_all(c, "/api/telemetry", "events", version="pages", limit="7")
        first = c.get("/api/telemetry", params={"version": "pages", "limit": "7"}).json()
    assert len(first["events"]) == 7
    assert first["next"]
    assert len(pages) == 30
    assert len({e["id"] for e in pages}) == 30
    stamps = [e["receivedAt"] for e in pages]
    assert stamps == sorted(stamps, reverse=True)
    assert sorted(e["bits"]["n"] for e in pages) == list(range(30))


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"limit": "0"}, "bad_limit", "limit"),
        ({"limit": "1001"}, "bad_limit", "limit"),
        ({"limit": "ten"}, "bad_limit", "limit"),
        ({"cursor": "not-a-cursor"}, "bad_cursor", "cursor"),
        ({"cursor": "WzEsMl0"}, "bad_cursor", "cursor"),
        ({"since": "yesterday"}, "bad_date", "since"),
        ({"until": "2026-13-01"}, "bad_date", "until"),
        ({"kind": "info,fatal"}, "bad_kind", "kind"),
    ],
)
def test_bad_listing_parameters_are_400(
    server: Server, alice: dict[str, str], params: dict[str, str], code: str, field: str
) -> None:
    with server.client(Authorization=f"Bearer {alice['token']}") as c:
        answer = c.get("/api/telemetry", params=params)
    assert answer.status_code == 400
    error = error_of(answer)
    assert (error["code"], error["field"]) == (code, field)


def test_listing_needs_a_live_token(server: Server, alice: dict[str, str]) -> None:
    with server.client() as c:
        missing = c.get("/api/telemetry")
        malformed = c.get("/api/telemetry", headers={"Authorization": "Bearer nope"})
        unknown = c.get("/api/telemetry", headers={"Authorization": "Bearer bh_" + "a" * 64})
    assert (missing.status_code, error_of(missing)["code"]) == (401, "missing_token")
    assert (malformed.status_code, error_of(malformed)["code"]) == (401, "invalid_token")
    assert (unknown.status_code, error_of(unknown)["code"]) == (401, "invalid_token")
