"""A revoked token can change nothing once `DELETE /api/tokens/{id}` has answered, whichever
process (each with its own credential cache) the next request reaches; everywhere else it
stops working within the stated bound (web/auth.py: 1 s), as does a replaced secret.

A second Hutch app on the same stores, in a thread of its own, stands for another process
here (it has its own cache); the last test runs a real multi-process `hutch serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from base.settings import Settings
from tests.support.admin import developer_with_app, hutch
from tests.support.credential_probes import (
    accepted,
    refusals_after,
    refused,
    secret_answers,
    token_status,
)
from tests.support.processes import kill_tree
from tests.support.responses import error_of
from tests.support.servers import Server, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually
from web.auth import CREDENTIAL_TTL_S

pytestmark = pytest.mark.integration

SLACK_S = 0.3
"""Time for a request started just before the bound to be answered on a busy machine."""


def identity_commands(app: str, other_token_id: str) -> list[tuple[str, str, object]]:
    """Every identity-changing command a token can call: (method, path, JSON body)."""
    return [
        ("POST", "/api/tokens", {"name": "minted", "expires": "never"}),
        ("POST", "/api/apps", {"name": f"{app}-minted"}),
        ("PATCH", f"/api/apps/{app}", {"retentionDays": 1}),
        ("POST", f"/api/apps/{app}/secret", {"graceSeconds": 3600}),
        ("DELETE", f"/api/apps/{app}/secret/previous", None),
        ("DELETE", f"/api/tokens/{other_token_id}", None),
    ]


def _all_refused(url: str, token: str, app: str, other_token_id: str) -> None:
    """Each command, on a connection of its own, is a 401 token_revoked."""
    for method, path, body in identity_commands(app, other_token_id):
        answer = httpx.request(
            method,
            url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code} {answer.text}"
        assert error_of(answer)["code"] == "token_revoked", (method, path)


def _checker(settings: Settings, developer: str) -> str:
    """A new token for the developer, made by the CLI."""
    code, created = hutch(
        settings, "token", "create", "--developer", developer, "--name", "checker"
    )
    assert code == 0, created
    return str(created["token"])


def _nothing_minted(settings: Settings, url: str, developer: str, app: str, secret: str) -> None:
    """The developer still has one app, one live token (made here) and its old secret."""
    fresh = _checker(settings, developer)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {fresh}"}) as c:
        tokens = c.get("/api/tokens").json()["tokens"]
        apps = c.get("/api/apps").json()["apps"]
    assert [t["name"] for t in tokens] == ["checker"], tokens
    assert [(a["name"], a["retentionDays"]) for a in apps] == [(app, 30)], apps
    assert accepted(secret_answers(url, secret, app))


def _token_id(url: str, token: str) -> str:
    answer = httpx.get(url + "/api/tokens", headers={"Authorization": f"Bearer {token}"})
    (only,) = answer.json()["tokens"]
    return str(only["id"])


@pytest.fixture(scope="module")
def elsewhere(server: Server) -> Iterator[Server]:
    """The ingest app alone, on the same stores as `server`, with a credential cache of its
    own: what another ingest worker is under `hutch serve`."""
    import uvicorn

    from hutch.apps import ingest_app
    from hutch.runtime import Runtime

    runtime = Runtime(server.settings)
    port = free_port()
    uv = uvicorn.Server(
        uvicorn.Config(
            ingest_app(runtime), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    eventually(lambda: uv.started, timeout_s=30)
    try:
        yield Server(f"http://127.0.0.1:{port}", server.settings, runtime)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def _warm(url: str, token: str) -> None:
    """Make `url` remember the token as live (a request that authenticates and changes
    nothing: an app name that is not valid)."""
    answer = httpx.post(
        url + "/api/apps", json={"name": "!"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 422, answer.text


@pytest.mark.integration
def test_a_token_revoked_in_one_process_mints_nothing_in_another(
    server: Server, elsewhere: Server
) -> None:
    secret, token = developer_with_app(server.settings, "rex", "rex-app")
    assert hutch(server.settings, "token", "create", "--developer", "rex", "--name", "x")[0] == 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        ids = {t["name"]: t["id"] for t in c.get("/api/tokens").json()["tokens"]}
    started = time.monotonic()
    _warm(elsewhere.url, token)  # `elsewhere` now holds the token as live for up to 1 s
    revoked = httpx.delete(
        f"{server.url}/api/tokens/{ids['default']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.json() == {"revoked": ids["default"]}
    _all_refused(elsewhere.url, token, "rex-app", ids["x"])
    assert time.monotonic() - started < CREDENTIAL_TTL_S, "too slow to test the cache"
    _all_refused(server.url, token, "rex-app", ids["x"])
    hutch(server.settings, "token", "revoke", ids["x"], "--developer", "rex")
    _nothing_minted(server.settings, server.url, "rex", "rex-app", secret)


@pytest.mark.integration
def test_a_token_revoked_by_the_cli_mints_nothing_over_http(server: Server) -> None:
    """The CLI is one more process: the server's cache may still hold the token as live
    (it does when the CLI takes less than the cache's 1 s, as with the embedded stores; a
    Kafka producer's start can take longer: the test above does not depend on that)."""
    secret, token = developer_with_app(server.settings, "rae", "rae-app")
    code, spare = hutch(server.settings, "token", "create", "--developer", "rae", "--name", "x")
    assert code == 0
    # Listed with the spare token, so that `token` is first seen (and cached) by _warm.
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {spare['token']}"}
    ) as c:
        ids = {t["name"]: t["id"] for t in c.get("/api/tokens").json()["tokens"]}
    _warm(server.url, token)  # the server now holds the token as live for up to 1 s
    assert hutch(server.settings, "token", "revoke", ids["default"], "--developer", "rae")[0] == 0
    _all_refused(server.url, token, "rae-app", ids["x"])
    hutch(server.settings, "token", "revoke", ids["x"], "--developer", "rae")
    _nothing_minted(server.settings, server.url, "rae", "rae-app", secret)


