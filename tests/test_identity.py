"""Developers, apps and tokens: the CLI and the HTTP API, both event-sourced."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid

import pytest

from hutch.runtime import Runtime
from schemas.envelope import new_envelope, now_micros, uuid7
from schemas.identity import TokenCreated, encode
from state.command_context import IDENTITY
from state.relational import catch_up
from tests.support.admin import developer_with_app, hutch
from tests.support.responses import error_of
from tests.support.servers import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def carol(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "carol", "carol-app")
    return {"secret": secret, "token": token}


def test_cli_prints_what_it_created(server: Server) -> None:
    data = server.settings
    code, made = hutch(data, "developer", "create", "dora")
    assert (code, made["developer"], set(made)) == (0, "dora", {"developer", "tenant"})
    assert uuid.UUID(made["tenant"]).version == 7  # the developer's personal tenant
    code, app = hutch(data, "app", "create", "dora-app", "--developer", "dora")
    assert code == 0
    assert app["app"] == "dora-app"
    assert re.fullmatch(r"hs_[0-9a-f]{64}", app["secret"])
    code, token = hutch(
        data, "token", "create", "--developer", "dora", "--name", "ci", "--expires", "1w"
    )
    assert code == 0
    assert re.fullmatch(r"bh_[0-9a-f]{64}", token["token"])
    assert token["name"] == "ci"
    assert token["expiresAt"].endswith("Z")


def test_cli_refuses_duplicates_and_unknown_developers(server: Server) -> None:
    data = server.settings
    hutch(data, "developer", "create", "erin")
    code, again = hutch(data, "developer", "create", "erin")
    assert (code, again["error"]["code"]) == (1, "conflict")
    code, orphan = hutch(data, "app", "create", "orphan-app", "--developer", "nobody")
    assert (code, orphan["error"]["code"]) == (1, "not_found")
    code, bad = hutch(data, "developer", "create", "Not Valid!")
    assert (code, bad["error"]["field"]) == (1, "name")


def test_secrets_and_tokens_are_stored_hashed(server: Server, carol: dict[str, str]) -> None:
    db = server.runtime.db  # type: ignore[attr-defined]
    dump = " ".join(
        str(row) for table in ("apps", "tokens") for row in db.fetchall(f"SELECT * FROM {table}")
    )
    assert carol["secret"] not in dump
    assert carol["token"] not in dump
    assert hashlib.sha256(carol["token"].encode()).hexdigest() in dump


def test_a_new_secret_works_at_once(server: Server) -> None:
    secret, _ = developer_with_app(server.settings, "fay", "fay-app")
    with server.client() as c:
        answer = c.post(
            "/api/telemetry", headers={"X-Secret": secret}, json={"kind": "info", "bits": {}}
        )
    assert answer.status_code == 202


def test_at_most_five_live_tokens(server: Server) -> None:
    data = server.settings
    hutch(data, "developer", "create", "gus")
    for _ in range(4):  # five with the one the sixth request would make: four here plus one below
        assert hutch(data, "token", "create", "--developer", "gus")[0] == 0
    code, fifth = hutch(data, "token", "create", "--developer", "gus")
    assert code == 0
    code, sixth = hutch(data, "token", "create", "--developer", "gus")
    assert code == 1
    assert sixth["error"]["code"] == "token_limit"
    assert "5 live tokens" in sixth["error"]["message"]
    with server.client(Authorization=f"Bearer {fifth['token']}") as c:
        listed = c.get("/api/tokens").json()["tokens"]
        assert len(listed) == 5
        revoked = c.delete(f"/api/tokens/{listed[-1]['id']}")
        assert revoked.status_code == 200
    code, _replacement = hutch(data, "token", "create", "--developer", "gus")
    assert code == 0


def test_tokens_over_http(server: Server, carol: dict[str, str]) -> None:
    with server.client(Authorization=f"Bearer {carol['token']}") as c:
        created = c.post("/api/tokens", json={"name": "deploy", "expires": "2w"})
        assert created.status_code == 201
        body = created.json()
        assert body["name"] == "deploy"
        new_token = body["token"]
        listed = c.get("/api/tokens").json()["tokens"]
        assert {"deploy"} <= {t["name"] for t in listed}
        assert all("token" not in t for t in listed)  # shown once, never listed
        bad = c.post("/api/tokens", json={"expires": "forever"})
        assert (bad.status_code, error_of(bad)["field"]) == (422, "expires")
        assert c.delete(f"/api/tokens/{body['id']}").status_code == 200
    with server.client(Authorization=f"Bearer {new_token}") as c:
        refused = c.get("/api/apps")
    assert (refused.status_code, error_of(refused)["code"]) == (401, "token_revoked")


def test_another_developers_token_cannot_be_revoked(server: Server, carol: dict[str, str]) -> None:
    _, other = developer_with_app(server.settings, "hank", "hank-app")
    with server.client(Authorization=f"Bearer {other}") as c:
        mine = c.get("/api/tokens").json()["tokens"][0]["id"]
    with server.client(Authorization=f"Bearer {carol['token']}") as c:
        answer = c.delete(f"/api/tokens/{mine}")
    assert answer.status_code == 404


def test_apps_over_http(server: Server, carol: dict[str, str]) -> None:
    with server.client(Authorization=f"Bearer {carol['token']}") as c:
        created = c.post("/api/apps", json={"name": "carol-web", "retentionDays": 7})
        assert created.status_code == 201
        assert created.json()["retentionDays"] == 7
        secret = created.json()["secret"]
        names = {a["name"] for a in c.get("/api/apps").json()["apps"]}
        assert names == {"carol-app", "carol-web"}
        taken = c.post("/api/apps", json={"name": "carol-web"})
        assert (taken.status_code, error_of(taken)["code"]) == (409, "conflict")
        bad = c.post("/api/apps", json={"name": "x", "retentionDays": 0})
        assert (bad.status_code, error_of(bad)["field"]) == (422, "retentionDays")
        not_json = c.post("/api/apps", content=b"[1]", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 400
    with server.client() as c:
        status = c.post("/api/auth/status", headers={"X-Secret": secret}).json()
    assert status == {"authenticated": True, "method": "secret", "app": "carol-web"}


def test_an_expired_token_is_refused(server: Server) -> None:
    """A token whose expiry has passed: written as the event a token made a week ago would be."""
    hutch(server.settings, "developer", "create", "ivy")
    token = "bh_" + "e" * 64

    async def append_expired() -> None:
        runtime = Runtime(server.settings)
        await runtime.start()
        created = TokenCreated(
            id=uuid7(),
            developer="ivy",
            name="old",
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            prefix=token[:10],
            expires_at=now_micros() - 1,
        )
        await runtime.log.append(
            "apps", [new_envelope("token.created.v1", encode(created), key="ivy")]
        )
        await catch_up(runtime.log, runtime.db, IDENTITY)
        await runtime.close()

    asyncio.run(append_expired())
    with server.client(Authorization=f"Bearer {token}") as c:
        answer = c.get("/api/telemetry")
    assert (answer.status_code, error_of(answer)["code"]) == (401, "token_expired")


def test_auth_status_says_who_is_calling(server: Server, carol: dict[str, str]) -> None:
    with server.client() as c:
        anonymous = c.get("/api/auth/status").json()
        bearer = c.get(
            "/api/auth/status", headers={"Authorization": f"Bearer {carol['token']}"}
        ).json()
        wrong = c.put("/api/auth/status", headers={"Authorization": "Bearer bh_" + "0" * 64}).json()
    assert anonymous == {"authenticated": False, "method": None}
    assert bearer == {"authenticated": True, "method": "bearer", "developer": "carol"}
    assert wrong["authenticated"] is False
    assert wrong["error"] == "invalid_token"


def test_health_checks_every_store(server: Server) -> None:
    with server.client() as c:
        body = c.get("/api/health").json()
    assert body["message"] == "it works!"
    assert body["id"][14] == "7"
    assert body["db_time"]["Valid"] is True
    assert body["stores"] == {"log": "ok", "relational": "ok", "analytics": "ok"}
    with server.client() as c:
        assert c.get("/api/health").json()["id"] != body["id"]


def test_metrics_count_requests_events_and_rejections(
    server: Server, carol: dict[str, str]
) -> None:
    with server.client() as c:
        c.post(
            "/api/telemetry",
            headers={"X-Secret": carol["secret"]},
            json={"kind": "info", "bits": {}},
        )
        c.post("/api/telemetry", headers={"X-Secret": carol["secret"]}, json={"kind": "nope"})
        text = c.get("/metrics").text
    assert 'hutch_events_appended_total{topic="telemetry"}' in text
    assert 'hutch_http_requests_total{method="POST",route="/api/telemetry",status="202"}' in text
    assert 'hutch_rejected_inputs_total{code="invalid",route="/api/telemetry"}' in text
    assert 'hutch_projector_lag_records{projection="telemetry"}' in text


def test_an_apps_retention_can_be_changed_by_its_owner(
    server: Server, carol: dict[str, str]
) -> None:
    _, other = developer_with_app(server.settings, "kurt", "kurt-app")
    with server.client(Authorization=f"Bearer {carol['token']}") as c:
        changed = c.patch("/api/apps/carol-app", json={"retentionDays": 90})
        assert changed.json() == {"app": "carol-app", "retentionDays": 90}
        listed = {a["name"]: a["retentionDays"] for a in c.get("/api/apps").json()["apps"]}
        assert listed["carol-app"] == 90
        bad = c.patch("/api/apps/carol-app", json={"retentionDays": "forever"})
        assert (bad.status_code, error_of(bad)["field"]) == (400, "retentionDays")
        too_long = c.patch("/api/apps/carol-app", json={"retentionDays": 3651})
        assert (too_long.status_code, error_of(too_long)["field"]) == (422, "retentionDays")
        missing = c.patch("/api/apps/nobody-app", json={"retentionDays": 7})
        assert missing.status_code == 404
    with server.client(Authorization=f"Bearer {other}") as c:
        theirs = c.patch("/api/apps/carol-app", json={"retentionDays": 1})
    assert (theirs.status_code, error_of(theirs)["code"]) == (403, "forbidden")
