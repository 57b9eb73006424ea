"""POST /api/pgp/fetch-key against a local keyserver speaking the VKS API over HTTPS
(tests/support/keyserver.py), serving real keys made here with gpg: found by fingerprint, key
id, subkey and e-mail; and every way a keyserver can fail or attack: unknown keys, slowness,
50 MB answers, redirects to 127.0.0.1 or to http://, garbage, another key than the one asked
for. Plus the input checks and the https-only setting."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from base.settings import Settings, SettingsError
from tests.support.admin import developer_with_app
from tests.support.keyserver import (
    GpgKey,
    KeyserverStandIn,
    answer,
    gpg_home,
    huge,
    keyserver_standin,
    make_key,
    redirect,
    revoke,
    slow,
    trap,
)
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

TIMEOUT_S = 2
FETCH = "/api/pgp/fetch-key"
MB50 = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def keys() -> Iterator[dict[str, GpgKey]]:
    with gpg_home() as home:
        yield {
            "alice": make_key(home, "Alice Example <alice@example.org>"),
            "bob": make_key(
                home, "Bob: Zoë <bob@example.org>", "rsa2048", "never", subkey=None,
                extra_uids=("bob@second.example",),
            ),
            "dan": revoke(home, make_key(home, "Dan <dan@example.org>", "nistp256")),
        }  # fmt: skip


@pytest.fixture(scope="module")
def keyserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyserverStandIn]:
    with keyserver_standin(tmp_path_factory.mktemp("keyserver")) as standin:
        yield standin


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, keyserver: KeyserverStandIn
) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("pgp") / "data"
    yield from serve_in_thread(data, **keyserver.env, HUTCH_KEYSERVER_TIMEOUT=str(TIMEOUT_S))


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    _, bearer = developer_with_app(server.settings, "pia", "pia-app")
    return bearer


def fetch(server: Server, token: str, body: Any, **headers: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}", **headers) as c:
        return c.post(FETCH, json=body)


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    found: dict[str, Any] = response.json()["error"]
    assert found["code"] == code, found
    assert found["message"]
    return found


def iso(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_key_by_fingerprint_is_read_by_gpg(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    alice = keys["alice"]
    keyserver.add_key(alice, ("alice@example.org",))
    spaced = " ".join(alice.fingerprint[i : i + 4] for i in range(0, 40, 4)).lower()
    got = fetch(server, token, {"fingerprint": spaced})
    assert got.status_code == 200, got.text
    assert got.json() == {
        "fingerprint": alice.fingerprint,
        "keyId": alice.key_id,
        "algorithm": "ed25519",
        "created": iso(alice.created),
        "expires": iso(alice.expires or 0),
        "revoked": False,
        "userIds": ["Alice Example <alice@example.org>"],
        "armored": alice.armored.decode().strip(),
    }
    assert keyserver.seen(f"/vks/v1/by-fingerprint/{alice.fingerprint}") == 1


def test_by_key_id_subkey_and_email(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    keyserver.add_key(alice, ("alice@example.org",))
    keyserver.add_key(bob, ("bob@second.example",))
    for body in (
        {"keyId": alice.key_id.lower()},
        {"fingerprint": alice.subkey_fingerprints[0]},
        {"email": "alice@example.org"},
    ):
        got = fetch(server, token, body)
        assert got.status_code == 200, (body, got.text)
        assert got.json()["fingerprint"] == alice.fingerprint
    got = fetch(server, token, {"email": "bob@second.example"})
    assert got.status_code == 200, got.text
    # In the key's order, which puts the primary user id first (of two made in one second,
    # either may be it).
    assert sorted(got.json()["userIds"]) == ["Bob: Zoë <bob@example.org>", "bob@second.example"]
    assert (got.json()["algorithm"], got.json()["expires"]) == ("rsa2048", None)
    assert keyserver.seen(f"/vks/v1/by-email/{quote('bob@second.example', safe='')}") == 1


def test_a_revoked_key_says_so(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    dan = keys["dan"]
    keyserver.add_key(dan)
    got = fetch(server, token, {"fingerprint": dan.fingerprint})
    assert got.status_code == 200, got.text
    assert (got.json()["revoked"], got.json()["algorithm"]) == (True, "nistp256")


def test_an_unknown_key_is_a_404(server: Server, token: str) -> None:
    error(fetch(server, token, {"fingerprint": "0" * 40}), 404, "key_not_found")
    error(fetch(server, token, {"email": "nobody@example.org"}), 404, "key_not_found")


def test_a_slow_keyserver_is_a_504_on_time(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    fpr = "1" * 40
    keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", slow(10, answer(keys["alice"].armored)))
    started = time.monotonic()
    found = error(fetch(server, token, {"fingerprint": fpr}), 504, "keyserver_timeout")
    assert time.monotonic() - started < TIMEOUT_S + 2
    assert f"{TIMEOUT_S} s" in found["message"]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "streamed"])
def test_a_50_mb_answer_is_refused_at_the_limit_unread(
    server: Server, token: str, keyserver: KeyserverStandIn, declare: bool
) -> None:
    fpr = ("2" if declare else "3") * 40
    path = f"/vks/v1/by-fingerprint/{fpr}"
    keyserver.script(path, huge(keyserver, path, MB50, declare))
    started = time.monotonic()
    error(fetch(server, token, {"fingerprint": fpr}), 502, "key_too_large")
    assert time.monotonic() - started < TIMEOUT_S + 1
    # Hutch hung up: the stand-in could not send it all (socket buffers hold a few MB).
    deadline = time.monotonic() + 10
    while path not in keyserver.written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keyserver.written[path] < MB50 // 2, keyserver.written[path]


@pytest.mark.parametrize("tls", [True, False], ids=["https-127.0.0.1", "http"])
def test_a_redirect_to_a_private_address_or_to_http_is_not_followed(
    server: Server, token: str, keyserver: KeyserverStandIn, tls: bool
) -> None:
    # The traps would answer (the stand-in's CA signs the HTTPS one; the http one is on the
    # allowed 127.0.0.2): only the guard keeps Hutch from them.
    with trap(keyserver, tls=tls, host="127.0.0.1" if tls else "127.0.0.2") as caught:
        fpr = ("4" if tls else "5") * 40
        keyserver.script(
            f"/vks/v1/by-fingerprint/{fpr}", redirect(f"{caught.url}/vks/v1/by-fingerprint/{fpr}")
        )
        found = error(fetch(server, token, {"fingerprint": fpr}), 502, "keyserver_refused")
        assert ("127.0.0.1" if tls else "https") in found["message"]
        assert caught.hits == []


def test_a_redirect_to_localhost_by_name_is_not_followed(
    server: Server, token: str, keyserver: KeyserverStandIn
) -> None:
    with trap(keyserver, tls=True) as caught:
        port = caught.url.rsplit(":", 1)[1]
        fpr = "6" * 40
        keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", redirect(f"https://localhost:{port}/"))
        error(fetch(server, token, {"fingerprint": fpr}), 502, "keyserver_refused")
        assert caught.hits == []


def test_a_redirect_within_the_allowed_keyserver_is_followed(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    bob = keys["bob"]
    keyserver.add_key(bob)
    asked = f"/vks/v1/by-keyid/{bob.key_id}"
    keyserver.script(asked, redirect(f"/vks/v1/by-fingerprint/{bob.fingerprint}"))
    got = fetch(server, token, {"keyId": bob.key_id})
    assert got.status_code == 200, got.text
    assert got.json()["fingerprint"] == bob.fingerprint


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Welcome to our keyserver</body></html>",
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n=AAAA\n"
        b"-----END PGP PUBLIC KEY BLOCK-----\n",
        b"\x00\xff" * 100,
    ],
    ids=["html", "armoured-garbage", "binary"],
)
def test_garbage_instead_of_a_key_is_a_502(
    server: Server, token: str, keyserver: KeyserverStandIn, body: bytes
) -> None:
    fpr = "7" * 40
    keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", answer(body))
    error(fetch(server, token, {"fingerprint": fpr}), 502, "bad_key")


def test_two_keys_in_one_answer_are_a_502(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    keyserver.script(
        f"/vks/v1/by-fingerprint/{alice.fingerprint}", answer(alice.armored + bob.armored)
    )
    try:
        error(fetch(server, token, {"fingerprint": alice.fingerprint}), 502, "bad_key")
    finally:
        keyserver.add_key(alice, ("alice@example.org",))


def test_a_keyserver_answering_another_key_is_a_502(
    server: Server, token: str, keyserver: KeyserverStandIn, keys: dict[str, GpgKey]
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    fpr = "8" * 40
    keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", answer(bob.armored))
    found = error(fetch(server, token, {"fingerprint": fpr}), 502, "keyserver_mismatch")
    assert bob.fingerprint in found["message"]
    keyserver.script(f"/vks/v1/by-keyid/{'9' * 16}", answer(alice.armored))
    error(fetch(server, token, {"keyId": "9" * 16}), 502, "keyserver_mismatch")
    carol = quote("carol@example.org", safe="")
    keyserver.script(f"/vks/v1/by-email/{carol}", answer(bob.armored))
    error(fetch(server, token, {"email": "carol@example.org"}), 502, "keyserver_mismatch")


def test_other_keyserver_errors_are_a_502(
    server: Server, token: str, keyserver: KeyserverStandIn
) -> None:
    fpr = "A" * 40
    keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", answer(b"oops", status=500))
    found = error(fetch(server, token, {"fingerprint": fpr}), 502, "keyserver_error")
    assert "500" in found["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 422, "one_reference", "fingerprint"),
        ({"fingerprint": None}, 422, "one_reference", "fingerprint"),
        ({"fingerprint": "A" * 40, "email": "a@example.org"}, 422, "one_reference", "email"),
        ({"fingerprint": "A" * 39}, 422, "bad_fingerprint", "fingerprint"),
        ({"fingerprint": "G" * 40}, 422, "bad_fingerprint", "fingerprint"),
        ({"fingerprint": "A" * 64}, 422, "bad_fingerprint", "fingerprint"),
        ({"fingerprint": "../../etc/passwd"}, 422, "bad_fingerprint", "fingerprint"),
        ({"fingerprint": 1234}, 400, "bad_type", "fingerprint"),
        ({"keyId": "ABCD"}, 422, "bad_key_id", "keyId"),
        ({"email": "not an address"}, 422, "bad_email", "email"),
        ({"email": "a@b.c/../../x"}, 422, "bad_email", "email"),
        ({"email": "x" * 250 + "@example.org"}, 422, "bad_email", "email"),
        ({"email": ["a@example.org"]}, 400, "bad_type", "email"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_asks_nothing(
    server: Server,
    token: str,
    keyserver: KeyserverStandIn,
    body: Any,
    status: int,
    code: str,
    field: str,
) -> None:
    before = len(keyserver.requests)
    found = error(fetch(server, token, body), status, code)
    assert found.get("field") == field
    assert len(keyserver.requests) == before


def test_bodies_that_are_not_a_json_object_and_callers_without_credentials(
    server: Server, token: str
) -> None:
    with server.client(Authorization=f"Bearer {token}") as c:
        error(c.post(FETCH, content=b"{nope"), 400, "malformed_json")
        error(c.post(FETCH, json=["A" * 40]), 400, "bad_body")
        error(c.post(FETCH, content=b"x", headers={"Content-Type": "text/plain"}), 415,
              "unsupported_media_type")  # fmt: skip
    with server.client() as c:
        error(c.post(FETCH, json={"fingerprint": "A" * 40}), 401, "missing_token")


def test_no_answer_carries_the_callers_token(
    server: Server, token: str, keyserver: KeyserverStandIn
) -> None:
    fpr = "B" * 40
    keyserver.script(f"/vks/v1/by-fingerprint/{fpr}", answer(b"x", status=503))
    for body in ({"fingerprint": fpr}, {"fingerprint": "C" * 40}, {"fingerprint": "zz"}):
        response = fetch(server, token, body)
        assert token not in response.text
        assert response.status_code < 500 or response.status_code in (502, 504)


def test_the_keyserver_must_be_https() -> None:
    for url in ("http://keys.openpgp.org", "ftp://keys.example", "keys.openpgp.org", "https://"):
        with pytest.raises(SettingsError, match="HUTCH_KEYSERVER_URL"):
            Settings.from_env({"HUTCH_KEYSERVER_URL": url})
    assert Settings.from_env({}).keyserver_url == "https://keys.openpgp.org"
    with pytest.raises(SettingsError, match="HUTCH_KEYSERVER_CA"):
        Settings.from_env({"HUTCH_KEYSERVER_CA": "/no/such/ca.pem"})


def test_hutch_refuses_to_start_with_an_http_keyserver(tmp_path: Path) -> None:
    env = {"HUTCH_DATA": str(tmp_path / "data"), "HUTCH_KEYSERVER_URL": "http://keys.example",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "hutch", "migrate"], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "HUTCH_KEYSERVER_URL must be an https:// URL" in done.stderr