@pytest.mark.integration
def test_elsewhere_a_revoked_token_stops_within_the_bound(
    server: Server, elsewhere: Server
) -> None:
    _, token = developer_with_app(server.settings, "ria", "ria-app")
    tid = _token_id(server.url, token)
    assert token_status(elsewhere.url, token)["authenticated"] is True
    assert httpx.delete(
        f"{server.url}/api/tokens/{tid}", headers={"Authorization": f"Bearer {token}"}
    ).is_success
    assert token_status(server.url, token) == {
        "authenticated": False,
        "method": None,
        "error": "token_revoked",
    }  # at once where the DELETE ran
    seen = refusals_after(
        lambda: token_status(elsewhere.url, token)["authenticated"] is True,
        bound_s=CREDENTIAL_TTL_S + SLACK_S,
        watch_s=CREDENTIAL_TTL_S + 1.0,
    )
    assert [at for at, ok in seen if ok and at > CREDENTIAL_TTL_S + SLACK_S] == []
    assert not seen[-1][1]


@pytest.mark.integration
def test_elsewhere_a_replaced_secret_stops_within_the_bound(
    server: Server, elsewhere: Server
) -> None:
    old, token = developer_with_app(server.settings, "roy", "roy-app")
    assert accepted(secret_answers(elsewhere.url, old, "roy-app"))  # cached there as live
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        rotated = c.post("/api/apps/roy-app/secret")
    assert rotated.status_code == 201
    new = rotated.json()["secret"]
    assert refused(secret_answers(server.url, old, "roy-app"), "secret_expired")
    assert accepted(secret_answers(elsewhere.url, new, "roy-app"))  # the new one: at once

    def old_accepted() -> bool:
        return httpx.post(
            elsewhere.url + "/api/telemetry", headers={"X-Secret": old}, json={"kind": "info"}
        ).is_success

    seen = refusals_after(
        old_accepted, bound_s=CREDENTIAL_TTL_S + SLACK_S, watch_s=CREDENTIAL_TTL_S + 1.0
    )
    assert [at for at, ok in seen if ok and at > CREDENTIAL_TTL_S + SLACK_S] == []
    assert refused(secret_answers(elsewhere.url, old, "roy-app"), "secret_expired")


# --- a real `hutch serve`: gunicorn ingest workers and the query process -----------------------


class _Serve:
    def __init__(self, data: Path, workers: int) -> None:
        self.settings = make_settings(data)
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **self.settings.as_env(),
            "HUTCH_BIND": f"127.0.0.1:{port}",
            "HUTCH_WORKERS": str(workers),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hutch", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(data.parent / "serve.log", "ab"),  # noqa: SIM115
        )
        eventually(self._healthy, timeout_s=90)

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"hutch serve exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[_Serve]:
    serve = _Serve(tmp_path / "data", workers=3)
    try:
        yield serve
    finally:
        kill_tree(serve.process.pid)
        serve.process.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_under_hutch_serve_a_revoked_token_mints_nothing_in_any_worker(served: _Serve) -> None:
    url = served.url
    secret, token = developer_with_app(served.settings, "sam", "sam-app")
    assert hutch(served.settings, "token", "create", "--developer", "sam", "--name", "x")[0] == 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        ids = {t["name"]: t["id"] for t in c.get("/api/tokens").json()["tokens"]}
    for _ in range(12):  # new connections: every ingest worker now holds the token as live
        _warm(url, token)
    assert token_status(url, token)["authenticated"] is True
    revoked = httpx.delete(
        f"{url}/api/tokens/{ids['default']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.status_code == 200
    for _ in range(3):
        _all_refused(url, token, "sam-app", ids["x"])
    # Reads (the query process) and everything else: refused within the bound.
    seen = refusals_after(
        lambda: (
            httpx.get(url + "/api/apps", headers={"Authorization": f"Bearer {token}"}).is_success
            or token_status(url, token)["authenticated"] is True
        ),
        bound_s=CREDENTIAL_TTL_S + SLACK_S,
        watch_s=CREDENTIAL_TTL_S + 1.0,
    )
    assert [at for at, ok in seen if ok and at > CREDENTIAL_TTL_S + SLACK_S] == []
    hutch(served.settings, "token", "revoke", ids["x"], "--developer", "sam")
    _nothing_minted(served.settings, url, "sam", "sam-app", secret)

    # A secret replaced without grace: refused by every worker within the bound.
    fresh = _checker(served.settings, "sam")
    for _ in range(6):
        assert accepted(secret_answers(url, secret, "sam-app"))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {fresh}"}) as c:
        rotated = c.post("/api/apps/sam-app/secret")
    assert rotated.status_code == 201, rotated.text
    assert accepted(secret_answers(url, rotated.json()["secret"], "sam-app"))
    seen = refusals_after(
        lambda: (
            httpx.post(
                url + "/api/telemetry", headers={"X-Secret": secret}, json={"kind": "info"}
            ).is_success
        ),
        bound_s=CREDENTIAL_TTL_S + SLACK_S,
        watch_s=CREDENTIAL_TTL_S + 1.0,
    )
    assert [at for at, ok in seen if ok and at > CREDENTIAL_TTL_S + SLACK_S] == []
    for _ in range(3):
        assert refused(secret_answers(url, secret, "sam-app"), "secret_expired")
