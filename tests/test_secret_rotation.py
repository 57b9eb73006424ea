"""Rotating an app's secret (`app.secret_rotated.v1`), over HTTP and the CLI: the new secret
is answered once, the old one works through its grace period and then gets 401 on every
route that takes a secret; only the app's owner rotates; a replay rebuilds the same state."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime

import pytest

from schemas.identity import MAX_GRACE_S, grace_seconds
from tests.support.admin import developer_with_app, hutch
from tests.support.credential_probes import accepted, refused, secret_answers
from tests.support.responses import error_of
from tests.support.servers import Server

pytestmark = pytest.mark.integration

SECRET = re.compile(r"hs_[0-9a-f]{64}")


def _rotate(server: Server, token: str, app: str, **body: int) -> dict[str, object]:
    with server.client(Authorization=f"Bearer {token}") as c:
        answer = (
            c.post(f"/api/apps/{app}/secret", json=body)
            if body
            else c.post(f"/api/apps/{app}/secret")
        )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _seconds_until(iso: object) -> float:
    assert isinstance(iso, str)
    assert iso.endswith("Z")
    return datetime.fromisoformat(iso).timestamp() - time.time()


@pytest.mark.integration
def test_a_rotation_without_grace_stops_the_old_secret_on_every_route(server: Server) -> None:
    old, token = developer_with_app(server.settings, "rosa", "rosa-app")
    assert accepted(secret_answers(server.url, old, "rosa-app"))
    rotated = _rotate(server, token, "rosa-app")
    new = rotated["secret"]
    assert isinstance(new, str)
    assert SECRET.fullmatch(new)
    assert new != old
    assert (rotated["app"], rotated["graceSeconds"]) == ("rosa-app", 0)
    assert _seconds_until(rotated["previousExpiresAt"]) <= 0
    assert refused(secret_answers(server.url, old, "rosa-app"), "secret_expired")
    assert accepted(secret_answers(server.url, new, "rosa-app"))
    with server.client() as c:
        status = c.get("/api/auth/status", headers={"X-Secret": old}).json()
        assert status == {"authenticated": False, "method": None, "error": "secret_expired"}
        status = c.get("/api/auth/status", headers={"X-Secret": new}).json()
        assert status == {"authenticated": True, "method": "secret", "app": "rosa-app"}
    with server.client(Authorization=f"Bearer {token}") as c:
        listed = c.get("/api/apps").json()["apps"]
    assert [a["name"] for a in listed] == ["rosa-app"]
    assert new not in str(listed)
    dump = str(server.runtime.db.fetchall("SELECT * FROM app_secrets"))  # type: ignore[attr-defined]
    assert new not in dump  # stored hashed, as before
    assert old not in dump
    assert hashlib.sha256(new.encode()).hexdigest() in dump


@pytest.mark.integration
def test_the_old_secret_works_until_its_grace_period_ends(server: Server) -> None:
    old, token = developer_with_app(server.settings, "gail", "gail-app")
    rotated = _rotate(server, token, "gail-app", graceSeconds=3)
    new = str(rotated["secret"])
    assert rotated["graceSeconds"] == 3
    left = _seconds_until(rotated["previousExpiresAt"])
    assert 1.0 < left <= 3.0
    assert accepted(secret_answers(server.url, old, "gail-app"))  # within the grace period
    assert accepted(secret_answers(server.url, new, "gail-app"))
    time.sleep(max(0.0, _seconds_until(rotated["previousExpiresAt"])) + 0.05)
    assert refused(secret_answers(server.url, old, "gail-app"), "secret_expired")
    assert accepted(secret_answers(server.url, new, "gail-app"))


@pytest.mark.integration
def test_previous_secrets_can_be_revoked_before_their_grace_ends(server: Server) -> None:
    old, token = developer_with_app(server.settings, "pia", "pia-app")
    first = str(_rotate(server, token, "pia-app", graceSeconds=3600)["secret"])
    # A second rotation within the grace period: both earlier secrets still work.
    second = str(_rotate(server, token, "pia-app", graceSeconds=3600)["secret"])
    for secret in (old, first, second):
        assert accepted(secret_answers(server.url, secret, "pia-app"))
    with server.client(Authorization=f"Bearer {token}") as c:
        ended = c.delete("/api/apps/pia-app/secret/previous")
        assert ended.status_code == 200, ended.text
        assert ended.json() == {"app": "pia-app", "previousSecretsRevoked": 2}
        again = c.delete("/api/apps/pia-app/secret/previous")
        assert again.json() == {"app": "pia-app", "previousSecretsRevoked": 0}
    for secret in (old, first):
        assert refused(secret_answers(server.url, secret, "pia-app"), "secret_expired")
    assert accepted(secret_answers(server.url, second, "pia-app"))


@pytest.mark.integration
def test_a_later_rotation_never_lengthens_an_earlier_grace(server: Server) -> None:
    old, token = developer_with_app(server.settings, "lea", "lea-app")
    first = str(_rotate(server, token, "lea-app", graceSeconds=3600)["secret"])
    second = str(_rotate(server, token, "lea-app")["secret"])  # grace 0: both earlier stop now
    for secret in (old, first):
        assert refused(secret_answers(server.url, secret, "lea-app"), "secret_expired")
    third = str(_rotate(server, token, "lea-app", graceSeconds=2)["secret"])  # second: 2 s
    fourth = str(_rotate(server, token, "lea-app", graceSeconds=3600)["secret"])  # third: 1 h
    for secret in (second, third, fourth):
        assert accepted(secret_answers(server.url, secret, "lea-app"))
    time.sleep(2.1)
    assert refused(secret_answers(server.url, second, "lea-app"), "secret_expired")
    for secret in (third, fourth):
        assert accepted(secret_answers(server.url, secret, "lea-app"))


@pytest.mark.integration
def test_only_the_apps_owner_rotates_or_revokes_its_secrets(server: Server) -> None:
    secret, owner = developer_with_app(server.settings, "omar", "omar-app")
    _, other = developer_with_app(server.settings, "otto", "otto-app")
    with server.client(Authorization=f"Bearer {other}") as c:
        theirs = c.post("/api/apps/omar-app/secret", json={"graceSeconds": 0})
        assert (theirs.status_code, error_of(theirs)["code"]) == (403, "forbidden")
        theirs = c.delete("/api/apps/omar-app/secret/previous")
        assert (theirs.status_code, error_of(theirs)["code"]) == (403, "forbidden")
        missing = c.post("/api/apps/nobody-app/secret")
        assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
        missing = c.delete("/api/apps/nobody-app/secret/previous")
        assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    with server.client() as c:
        anonymous = c.post("/api/apps/omar-app/secret")
        assert (anonymous.status_code, error_of(anonymous)["code"]) == (401, "missing_token")
        as_app = c.post("/api/apps/omar-app/secret", headers={"X-Secret": secret})
        assert as_app.status_code == 401  # an app's secret cannot replace itself
    assert accepted(secret_answers(server.url, secret, "omar-app"))  # nothing was rotated
    with server.client(Authorization=f"Bearer {owner}") as c:
        assert c.post("/api/apps/omar-app/secret").status_code == 201


@pytest.mark.integration
def test_the_cli_rotates_and_ends_the_grace(server: Server) -> None:
    old, _ = developer_with_app(server.settings, "cleo", "cleo-app")
    data = server.settings
    code, rotated = hutch(
        data, "app", "rotate-secret", "cleo-app", "--developer", "cleo", "--grace", "1h"
    )
    assert code == 0, rotated
    assert SECRET.fullmatch(rotated["secret"])
    assert rotated["graceSeconds"] == 3600
    assert 3590 < _seconds_until(rotated["previousExpiresAt"]) <= 3600
    assert accepted(secret_answers(server.url, old, "cleo-app"))
    code, ended = hutch(data, "app", "revoke-previous-secrets", "cleo-app", "--developer", "cleo")
    assert (code, ended) == (0, {"app": "cleo-app", "previousSecretsRevoked": 1})
    code, refusal = hutch(data, "app", "rotate-secret", "cleo-app", "--developer", "omar")
    assert (code, refusal["error"]["code"]) == (1, "forbidden")
    # The server saw the rotation in another "process" (the CLI's): within the 1 s bound.
    time.sleep(1.05)
    assert refused(secret_answers(server.url, old, "cleo-app"), "secret_expired")
    assert accepted(secret_answers(server.url, rotated["secret"], "cleo-app"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604_800)],
)
def test_grace_durations(text: str, seconds: int) -> None:
    assert grace_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "1.5h", "1w", "h", "31d", str(MAX_GRACE_S + 1)])
def test_bad_grace_durations(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|maximum"):
        grace_seconds(text)
