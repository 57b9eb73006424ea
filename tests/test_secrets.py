"""CI job secrets: sealed with AES-GCM under named keys (base/secret_box.py), added and deleted
by their owner (CLI and HTTP), listed as summaries only, opened only for a job's dequeue."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from base.keys import derive, secret_key
from base.secret_box import SecretBox, Tampered, UnknownKey, box_from_settings, key_id
from base.settings import SettingsError
from hutch.runtime import Runtime
from ingest import identity_commands
from ingest import secret_commands as commands
from schemas.secrets import MAX_SECRET_BYTES
from state.command_context import IDENTITY, CommandContext
from state.relational import rebuild
from tests.support.admin import hutch
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.settings import make_settings

K1, K2, K3 = (bytes([n]) * 32 for n in (1, 2, 3))
SUMMARY = {"id", "name", "type", "path", "mode", "createdAt"}


# --- the box, alone ---


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    box = SecretBox(K1)
    one, kid = box.seal(b"hunter2", b"secret-a")
    two, _ = box.seal(b"hunter2", b"secret-a")
    assert one != two  # a random nonce per seal
    assert kid == box.key_id == key_id(K1)
    assert len(kid) == 16
    assert box.open(one, kid, b"secret-a") == b"hunter2"
    assert box.open(two, kid, b"secret-a") == b"hunter2"
    assert b"hunter2" not in base64.b64decode(one)


def test_a_tampered_ciphertext_is_refused() -> None:
    box = SecretBox(K1)
    sealed, kid = box.seal(b"the secret", b"ad")
    raw = base64.b64decode(sealed)
    for at in (0, 11, 12, len(raw) - 17, len(raw) - 1):  # nonce, body and tag
        flipped = bytearray(raw)
        flipped[at] ^= 0x01
        with pytest.raises(Tampered, match="does not authenticate"):
            box.open(base64.b64encode(bytes(flipped)).decode(), kid, b"ad")
    with pytest.raises(Tampered, match="too short"):
        box.open(base64.b64encode(raw[:20]).decode(), kid, b"ad")
    with pytest.raises(Tampered, match="not base64"):
        box.open("not base64!", kid, b"ad")


def test_other_associated_data_is_refused() -> None:
    """A ciphertext moved onto another secret (id, owner, where it goes) does not open."""
    box = SecretBox(K1)
    mine = commands.associated_data("id-1", "alice", "file", "~/.netrc", 0o600)
    sealed, kid = box.seal(b"machine x login y", mine)
    for other in (
        commands.associated_data("id-2", "alice", "file", "~/.netrc", 0o600),
        commands.associated_data("id-1", "mallory", "file", "~/.netrc", 0o600),
        commands.associated_data("id-1", "alice", "file", "~/.bashrc", 0o600),
        commands.associated_data("id-1", "alice", "file", "~/.netrc", 0o644),
        commands.associated_data("id-1", "alice", "ssh_key", None, 0o600),
    ):
        with pytest.raises(Tampered):
            box.open(sealed, kid, other)
    assert box.open(sealed, kid, mine) == b"machine x login y"


def test_rotation_keeps_old_ciphertexts_while_their_key_is_kept() -> None:
    sealed, old_id = SecretBox(K1).seal(b"old secret", b"ad")
    rotated = SecretBox(K2, [K1])
    assert rotated.key_id == key_id(K2)
    assert rotated.key_ids == (key_id(K2), old_id)
    assert rotated.open(sealed, old_id, b"ad") == b"old secret"
    new, new_id = rotated.seal(b"new secret", b"ad")
    assert new_id == key_id(K2)
    with pytest.raises(UnknownKey, match=old_id):
        SecretBox(K2).open(sealed, old_id, b"ad")  # the old key dropped
    with pytest.raises(UnknownKey):
        SecretBox(K1).open(new, new_id, b"ad")


def test_keys_come_from_settings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    derived = box_from_settings(make_settings(data))
    server = secret_key(make_settings(data))
    assert derived.key_id == key_id(derive(server, "job-secrets"))
    assert box_from_settings(make_settings(data)).key_id == derived.key_id  # stable
    given = box_from_settings(
        make_settings(
            data,
            HUTCH_SECRETS_KEY=K2.hex(),
            HUTCH_SECRETS_OLD_KEYS=f"{base64.b64encode(K1).decode()}, derived",
        )
    )
    assert given.key_ids == (key_id(K2), key_id(K1), derived.key_id)
    url_safe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    assert box_from_settings(make_settings(data, HUTCH_SECRETS_KEY=url_safe)).key_id == key_id(
        b"\xfb" * 32
    )
    for env, bad in (
        ("HUTCH_SECRETS_KEY", "too-short"),
        ("HUTCH_SECRETS_KEY", K1.hex()[:-2]),
        ("HUTCH_SECRETS_OLD_KEYS", f"{K1.hex()},nonsense"),
    ):
        with pytest.raises(SettingsError, match=env):
            box_from_settings(make_settings(data, **{env: bad}))


# --- commands on real stores: only ciphertext at rest, and the dequeue's view ---


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(make_settings(tmp_path / "data", HUTCH_SECRETS_KEY=K1.hex()))
    await asyncio.to_thread(rt.db.migrate)
    await rt.start()
    yield rt
    await rt.close()
    rt.release()


async def _developers(ctx: CommandContext, *names: str) -> None:
    for name in names:
        await identity_commands.create_developer(ctx, name)


@pytest.mark.integration
async def test_only_ciphertext_rests_in_the_log_and_the_store(runtime: Runtime) -> None:
    ctx = runtime.command_context
    box = ctx.secret_box
    assert box.key_id == key_id(K1)
    await _developers(ctx, "ada")
    plaintext = f"-----BEGIN OPENSSH PRIVATE KEY----- {secrets.token_hex(24)}".encode()
    added = await commands.add_secret(ctx, "ada", "deploy key", "ssh_key", plaintext)
    assert set(added) == SUMMARY
    assert (added["type"], added["path"], added["mode"]) == ("ssh_key", None, 0o600)
    assert uuid.UUID(added["id"]).version == 4
    await rebuild(runtime.log, runtime.db, IDENTITY)  # a replay of the projection, too

    forms = [plaintext, base64.b64encode(plaintext), plaintext[-48:]]
    rows = runtime.db.fetchall("SELECT * FROM secrets")
    assert len(rows) == 1
    assert key_id(K1) in rows[0]
    for partition in await runtime.log.partitions("apps"):
        for record in await runtime.log.read("apps", partition, 0, 10_000):
            assert not any(form in record.envelope.payload for form in forms)
    assert not any(form.decode() in str(row) for row in rows for form in forms)
    if runtime.settings.db_url.startswith("sqlite") and runtime.settings.log_url.startswith(
        "sqlite"
    ):
        files = [p for p in runtime.settings.data.rglob("*") if p.is_file()]
        assert any(p.name.startswith("log.db") for p in files)
        assert any(p.name.startswith("hutch.db") for p in files)
        for path in files:  # the databases with their WAL files, and anything else there
            content = path.read_bytes()
            assert not any(form in content for form in forms), path

    opened = await asyncio.to_thread(
        commands.secrets_for_job, runtime.db, box, "ada", [added["id"]]
    )
    assert opened == [
        {
            "id": added["id"],
            "name": "deploy key",
            "type": "ssh_key",
            "path": None,
            "mode": 0o600,
            "data": base64.b64encode(plaintext).decode(),
        }
    ]


@pytest.mark.integration
async def test_a_job_gets_only_its_owners_live_readable_secrets(runtime: Runtime) -> None:
    ctx = runtime.command_context
    await _developers(ctx, "bea", "cyd")
    netrc = await commands.add_secret(
        ctx, "bea", "netrc", "file", b"machine m", "dir/.netrc", "0640"
    )
    assert (netrc["path"], netrc["mode"]) == ("~/dir/.netrc", 0o640)
    theirs = await commands.add_secret(ctx, "cyd", "pgp", "pgp_key", b"-----BEGIN PGP")

    def dequeue(box: SecretBox, owner: str, ids: list[str]) -> list[dict[str, Any]]:
        return commands.secrets_for_job(runtime.db, box, owner, ids)

    rotated = SecretBox(K2, [K1])
    new = await commands.add_secret(
        replace(ctx, secret_box=rotated), "bea", "key", "ssh_key", b"new key"
    )
    both = await asyncio.to_thread(dequeue, rotated, "bea", [netrc["id"], new["id"], netrc["id"]])
    assert [s["data"] for s in both] == [
        base64.b64encode(b"machine m").decode(),
        base64.b64encode(b"new key").decode(),
    ]
    for ids, code in (
        ([theirs["id"]], "unknown_secret"),  # another developer's
        ([str(uuid.uuid4())], "unknown_secret"),
        ([netrc["id"], "not-a-uuid"], "unknown_secret"),
    ):
        with pytest.raises(commands.JobSecretError) as refused:
            await asyncio.to_thread(dequeue, rotated, "bea", ids)
        assert (refused.value.code, refused.value.field) == (code, "secrets")
        assert refused.value.secret_id == ids[-1]
        assert ids[-1] in refused.value.message
    with pytest.raises(commands.JobSecretError) as gone:  # the old key dropped too soon
        await asyncio.to_thread(dequeue, SecretBox(K2), "bea", [new["id"], netrc["id"]])
    assert gone.value.code == "unreadable_secret"
    assert netrc["id"] in gone.value.message
    assert key_id(K1) in gone.value.message

    await commands.delete_secret(ctx, "bea", netrc["id"])
    with pytest.raises(commands.JobSecretError):
        await asyncio.to_thread(dequeue, rotated, "bea", [netrc["id"]])
    await asyncio.to_thread(commands.check_job_secrets, runtime.db, "bea", [new["id"]])


# --- HTTP and the CLI ---


def _token(server: Server, name: str, scopes: str | None = None) -> str:
    extra = [] if scopes is None else ["--scopes", scopes]
    code, token = hutch(server.settings, "token", "create", "--developer", name, *extra)
    assert code == 0, token
    return str(token["token"])


def _developer(server: Server, name: str, scopes: str | None = None) -> str:
    hutch(server.settings, "developer", "create", name)
    return _token(server, name, scopes)


@pytest.fixture(scope="module")
def dee(server: Server) -> Iterator[httpx.Client]:
    with server.client(Authorization=f"Bearer {_developer(server, 'dee')}") as client:
        yield client


def _json(data: bytes, **fields: Any) -> dict[str, Any]:
    return {
        "name": "a secret",
        "type": "ssh_key",
        "data": base64.b64encode(data).decode(),
        **fields,
    }


def test_http_add_list_delete_never_answer_the_secret(server: Server, dee: httpx.Client) -> None:
    plaintext = f"ssh key {secrets.token_hex(16)}".encode()
    added = dee.post("/api/secrets", json=_json(plaintext, name="deploy"))
    assert added.status_code == 201, added.text
    body = added.json()
    assert set(body) == SUMMARY
    assert body["name"] == "deploy"
    assert body["mode"] == 0o600
    form = dee.post(
        "/api/secrets",
        data={"name": "netrc", "type": "file", "path": "~/.netrc", "mode": "600"},
        files={"file": ("netrc", plaintext + b" as a file", "application/octet-stream")},
    )
    assert form.status_code == 201, form.text
    assert (form.json()["path"], form.json()["mode"]) == ("~/.netrc", 0o600)

    listing = dee.get("/api/secrets")
    assert listing.status_code == 200
    assert [s["id"] for s in listing.json()["secrets"]] == [form.json()["id"], body["id"]]
    assert all(set(s) == SUMMARY for s in listing.json()["secrets"])
    ciphertexts = [str(r[0]) for r in server.runtime.db.fetchall("SELECT ciphertext FROM secrets")]  # type: ignore[attr-defined]
    for answer in (added, form, listing):
        assert plaintext.decode() not in answer.text
        assert base64.b64encode(plaintext).decode() not in answer.text
        assert not any(c in answer.text or c[:24] in answer.text for c in ciphertexts)

    gone = dee.delete(f"/api/secrets/{body['id']}")
    assert (gone.status_code, gone.json()) == (200, {"deleted": body["id"]})
    assert [s["id"] for s in dee.get("/api/secrets").json()["secrets"]] == [form.json()["id"]]
    again = dee.delete(f"/api/secrets/{body['id']}")
    assert again.status_code == 404
    assert error_of(again)["code"] == "not_found"


def test_another_developers_secrets_are_not_there(server: Server, dee: httpx.Client) -> None:
    mine = dee.post("/api/secrets", json=_json(b"dee's"))
    assert mine.status_code == 201
    with server.client(Authorization=f"Bearer {_developer(server, 'eve')}") as eve:
        assert eve.get("/api/secrets").json() == {"secrets": []}
        refused = eve.delete(f"/api/secrets/{mine.json()['id']}")
        assert refused.status_code == 404, refused.text
        assert mine.json()["id"] in error_of(refused)["message"]
        assert eve.delete(f"/api/secrets/{uuid.uuid4()}").status_code == 404
    assert mine.json()["id"] in [s["id"] for s in dee.get("/api/secrets").json()["secrets"]]


BAD: list[tuple[str, dict[str, Any], int, str]] = [
    ("not base64", {"data": "not base64!"}, 400, "data"),
    ("data not a string", {"data": 5}, 400, "data"),
    ("no data", {"data": None}, 422, "data"),
    ("empty data", {"data": ""}, 422, "data"),
    ("oversize", {"data": base64.b64encode(b"x" * (MAX_SECRET_BYTES + 1)).decode()}, 413, "data"),
    ("unknown type", {"type": "aws_key"}, 422, "type"),
    ("type not a string", {"type": ["file"]}, 400, "type"),
    ("file without path", {"type": "file"}, 422, "path"),
    ("dot-dot in path", {"type": "file", "path": "~/../etc/passwd"}, 422, "path"),
    ("dot-dot inside", {"type": "file", "path": "a/../../b"}, 422, "path"),
    ("absolute path", {"type": "file", "path": "/etc/passwd"}, 422, "path"),
    ("another home", {"type": "file", "path": "~root/x"}, 422, "path"),
    ("a directory", {"type": "file", "path": "~/dir/"}, 422, "path"),
    ("path on a key", {"path": "~/.ssh/id"}, 422, "path"),
    ("mode too big", {"mode": 0o1000}, 422, "mode"),
    ("mode negative", {"mode": -1}, 422, "mode"),
    ("mode not octal", {"mode": "0999"}, 422, "mode"),
    ("mode a bool", {"mode": True}, 400, "mode"),
    ("no name", {"name": None}, 422, "name"),
    ("name not a string", {"name": 7}, 400, "name"),
    ("name with a newline", {"name": "a\nb"}, 422, "name"),
]


@pytest.mark.parametrize(("case", "change", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_field_and_stores_nothing(
    dee: httpx.Client, case: str, change: dict[str, Any], status: int, field: str
) -> None:
    before = dee.get("/api/secrets").json()
    body = {k: v for k, v in {**_json(b"s"), **change}.items() if v is not None}
    answer = dee.post("/api/secrets", json=body)
    assert answer.status_code == status, (case, answer.text)
    assert error_of(answer).get("field") == field, answer.text
    assert dee.get("/api/secrets").json() == before


def test_bad_forms_and_media(dee: httpx.Client) -> None:
    before = dee.get("/api/secrets").json()
    big = dee.post(
        "/api/secrets",
        data={"name": "n", "type": "ssh_key"},
        files={"file": ("k", b"x" * (MAX_SECRET_BYTES + 1))},
    )
    assert big.status_code == 413
    assert error_of(big)["field"] == "file"
    stray = dee.post(
        "/api/secrets",
        data={"name": "n", "type": "ssh_key", "owner": "eve"},
        files={"file": ("k", b"key")},
    )
    assert stray.status_code == 400
    assert error_of(stray)["field"] == "owner"
    text = dee.post("/api/secrets", content=b"k", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert error_of(text)["field"] == "Content-Type"
    form = "multipart/form-data; boundary=zz"
    for body in (
        b"garbage",
        b'--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\nabc',  # cut short
        b'--zz\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nabc\r\n--zz--\r\n',
        b'--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--zz--\r\n',
    ):
        broken = dee.post("/api/secrets", content=body, headers={"Content-Type": form})
        assert broken.status_code == 400, (body, broken.text)
        error_of(broken)
    assert dee.get("/api/secrets").json() == before


def test_scopes(server: Server) -> None:
    jobs_only = _developer(server, "fyn", "jobs:read,jobs:write")
    with server.client(Authorization=f"Bearer {jobs_only}") as c:
        for answer, scope in (
            (c.post("/api/secrets", json=_json(b"k")), "secrets:write"),
            (c.delete(f"/api/secrets/{uuid.uuid4()}"), "secrets:write"),
            (c.get("/api/secrets"), "secrets:read"),
        ):
            assert answer.status_code == 403, answer.text
            error = error_of(answer)
            assert error["code"] == "missing_scope"
            assert scope in error["message"]
    writer = _token(server, "fyn", "secrets:write")
    reader = _token(server, "fyn", "secrets:read")
    with server.client(Authorization=f"Bearer {writer}") as w:
        added = w.post("/api/secrets", json=_json(b"k"))
        assert added.status_code == 201, added.text
        assert w.get("/api/secrets").status_code == 403
    with server.client(Authorization=f"Bearer {reader}") as r:
        assert [s["id"] for s in r.get("/api/secrets").json()["secrets"]] == [added.json()["id"]]
        assert r.post("/api/secrets", json=_json(b"k")).status_code == 403


def test_cli(server: Server, tmp_path: Path) -> None:
    settings = server.settings
    hutch(settings, "developer", "create", "gia")
    key = tmp_path / "id_ed25519"
    marker = secrets.token_hex(16)
    key.write_bytes(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n".encode())
    code, added = hutch(
        settings, "secret", "add", str(key), "--developer", "gia", "--type", "ssh_key",
        "--name", "deploy", "--mode", "0400",
    )  # fmt: skip
    assert code == 0, added
    assert set(added) == SUMMARY
    assert added["mode"] == 0o400
    code, listed = hutch(settings, "secret", "list", "--developer", "gia")
    assert code == 0
    assert [s["id"] for s in listed["secrets"]] == [added["id"]]
    assert marker not in str(listed)
    assert listed["secrets"][0]["keyId"]
    code, keys = hutch(settings, "secret", "keys")
    assert code == 0
    assert keys["current"] == listed["secrets"][0]["keyId"]
    assert keys["inUse"][keys["current"]] >= 1
    assert keys["unreadable"] == []
    code, refused = hutch(
        settings, "secret", "add", str(key), "--developer", "gia", "--type", "file",
        "--name", "no path",
    )  # fmt: skip
    assert (code, refused["error"]["field"]) == (1, "path")
    code, missing = hutch(settings, "secret", "delete", added["id"], "--developer", "dee")
    assert (code, missing["error"]["code"]) == (1, "not_found")
    assert hutch(settings, "secret", "delete", added["id"], "--developer", "gia") == (
        0,
        {"deleted": added["id"]},
    )
