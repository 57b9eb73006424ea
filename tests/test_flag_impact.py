"""GET /api/flags/{name}/impact over real evaluation reports and telemetry: per variant the
exposures, the users exposed, and the error rate of those users' telemetry after their first
exposure, against users never exposed; the developer's own apps only."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.documented import assert_documented
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def evaluate(c: httpx.Client, secret: str, flag: str, variant: str | None, user: str) -> None:
    report: dict[str, Any] = {"flagName": flag, "enabled": variant != "off"}
    if variant not in (None, "off"):
        report["variant"] = variant
    if user:
        report["context"] = {"userId": user}
    answer = c.post("/v1/flags/eval", json={"evaluations": [report]}, headers={"X-Secret": secret})
    assert answer.status_code == 202, answer.text


def telemetry(c: httpx.Client, secret: str, user: str, errors: int, others: int) -> None:
    bits = {"userId": user} if user else {"screen": "home"}
    batch = [{"kind": "error", "version": "1.0", "bits": bits}] * errors
    batch += [{"kind": "info", "version": "1.0", "bits": bits}] * others
    answer = c.post("/api/telemetry", json=batch, headers={"X-Secret": secret})
    assert answer.status_code == 202, answer.text


def impact(server: Server, token: str, flag: str, **params: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.get(f"/api/flags/{flag}/impact", params=params)


@pytest.fixture(scope="module")
def fay(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "fay", "fay-app")
    with server.client(Authorization=f"Bearer {token}") as c:
        other = c.post("/api/apps", json={"name": "fay-other"})
        assert other.status_code == 201, other.text
        other_secret = str(other.json()["secret"])
    with server.client() as c:
        telemetry(c, secret, "u1", errors=1, others=0)  # before u1's exposure: not counted
        time.sleep(0.05)
        for variant, user in (("new", "u1"), ("new", "u1"), ("new", "u2"), ("new", ""),
                              ("old", "u3"), ("old", "u4")):  # fmt: skip
            evaluate(c, secret, "checkout", variant, user)
        evaluate(c, secret, "plain", None, "u5")
        evaluate(c, secret, "plain", "off", "u6")
        time.sleep(0.05)
        telemetry(c, secret, "u1", errors=2, others=2)
        telemetry(c, secret, "u2", errors=0, others=1)
        telemetry(c, secret, "u3", errors=1, others=3)
        telemetry(c, secret, "u6", errors=1, others=0)
        telemetry(c, secret, "u9", errors=1, others=1)  # never exposed
        telemetry(c, secret, "u10", errors=0, others=2)  # never exposed
        telemetry(c, secret, "", errors=3, others=0)  # no user: in neither group
        telemetry(c, other_secret, "u1", errors=1, others=0)  # another app's u1: not exposed
    return {"secret": secret, "token": token}


def settled(server: Server, token: str, flag: str, **params: str) -> Any:
    def probe() -> Any:
        body = impact(server, token, flag, **params).json()
        done = body["notExposed"]["events"] >= 5 and len(body["variants"]) == 2
        return body if done and body["variants"][1]["afterExposure"]["events"] == 4 else None

    return eventually(probe)


def variants(body: Any) -> dict[str, Any]:
    return {v["variant"]: v for v in body["variants"]}


def test_error_rates_after_exposure_per_variant(server: Server, fay: dict[str, str]) -> None:
    body = settled(server, fay["token"], "checkout", appName="fay-app")
    assert_documented(body, "FlagImpact")
    assert body["apps"] == ["fay-app"]
    assert body["userKeys"]["telemetry"] == "bits.userId"
    new, old = variants(body)["new"], variants(body)["old"]
    assert (new["exposures"], new["usersExposed"]) == (4, 2)
    assert new["afterExposure"] == {
        "events": 5, "errors": 2, "errorsPerThousandEvents": 400.0, "usersWithErrors": 1,
    }  # fmt: skip
    assert (old["exposures"], old["usersExposed"]) == (2, 2)
    assert old["afterExposure"] == {
        "events": 4, "errors": 1, "errorsPerThousandEvents": 250.0, "usersWithErrors": 1,
    }  # fmt: skip
    assert [v["variant"] for v in body["variants"]] == ["new", "old"]  # most exposures first
    # u6 (exposed to `plain` only), u9 and u10; not u1, whose error before exposure is in
    # neither group, nor the events without a user
    assert body["notExposed"] == {
        "users": 3, "events": 5, "errors": 2, "errorsPerThousandEvents": 400.0,
        "usersWithErrors": 2,
    }  # fmt: skip


def test_users_are_told_apart_per_app(server: Server, fay: dict[str, str]) -> None:
    body = settled(server, fay["token"], "checkout")
    assert sorted(body["apps"]) == ["fay-app", "fay-other"]
    assert variants(body)["new"]["afterExposure"]["errors"] == 2  # not fay-other's u1
    assert (body["notExposed"]["users"], body["notExposed"]["errors"]) == (4, 3)


def test_a_flag_without_variants_reads_enabled_and_disabled(
    server: Server, fay: dict[str, str]
) -> None:
    body = eventually(
        lambda: (
            (b := impact(server, fay["token"], "plain", appName="fay-app").json())
            and len(b["variants"]) == 2
            and b["variants"][0]["afterExposure"]["events"]
            + b["variants"][1]["afterExposure"]["events"]
            and b
        )
    )
    seen = variants(body)
    assert seen["disabled"]["afterExposure"]["errorsPerThousandEvents"] == 1000.0
    assert seen["enabled"]["afterExposure"] == {
        "events": 0, "errors": 0, "errorsPerThousandEvents": None, "usersWithErrors": 0,
    }  # fmt: skip


def test_an_unknown_flag_and_an_old_range_have_no_exposures(
    server: Server, fay: dict[str, str]
) -> None:
    settled(server, fay["token"], "checkout")
    assert impact(server, fay["token"], "nothing").json()["variants"] == []
    old = impact(server, fay["token"], "checkout", since="2020-01-01", until="2020-01-02").json()
    assert (old["variants"], old["notExposed"]["events"]) == ([], 0)


def test_another_developer_sees_none_of_it(server: Server, fay: dict[str, str]) -> None:
    settled(server, fay["token"], "checkout")
    _, token = developer_with_app(server.settings, "gus", "gus-app")
    refused = impact(server, token, "checkout", appName="fay-app")
    assert (refused.status_code, error_of(refused)["field"]) == (403, "appName")
    theirs = impact(server, token, "checkout").json()
    assert (theirs["apps"], theirs["variants"], theirs["notExposed"]["events"]) == (
        ["gus-app"], [], 0,
    )  # fmt: skip
    with server.client() as c:
        assert c.get("/api/flags/checkout/impact").status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "field", "code"),
    [
        ({"since": "yesterday"}, 400, "since", "bad_date"),
        ({"until": "soon"}, 400, "until", "bad_date"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "since",
         "bad_range"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "since",
         "bad_range"),
        ({"appName": "no-such-app"}, 404, "appName", "not_found"),
    ],
)  # fmt: skip
def test_bad_parameters(
    server: Server,
    fay: dict[str, str],
    params: dict[str, str],
    status: int,
    field: str,
    code: str,
) -> None:
    answer = impact(server, fay["token"], "checkout", **params)
    error = error_of(answer)
    assert (answer.status_code, error["field"], error["code"]) == (status, field, code)
    assert error["message"]


def test_a_name_too_long(server: Server, fay: dict[str, str]) -> None:
    answer = impact(server, fay["token"], "f" * 129)
    assert (answer.status_code, error_of(answer)["field"]) == (400, "name")
