"""Identity command bodies over HTTP: a field of the wrong JSON type is a 400 naming the
field (never a 500), and the command does nothing; a well-typed value it cannot accept is
a 422. Every field of every identity body, with every other JSON type."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server

pytestmark = pytest.mark.integration

NOT_A_STRING: list[Any] = [0, 7, -1.5, {}, {"a": "1w"}, [], ["never"], None, True, False]
NOT_AN_INTEGER: list[Any] = ["7", "", 7.5, 30.0, {}, {"days": 7}, [], [7], None, True, False]

BODIES: list[tuple[str, str, str, list[Any]]] = [
    # (method, path, field, wrong values); {app} is the caller's app
    ("POST", "/api/tokens", "name", NOT_A_STRING),
    ("POST", "/api/tokens", "expires", NOT_A_STRING),
    ("POST", "/api/apps", "name", NOT_A_STRING),
    ("POST", "/api/apps", "retentionDays", NOT_AN_INTEGER),
    ("PATCH", "/api/apps/{app}", "retentionDays", NOT_AN_INTEGER),
    ("POST", "/api/apps/{app}/secret", "graceSeconds", NOT_AN_INTEGER),
]
VALID = {"name": "typed-new", "expires": "1w", "retentionDays": 30, "graceSeconds": 0}
"""What the other fields of a body hold, so that only the field under test is wrong."""

CASES = [
    pytest.param(method, path, field, value, id=f"{method} {path} {field}={value!r}")
    for method, path, field, values in BODIES
    for value in values
]


@pytest.fixture(scope="module")
def tess(server: Server) -> dict[str, str]:
    secret, token = developer_with_app(server.settings, "tess", "tess-app")
    return {"secret": secret, "token": token, "app": "tess-app"}


def _state(c: httpx.Client, tess: dict[str, str]) -> tuple[object, ...]:
    """What a command that went through would change: tokens, apps and the app's secret."""
    tokens = sorted(t["id"] for t in c.get("/api/tokens").json()["tokens"])
    apps = c.get("/api/apps").json()["apps"]
    secret_works = c.post(
        "/api/telemetry", headers={"X-Secret": tess["secret"]}, json={"kind": "info", "bits": {}}
    ).status_code
    return tokens, apps, secret_works


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "field", "value"), CASES)
def test_a_field_of_the_wrong_json_type_is_a_400_naming_it(
    server: Server, tess: dict[str, str], method: str, path: str, field: str, value: Any
) -> None:
    fields = {name for _, p, name, _ in BODIES if p == path}
    body = {name: VALID[name] for name in fields} | {field: value}
    with server.client(Authorization=f"Bearer {tess['token']}") as c:
        before = _state(c, tess)
        answer = c.request(method, path.format(app=tess["app"]), json=body)
        assert answer.status_code == 400, answer.text
        error = error_of(answer)
        assert (error["code"], error["field"]) == ("bad_type", field)
        assert field in error["message"]
        assert _state(c, tess) == before


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/tokens", {"expires": "forever"}, "expires"),
        ("POST", "/api/tokens", {"name": ""}, "name"),
        ("POST", "/api/tokens", {"name": "x" * 65}, "name"),
        ("POST", "/api/apps", {"name": "Not Valid!"}, "name"),
        ("POST", "/api/apps", {"name": "tess-ok", "retentionDays": 0}, "retentionDays"),
        ("PATCH", "/api/apps/{app}", {"retentionDays": 3651}, "retentionDays"),
        ("POST", "/api/apps/{app}/secret", {"graceSeconds": -1}, "graceSeconds"),
        ("POST", "/api/apps/{app}/secret", {"graceSeconds": 30 * 86_400 + 1}, "graceSeconds"),
    ],
)
def test_a_well_typed_value_out_of_range_is_a_422_naming_it(
    server: Server, tess: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    with server.client(Authorization=f"Bearer {tess['token']}") as c:
        before = _state(c, tess)
        answer = c.request(method, path.format(app=tess["app"]), json=body)
        assert (answer.status_code, error_of(answer)["field"]) == (422, field), answer.text
        assert _state(c, tess) == before


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/api/tokens", "/api/apps", "/api/apps/{app}/secret"])
@pytest.mark.parametrize("body", [b"[]", b'"name"', b"7", b"null", b"{"])
def test_a_body_that_is_not_a_json_object_is_a_400(
    server: Server, tess: dict[str, str], path: str, body: bytes
) -> None:
    with server.client(Authorization=f"Bearer {tess['token']}") as c:
        answer = c.post(
            path.format(app=tess["app"]),
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["code"] in {"bad_body", "malformed_json"}
