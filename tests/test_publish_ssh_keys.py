"""Publishing SSH keys over real HTTP: generated and imported keys (made by the real
`ssh-keygen`, whose fingerprints the answers must match), keys Hutch refuses, deletion, another
developer's key, and the private key never in an answer, a log line, or any file of the data
directory in the clear (the event log and the relational store hold only its ciphertext)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from base.client_errors import NotFound
from hutch.runtime import Runtime
from ingest.publish.ssh_keys import SshKey, open_ssh_key
from tests.support.admin import developer_with_app, hutch
from tests.support.git_https import bare_repository
from tests.support.servers import Server, serve_in_thread
from tests.support.sshd import keygen as ssh_keygen
from tests.support.sshd import running_sshd

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The guard lets 127.0.0.1 through: the sshd branches are listed from listens there.
    yield from serve_in_thread(
        tmp_path_factory.mktemp("ssh-keys") / "data",
        HUTCH_BUILDER_ALLOW_NETWORKS="127.0.0.1/32",
        HUTCH_GIT_TIMEOUT="10",
    )


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    _, ada = developer_with_app(server.settings, "ada", "ada-app")
    _, bob = developer_with_app(server.settings, "bob", "bob-app")
    return {"ada": ada, "bob": bob}


def client(server: Server, token: str) -> httpx.Client:
    return server.client(Authorization=f"Bearer {token}")


def keygen(where: Path, name: str, *args: str) -> tuple[str, str]:
    """(private key text, public key line) from the real ssh-keygen."""
    path = where / name
    subprocess.run(
        ["ssh-keygen", "-q", "-N", "", "-C", "test", "-f", str(path), *args],
        check=True,
        capture_output=True,
    )
    return path.read_text(), (where / f"{name}.pub").read_text()


def fingerprint(public_line: str, where: Path) -> str:
    path = where / "probe.pub"
    path.write_text(public_line + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def body_lines(private_key: str, public_key: str = "") -> list[str]:
    """The key's base64 lines: none may appear anywhere outside the sealed ciphertext (but
    those that are the public key's own bytes: OpenSSH's format carries the public key)."""
    return [
        line
        for line in private_key.splitlines()
        if line
        and not line.startswith("-----")
        and ":" not in line
        and len(line) >= 20
        and line not in public_key
    ]


def assert_nowhere(
    private_key: str, *texts: str, data: Path | None = None, public_key: str = ""
) -> None:
    lines = body_lines(private_key, public_key)
    assert lines
    for text in texts:
        for line in lines:
            assert line not in text
    if data is not None:
        for path in data.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                for line in lines:
                    assert line.encode() not in blob, f"{path} holds the private key in the clear"


def listed(c: httpx.Client) -> list[dict[str, object]]:
    answer = c.get("/api/publish/ssh-keys")
    assert answer.status_code == 200, answer.text
    keys: list[dict[str, object]] = answer.json()["sshKeys"]
    return keys


def test_a_generated_key_shows_its_public_half_only(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    with client(server, tokens["ada"]) as c:
        made = c.post("/api/publish/ssh-keys", json={"label": "aur", "generate": True})
        assert made.status_code == 201, made.text
        key = made.json()
        assert set(key) == {"id", "label", "type", "fingerprint", "publicKey", "createdAt"}
        assert (key["label"], key["type"]) == ("aur", "ssh-ed25519")
        assert str(key["publicKey"]).startswith("ssh-ed25519 AAAA")
        assert key["fingerprint"] == fingerprint(str(key["publicKey"]), tmp_path)
        assert key in listed(c)
        assert "PRIVATE" not in made.text
        assert "PRIVATE" not in c.get("/api/publish/ssh-keys").text


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (("-t", "ed25519"), "ssh-ed25519"),
        (("-t", "rsa", "-b", "2048"), "ssh-rsa"),
        (("-t", "rsa", "-b", "3072", "-m", "PEM"), "ssh-rsa"),
        (("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256"),
        (("-t", "ecdsa", "-b", "384", "-m", "PKCS8"), "ecdsa-sha2-nistp384"),
        (("-t", "ecdsa", "-b", "521", "-m", "PEM"), "ecdsa-sha2-nistp521"),
    ],
)
def test_imported_keys_keep_their_fingerprint_and_stay_sealed(
    server: Server,
    tokens: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    args: tuple[str, ...],
    kind: str,
) -> None:
    private, public = keygen(tmp_path, "key", *args)
    expected = fingerprint(public.strip(), tmp_path)
    caplog.set_level(logging.DEBUG)
    with client(server, tokens["ada"]) as c:
        added = c.post("/api/publish/ssh-keys", json={"label": kind, "privateKey": private})
        assert added.status_code == 201, added.text
        key = added.json()
        assert (key["type"], key["fingerprint"]) == (kind, expected)
        assert str(key["publicKey"]).split()[:2] == public.split()[:2]
        listing = c.get("/api/publish/ssh-keys").text
    # The key opens back as the same key (what a publish run pushes with), in the OpenSSH
    # form Hutch keeps: neither it nor the text sent appears anywhere in the clear.
    opened = opened_key(server, "ada", str(key["id"]))
    assert opened.fingerprint == expected
    assert opened.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    for text in (private, opened.private_key):
        assert_nowhere(
            text, added.text, listing, caplog.text, data=server.settings.data, public_key=public
        )
    path = tmp_path / "opened"
    path.write_text(opened.private_key)
    path.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert derived.split()[:2] == public.split()[:2]


def opened_key(server: Server, developer: str, key_id: str) -> SshKey:
    """open_ssh_key through a runtime of the test's own over the server's stores."""
    runtime = Runtime(server.settings, want_analytics=False, run_projectors=False)

    async def run() -> SshKey:
        await runtime.start()
        try:
            return await open_ssh_key(runtime.command_context, developer, key_id)
        finally:
            await runtime.close()
            runtime.release()

    return asyncio.run(run())


def dsa_and_weak_keys(where: Path) -> dict[str, str]:
    return {
        "dsa": keygen(where, "dsa", "-t", "dsa")[0],
        "rsa1024": keygen(where, "rsa1024", "-t", "rsa", "-b", "1024")[0],
        "encrypted": encrypted_key(where),
        "secp256k1": ec.generate_private_key(ec.SECP256K1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
    }


def encrypted_key(where: Path) -> str:
    path = where / "encrypted"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("garbage", 422, "bad_key"),
        ("truncated", 422, "bad_key"),
        ("public", 422, "public_key_given"),
        ("encrypted", 422, "encrypted_key"),
        ("encrypted_pem", 422, "encrypted_key"),
        ("dsa", 422, "unsupported_key"),
        ("rsa1024", 422, "weak_key"),
        ("secp256k1", 422, "unsupported_key"),
        ("nothing", 422, "unprocessable"),
        ("both", 422, "unprocessable"),
        ("number", 400, "bad_type"),
        ("unknown_field", 400, "unknown_field"),
        ("no_label", 422, "unprocessable"),
        ("too_large", 413, "too_large"),
        ("body_too_large", 413, "payload_too_large"),
    ],
)
def test_a_key_hutch_does_not_take_is_refused_and_nothing_is_stored(
    server: Server,
    tokens: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
    code: str,
) -> None:
    good, public = keygen(tmp_path, "good", "-t", "ed25519")
    pem_rsa, _ = keygen(tmp_path, "pem", "-t", "rsa", "-b", "2048", "-m", "PEM")
    odd = (
        dsa_and_weak_keys(tmp_path) if case in ("dsa", "rsa1024", "encrypted", "secp256k1") else {}
    )
    bodies: dict[str, object] = {
        "garbage": {"label": "x", "privateKey": "not a key at all"},
        "truncated": {"label": "x", "privateKey": good[: len(good) // 2]},
        "public": {"label": "x", "privateKey": public},
        "encrypted": {"label": "x", "privateKey": odd.get("encrypted", "")},
        "encrypted_pem": {"label": "x", "privateKey": encrypt_pem(pem_rsa)},
        "dsa": {"label": "x", "privateKey": odd.get("dsa", "")},
        "rsa1024": {"label": "x", "privateKey": odd.get("rsa1024", "")},
        "secp256k1": {"label": "x", "privateKey": odd.get("secp256k1", "")},
        "nothing": {"label": "x"},
        "both": {"label": "x", "generate": True, "privateKey": good},
        "number": {"label": "x", "privateKey": 42},
        "unknown_field": {"label": "x", "generate": True, "passphrase": "p"},
        "no_label": {"generate": True},
        "too_large": {"label": "x", "privateKey": good + "A" * 20_000},
        "body_too_large": {"label": "x", "privateKey": "A" * 100_000},
    }
    body = bodies[case]
    caplog.set_level(logging.DEBUG)
    with client(server, tokens["bob"]) as c:
        before = listed(c)
        answer = c.post("/api/publish/ssh-keys", json=body)
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code, error
        assert error["message"]
        assert listed(c) == before
    sent = body.get("privateKey") if isinstance(body, dict) else None
    if isinstance(sent, str) and body_lines(sent):
        assert_nowhere(sent, answer.text, caplog.text)


def encrypt_pem(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase"),
    ).decode()


def test_messages_say_why(server: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    keys = dsa_and_weak_keys(tmp_path)
    with client(server, tokens["bob"]) as c:
        said = {
            name: c.post("/api/publish/ssh-keys", json={"label": "x", "privateKey": text}).json()
            for name, text in keys.items()
        }
    assert "passphrase" in said["encrypted"]["error"]["message"]
    assert "ssh-keygen -p" in said["encrypted"]["error"]["message"]
    assert "DSA" in said["dsa"]["error"]["message"]
    assert "1024 bits" in said["rsa1024"]["error"]["message"]
    assert "secp256k1" in said["secp256k1"]["error"]["message"]
    assert all(e["error"]["field"] == "privateKey" for e in said.values())


def test_delete_and_another_developers_key(
    server: Server, tokens: dict[str, str], tmp_path: Path
) -> None:
    with client(server, tokens["ada"]) as c:
        key = c.post("/api/publish/ssh-keys", json={"label": "gone", "generate": True}).json()
    with client(server, tokens["bob"]) as c:
        theirs = c.delete(f"/api/publish/ssh-keys/{key['id']}")
        assert theirs.status_code == 404, theirs.text
        assert key["id"] not in [k["id"] for k in listed(c)]
    with pytest.raises(NotFound):
        opened_key(server, "bob", str(key["id"]))
    with client(server, tokens["ada"]) as c:
        assert key in listed(c)  # bob's attempt changed nothing
        assert opened_key(server, "ada", str(key["id"])).id == key["id"]
        gone = c.delete(f"/api/publish/ssh-keys/{key['id']}")
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"deleted": key["id"]}
        assert key["id"] not in [k["id"] for k in listed(c)]
        again = c.delete(f"/api/publish/ssh-keys/{key['id']}")
        assert again.status_code == 404
        assert c.delete("/api/publish/ssh-keys/no-such-key").status_code == 404
    with pytest.raises(NotFound):
        opened_key(server, "ada", str(key["id"]))


def test_rotation_counts_ssh_keys(server: Server, tokens: dict[str, str]) -> None:
    """`hutch secret keys` names the secrets keys SSH keys are sealed with, so rotation does
    not drop one they need."""
    with client(server, tokens["ada"]) as c:
        assert c.post("/api/publish/ssh-keys", json={"label": "r", "generate": True}).is_success
    code, keys = hutch(server.settings, "secret", "keys")
    assert code == 0, keys
    assert keys["sshKeysInUse"][keys["current"]] >= 1
    assert keys["unreadable"] == []


def test_no_credentials_no_keys(server: Server) -> None:
    with server.client() as c:
        assert c.get("/api/publish/ssh-keys").status_code == 401
        made = c.post("/api/publish/ssh-keys", json={"label": "x", "generate": True})
        assert made.status_code == 401


@pytest.mark.slow
def test_branches_over_real_ssh(server: Server, tmp_path: Path) -> None:
    _, token = developer_with_app(server.settings, "cyd", "cyd-app")
    with running_sshd(tmp_path / "sshd") as sshd, client(server, token) as c:
        bare = bare_repository(sshd.root / "repos", "app.git", {"main": "a", "dev": "b"})
        public = ssh_keygen(tmp_path / "id")
        sshd.authorize(public)
        private = (tmp_path / "id").read_text()
        key = c.post("/api/publish/ssh-keys", json={"label": "ssh", "privateKey": private})
        assert key.status_code == 201, key.text
        stranger = c.post("/api/publish/ssh-keys", json={"label": "no", "generate": True})
        assert set_source(c, sshd.remote(bare), "cyd-app").status_code == 200
        wanted = {"app": "cyd-app", "sshKeyId": key.json()["id"]}

        listed = c.get("/api/branches", params={**wanted, "knownHosts": sshd.known_hosts_line})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert {b["name"]: b["commit"] for b in body["branches"]} == commits_of(bare)
        assert body["default"] == "main"

        # A host key that is not the one given: refused by ssh, before any key is offered.
        other = ssh_keygen(tmp_path / "other-host").split()
        forged = f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}"
        changed = c.get("/api/branches", params={**wanted, "knownHosts": forged})
        assert changed.status_code == 502, changed.text
        error = changed.json()["error"]
        assert error["code"] == "remote_unavailable"
        assert "Host key verification failed" in error["message"]

        # A key the remote does not accept: its refusal, with no key or path in it.
        refused = c.get(
            "/api/branches",
            params={
                "app": "cyd-app",
                "sshKeyId": stranger.json()["id"],
                "knownHosts": sshd.known_hosts_line,
            },
        )
        assert refused.status_code == 502, refused.text
        message = refused.json()["error"]["message"]
        assert "Permission denied" in message
        assert "hutch-git-" not in message
        assert "/tmp" not in message
        for line in private.splitlines()[1:-1]:
            assert line not in refused.text


def set_source(c: httpx.Client, url: str | None, app: str) -> httpx.Response:
    return c.patch(f"/api/apps/{app}", json={"sourceRepository": url})


def commits_of(bare: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        cwd=bare,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())
