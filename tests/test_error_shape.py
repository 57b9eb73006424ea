"""Hutch's one error shape serves both kinds of client: builds.sr.ht-style clients read
`error.message` (and `error.code`, `error.field`), Builtiful's read `message` at the top level of
the body. Every refusal, whoever raises it (a resource, the auth layer, the body reader,
Falcon's router), carries both, with the same text."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.servers import Server

pytestmark = pytest.mark.integration

Ask = Callable[[httpx.Client, str, str, int], httpx.Response]

CASES: dict[str, tuple[int, Ask]] = {
    # a body that is not JSON (the body reader)
    "bad_json": (400, lambda c, tok, sec, cap: c.post(
        "/api/jobs", content=b"{", headers={"Authorization": f"Bearer {tok}",
                                             "Content-Type": "application/json"})),
    # a query parameter out of range (a resource's own check)
    "bad_param": (400, lambda c, tok, sec, cap: c.get(
        "/api/jobs", params={"limit": "0"}, headers={"Authorization": f"Bearer {tok}"})),
    # no credential (the auth layer)
    "no_token": (401, lambda c, tok, sec, cap: c.get("/api/jobs")),
    # an unknown route (Falcon's router)
    "no_route": (404, lambda c, tok, sec, cap: c.get("/api/nothing-here")),
    # a job nobody has (a resource's lookup)
    "no_job": (404, lambda c, tok, sec, cap: c.get(
        "/api/jobs/999999", headers={"Authorization": f"Bearer {tok}"})),
    # a method the route does not have (Falcon's 405)
    "no_method": (405, lambda c, tok, sec, cap: c.delete("/api/openapi.json")),
    # a body over the limit, refused from its Content-Length
    "too_large": (413, lambda c, tok, sec, cap: c.post(
        "/api/telemetry", content=b"x" * (cap + 1),
        headers={"X-Secret": sec, "Content-Type": "application/json"})),
}  # fmt: skip


@pytest.fixture(scope="module")
def credentials(server: Server) -> tuple[str, str]:
    return developer_with_app(server.settings, "shape-dev", "shape-app")


@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_carries_its_message_at_the_top_level_too(
    server: Server, credentials: tuple[str, str], case: str
) -> None:
    secret, token = credentials
    status, ask = CASES[case]
    with server.client() as client:
        answer = ask(client, token, secret, server.settings.max_body_bytes)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"]["code"], body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert body["message"] == body["error"]["message"], body
