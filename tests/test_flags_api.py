"""Feature flags over HTTP and the CLI: definitions as events, GET /v1/flags with ETag / 304,
evaluation reports, per-app scoping."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from hutch.wiring import open_log
from storage.log import Record
from tests.support.admin import developer_with_app, hutch
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

DARK_MODE = {"enabled": True, "rollout": 50, "description": "the dark theme"}
CHECKOUT = {
    "enabled": True,
    "variants": [{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}],
    "rules": [
        {
            "constraints": [{"contextName": "country", "operator": "IN", "values": ["NZ"]}],
            "variant": "green",
        }
    ],
}


@pytest.fixture(scope="module")
def alice(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "alice", "alice-app")
    return {"secret": secret, "token": token, "app": "alice-app"}


@pytest.fixture(scope="module")
def bob(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "bob", "bob-app")
    return {"secret": secret, "token": token, "app": "bob-app"}


def bearer(who: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {who['token']}"}


def put(server: Server, who: dict[str, str], name: str, body: Any, app: str | None = None) -> Any:
    with server.client(**bearer(who)) as c:
        return c.put(f"/api/apps/{app or who['app']}/flags/{name}", json=body)


def test_define_replace_read_and_delete(server: Server, alice: dict[str, str]) -> None:
    created = put(server, alice, "dark_mode", DARK_MODE)
    assert created.status_code == 201, created.text
    assert created.json()["flag"] == {
        "name": "dark_mode",
        "description": "the dark theme",
        "enabled": True,
        "rollout": 50,
        "stickiness": "default",
        "variants": [],
        "rules": [],
    }
    assert created.json()["updatedBy"] == "alice"
    again = put(server, alice, "dark_mode", {"name": "dark_mode", **DARK_MODE})
    assert again.status_code == 200
    assert again.json()["updatedAt"] == created.json()["updatedAt"]  # nothing was appended
    changed = put(server, alice, "dark_mode", {**DARK_MODE, "rollout": 75})
    assert changed.status_code == 200
    assert changed.json()["flag"]["rollout"] == 75
    assert put(server, alice, "checkout", CHECKOUT).status_code == 201
    with server.client(**bearer(alice)) as c:
        listing = c.get("/api/apps/alice-app/flags").json()
        assert [f["flag"]["name"] for f in listing["flags"]] == ["checkout", "dark_mode"]
        one = c.get("/api/apps/alice-app/flags/checkout")
        assert one.status_code == 200
        assert one.json()["flag"]["variants"] == CHECKOUT["variants"]
        # What GET shows can be PUT back unchanged.
        assert (
            c.put("/api/apps/alice-app/flags/checkout", json=one.json()["flag"]).status_code == 200
        )
        assert c.delete("/api/apps/alice-app/flags/checkout").json() == {
            "app": "alice-app",
            "deleted": "checkout",
        }
        gone = c.get("/api/apps/alice-app/flags/checkout")
        assert (gone.status_code, error_of(gone)["field"]) == (404, "name")
        again_gone = c.delete("/api/apps/alice-app/flags/checkout")
        assert again_gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"enabled": "yes"}, 422, "invalid_flag", "enabled"),
        ({"enabled": True, "rolout": 5}, 422, "invalid_flag", "rolout"),
        ({"enabled": True, "rollout": 101}, 422, "invalid_flag", "rollout"),
        ({"name": "other", "enabled": True}, 422, "unprocessable", "name"),
        (
            {
                "enabled": True,
                "rules": [{"constraints": [{"contextName": "x", "operator": "NOPE"}]}],
            },
            422,
            "invalid_flag",
            "rules[0].constraints[0].operator",
        ),
        ([1, 2], 422, "invalid_flag", None),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(
    server: Server,
    alice: dict[str, str],
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    answer = put(server, alice, "bad_flag", body)
    error = error_of(answer)
    assert (answer.status_code, error["code"], error.get("field")) == (status, code, field)


def test_bad_names_and_bodies(server: Server, alice: dict[str, str]) -> None:
    bad_name = put(server, alice, "-nope", DARK_MODE)
    assert (bad_name.status_code, error_of(bad_name)["field"]) == (422, "name")
    with server.client(**bearer(alice)) as c:
        broken = c.put(
            "/api/apps/alice-app/flags/x",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
    assert (broken.status_code, error_of(broken)["code"]) == (400, "malformed_json")


def test_developers_cannot_touch_each_others_flags(
    server: Server, alice: dict[str, str], bob: dict[str, str]
) -> None:
    assert put(server, bob, "bobs_flag", {"enabled": True}).status_code == 201
    refused = put(server, alice, "bobs_flag", {"enabled": False}, app="bob-app")
    assert (refused.status_code, error_of(refused)["field"]) == (403, "app")
    invalid_too = put(server, alice, "bobs_flag", {"enabled": "?"}, app="bob-app")
    assert invalid_too.status_code == 403  # ownership is checked before the body
    with server.client(**bearer(alice)) as c:
        assert c.get("/api/apps/bob-app/flags").status_code == 403
        assert c.get("/api/apps/bob-app/flags/bobs_flag").status_code == 403
        assert c.delete("/api/apps/bob-app/flags/bobs_flag").status_code == 403
        missing = c.get("/api/apps/no-such-app/flags")
        assert missing.status_code == 404
    assert put(server, alice, "x", {"enabled": True}, app="no-such-app").status_code == 404
    with server.client() as anonymous:
        answer = anonymous.put("/api/apps/bob-app/flags/bobs_flag", json={"enabled": False})
        assert (answer.status_code, error_of(answer)["code"]) == (401, "missing_token")
    with server.client(**bearer(bob)) as c:
        assert c.get("/api/apps/bob-app/flags/bobs_flag").json()["flag"]["enabled"] is True


def test_cli_sets_lists_and_deletes(server: Server) -> None:
    data = server.settings
    developer_with_app(data, "cleo", "cleo-app")
    code, out = hutch(
        data, "flag", "set", "cleo-app", "beta", "--developer", "cleo", "--enabled",
        "--rollout", "25",
    )  # fmt: skip
    assert code == 0, out
    assert (out["created"], out["flag"]["rollout"], out["flag"]["enabled"]) == (True, 25, True)
    definition = orjson.dumps({"enabled": True, "variants": [{"name": "a", "weight": 1}]})
    code, out = hutch(
        data, "flag", "set", "cleo-app", "beta", "--developer", "cleo",
        "--json", definition.decode(), "--disabled",
    )  # fmt: skip
    assert code == 0, out
    assert out["created"] is False
    assert out["flag"]["enabled"] is False  # the option wins over the JSON
    assert out["flag"]["variants"] == [{"name": "a", "weight": 1}]
    code, listing = hutch(data, "flag", "list", "cleo-app", "--developer", "cleo")
    assert [f["flag"]["name"] for f in listing["flags"]] == ["beta"]
    code, bad = hutch(data, "flag", "set", "cleo-app", "x", "--developer", "cleo", "--json", "{")
    assert (code, bad["error"]["code"]) == (1, "invalid_flag")
    code, bad = hutch(data, "flag", "set", "cleo-app", "x", "--developer", "cleo")
    assert (code, bad["error"]["field"]) == (1, "enabled")
    code, other = hutch(data, "flag", "delete", "alice-app", "dark_mode", "--developer", "cleo")
    assert (code, other["error"]["code"]) == (1, "forbidden")
    assert hutch(data, "flag", "delete", "cleo-app", "beta", "--developer", "cleo")[0] == 0


# GET /v1/flags ---------------------------------------------------------------------------------


def sdk_flags(server: Server, who: dict[str, str], **headers: str) -> Any:
    with server.client(**{"X-Secret": who["secret"], **headers}) as c:
        return c.get("/v1/flags", params={"appName": who["app"]})


def test_sdk_gets_definitions_with_an_etag_and_304(server: Server, bob: dict[str, str]) -> None:
    assert put(server, bob, "etag_flag", {"enabled": True}).status_code in (200, 201)
    first = sdk_flags(server, bob)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, no-cache"
    etag = first.headers["etag"]
    assert etag[0] == etag[-1] == '"'  # strong: no W/
    body = first.json()
    assert body["appName"] == "bob-app"
    assert "etag_flag" in [f["name"] for f in body["flags"]]
    assert all(set(f) >= {"name", "enabled", "rollout", "variants", "rules"} for f in body["flags"])
    same = sdk_flags(server, bob, **{"If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    weak = sdk_flags(server, bob, **{"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    assert sdk_flags(server, bob, **{"If-None-Match": "*"}).status_code == 304
    assert sdk_flags(server, bob, **{"If-None-Match": '"f1-0-0"'}).status_code == 200
    # Setting the same definition appends nothing: the ETag holds.
    assert put(server, bob, "etag_flag", {"enabled": True}).status_code == 200
    assert sdk_flags(server, bob, **{"If-None-Match": etag}).status_code == 304
    # A change gives a new ETag; the old one no longer matches.
    assert put(server, bob, "etag_flag", {"enabled": False}).status_code == 200
    changed = sdk_flags(server, bob, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert next(f for f in changed.json()["flags"] if f["name"] == "etag_flag")["enabled"] is False


def test_a_change_from_the_cli_reaches_sdks(server: Server) -> None:
    secret, _ = developer_with_app(server.settings, "dan", "dan-app")
    dan = {"secret": secret, "app": "dan-app"}
    empty = sdk_flags(server, dan)
    assert empty.json() == {"appName": "dan-app", "flags": []}
    data = server.settings
    hutch(data, "flag", "set", "dan-app", "cli_flag", "--developer", "dan", "--enabled")

    def changed() -> Any:
        answer = sdk_flags(server, dan, **{"If-None-Match": empty.headers["etag"]})
        return answer if answer.status_code == 200 else None

    assert [f["name"] for f in eventually(changed).json()["flags"]] == ["cli_flag"]


def test_sdk_definitions_are_per_app(
    server: Server, alice: dict[str, str], bob: dict[str, str]
) -> None:
    put(server, bob, "only_bob", {"enabled": True})
    names = [f["name"] for f in sdk_flags(server, alice).json()["flags"]]
    assert "only_bob" not in names
    with server.client(**{"X-Secret": alice["secret"]}) as c:
        other = c.get("/v1/flags", params={"appName": "bob-app"})
        assert (other.status_code, error_of(other)["field"]) == (403, "appName")
    with server.client() as c:
        missing = c.get("/v1/flags", params={"appName": "bob-app"})
        assert (missing.status_code, error_of(missing)["code"]) == (401, "missing_secret")
        wrong = c.get("/v1/flags", params={"secret": "hs_nope"})
        assert (wrong.status_code, error_of(wrong)["code"]) == (401, "invalid_secret")


# POST /v1/flags/eval ---------------------------------------------------------------------------


def report(server: Server, who: dict[str, str], body: Any) -> Any:
    with server.client(**{"X-Secret": who["secret"]}) as c:
        return c.post("/v1/flags/eval", json=body)


def test_evaluations_are_accepted_and_unknown_flags_named(
    server: Server, alice: dict[str, str]
) -> None:
    put(server, alice, "dark_mode", DARK_MODE)
    before = len(flags_topic(server))
    answer = report(
        server,
        alice,
        {
            "evaluations": [
                {"flagName": "dark_mode", "enabled": True},
                {"flagName": "gone_flag", "enabled": False, "context": {"userId": "abc"}},
                {"flagName": "gone_flag", "enabled": True},
                {"flagName": "new_dashboard", "enabled": False, "future_field": 1},
            ]
        },
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 4, "unknown": ["gone_flag", "new_dashboard"]}
    # One event for the request, holding every report (unknown ones too).
    records = [
        r
        for r in flags_topic(server)[before:]
        if r.envelope.app == "alice-app" and r.envelope.type == "flag.evaluations.v1"
    ]
    assert len(records) == 1
    payload = orjson.loads(records[0].envelope.payload)
    assert payload["app"] == "alice-app"
    assert len(payload["evaluations"]) == 4
    assert payload["unknown"] == ["gone_flag", "new_dashboard"]
    empty = report(server, alice, {"evaluations": []})
    assert empty.json() == {"accepted": 0, "unknown": []}


def flags_topic(server: Server) -> list[Record]:
    """Every record of the `flags` topic, read through a log of its own."""

    async def read() -> list[Record]:
        log = open_log(server.settings)
        await log.start()
        try:
            return [
                r
                for p in await log.partitions("flags")
                for r in await log.read("flags", p, 0, 100_000)
            ]
        finally:
            await log.close()

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "evaluations"),
        ({"evaluations": {}}, "evaluations"),
        ({"evaluations": [{"flagName": "x"}]}, "evaluations[0].enabled"),
        ({"evaluations": [{"enabled": True}]}, "evaluations[0].flagName"),
        ({"evaluations": [{"flagName": "x", "enabled": 1}]}, "evaluations[0].enabled"),
        (
            {"evaluations": [{"flagName": "x", "enabled": True, "context": {"a": {"b": 1}}}]},
            "evaluations[0].context.a",
        ),
    ],
)
def test_bad_reports_are_refused_naming_the_field(
    server: Server, alice: dict[str, str], body: Any, field: str
) -> None:
    answer = report(server, alice, body)
    assert (answer.status_code, error_of(answer)["field"]) == (422, field)


def test_reports_need_the_apps_secret(server: Server, alice: dict[str, str]) -> None:
    with server.client() as c:
        answer = c.post("/v1/flags/eval", json={"evaluations": []})
        assert answer.status_code == 401
        other = c.post(
            "/v1/flags/eval?appName=bob-app",
            json={"evaluations": []},
            headers={"X-Secret": alice["secret"]},
        )
        assert other.status_code == 403
