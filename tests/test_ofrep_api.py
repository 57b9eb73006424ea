"""OFREP over HTTP: server-side evaluation with the same bucketing as SDKs, the app secret as
credential, bulk ETag / 304."""

from __future__ import annotations

from typing import Any

import pytest

from query.flags.resolution import resolve
from schemas.flags.definitions import parse_flag
from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server

pytestmark = pytest.mark.integration

SPLIT = {
    "enabled": True,
    "description": "a 50/50 split",
    "variants": [
        {"name": "control", "weight": 50, "value": "old"},
        {"name": "treatment", "weight": 50, "value": "new"},
    ],
}


@pytest.fixture(scope="module")
def eve(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "eve", "eve-app")
    with server.client(Authorization=f"Bearer {token}") as c:
        for name, body in [
            ("split", SPLIT),
            ("simple", {"enabled": True}),
            ("half", {"enabled": True, "rollout": 50}),
            ("off", {"enabled": False, "variants": SPLIT["variants"]}),
        ]:
            assert c.put(f"/api/apps/eve-app/flags/{name}", json=body).status_code == 201
    return {"secret": secret, "token": token}


def ofrep(server: Server, path: str, body: Any, **headers: str) -> Any:
    with server.client(**headers) as c:
        return c.post(f"/ofrep/v1/evaluate/flags{path}", json=body)


def test_single_flag_with_each_credential_form(server: Server, eve: dict[str, str]) -> None:
    body = {"context": {"targetingKey": "user-7"}}
    expected = resolve(parse_flag({"name": "split", **SPLIT}), {"targetingKey": "user-7"})
    for headers in (
        {"Authorization": f"Bearer {eve['secret']}"},
        {"X-API-Key": eve["secret"]},
        {"X-Secret": eve["secret"]},
    ):
        answer = ofrep(server, "/split", body, **headers)
        assert answer.status_code == 200, answer.text
        value = {"control": "old", "treatment": "new"}[expected.variant or ""]
        assert answer.json() == {
            "key": "split",
            "reason": "SPLIT",
            "variant": expected.variant,
            "value": value,
            "metadata": {"description": "a 50/50 split"},
        }


def test_server_bucketing_matches_the_sdk_scheme(server: Server, eve: dict[str, str]) -> None:
    defn = parse_flag({"name": "half", "enabled": True, "rollout": 50})
    auth = {"X-Secret": eve["secret"]}
    seen = set()
    for user in (f"u{i}" for i in range(40)):
        answer = ofrep(server, "/half", {"context": {"targetingKey": user}}, **auth).json()
        assert answer["value"] is resolve(defn, {"targetingKey": user}).enabled
        seen.add(answer["value"])
    assert seen == {True, False}


def test_single_flag_errors(server: Server, eve: dict[str, str]) -> None:
    auth = {"X-Secret": eve["secret"]}
    missing = ofrep(server, "/nope", {"context": {}}, **auth)
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")
    no_key = ofrep(server, "/split", {"context": {}}, **auth)
    assert (no_key.status_code, no_key.json()["errorCode"]) == (400, "TARGETING_KEY_MISSING")
    bad_context = ofrep(server, "/split", {"context": [1]}, **auth)
    assert bad_context.json()["errorCode"] == "INVALID_CONTEXT"
    with server.client(**auth) as c:
        broken = c.post(
            "/ofrep/v1/evaluate/flags/split",
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        )
    assert (broken.status_code, broken.json()["errorCode"]) == (400, "PARSE_ERROR")
    assert broken.json()["key"] == "split"
    off = ofrep(server, "/off", {"context": {"targetingKey": "x"}}, **auth).json()
    assert off == {"key": "off", "reason": "DISABLED", "variant": "disabled"}


def test_credentials_are_required_and_per_app(server: Server, eve: dict[str, str]) -> None:
    anonymous = ofrep(server, "/split", {"context": {}})
    assert (anonymous.status_code, error_of(anonymous)["code"]) == (401, "missing_secret")
    wrong = ofrep(server, "/split", {}, Authorization="Bearer hs_wrong")
    assert (wrong.status_code, error_of(wrong)["code"]) == (401, "invalid_secret")
    other_secret, _ = developer_with_app(server.settings, "fred", "fred-app")
    other = ofrep(
        server, "/split", {"context": {"targetingKey": "a"}}, **{"X-Secret": other_secret}
    )
    assert other.status_code == 404  # fred-app has no flag "split": eve's stays hers
    bulk = ofrep(server, "", {"context": {}}, **{"X-Secret": other_secret})
    assert bulk.json() == {"flags": []}


def test_bulk_evaluates_every_flag_with_etag_and_304(server: Server, eve: dict[str, str]) -> None:
    auth = {"X-Secret": eve["secret"]}
    body = {"context": {"targetingKey": "user-1"}}
    first = ofrep(server, "", body, **auth)
    assert first.status_code == 200
    flags = first.json()["flags"]
    assert [f["key"] for f in flags] == ["half", "off", "simple", "split"]
    assert next(f for f in flags if f["key"] == "simple")["value"] is True
    etag = first.headers["etag"]
    same = ofrep(server, "", body, **auth, **{"If-None-Match": etag})
    assert (same.status_code, same.content) == (304, b"")
    # The answer depends on the context, and so does the ETag.
    other = ofrep(
        server, "", {"context": {"targetingKey": "user-2"}}, **auth, **{"If-None-Match": etag}
    )
    assert other.status_code == 200
    assert other.headers["etag"] != etag
    # And on the definitions.
    with server.client(Authorization=f"Bearer {eve['token']}") as c:
        c.put("/api/apps/eve-app/flags/simple", json={"enabled": False})
    changed = ofrep(server, "", body, **auth, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert next(f for f in changed.json()["flags"] if f["key"] == "simple")["value"] is False
    with server.client(**auth) as c:
        broken = c.post(
            "/ofrep/v1/evaluate/flags", content=b"[", headers={"Content-Type": "application/json"}
        )
    assert (broken.status_code, broken.json()["errorCode"]) == (400, "PARSE_ERROR")
