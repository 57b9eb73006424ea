"""BuildHut uploads and downloads over HTTP on the filesystem object store: presigned and
direct uploads, the latest build and its download, platform routes, counts, icons."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.builds import (
    bearer,
    developer_token,
    direct_upload,
    follow,
    json_of,
    payload,
    presigned_upload,
)
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024  # HUTCH_MAX_UPLOAD for these tests: oversize cases stay small


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("uploads") / "data"
    yield from serve_in_thread(data, HUTCH_MAX_UPLOAD=str(LIMIT))


@pytest.fixture(scope="module")
def ada(server: Server) -> str:
    """A developer who owns `ada-app`; her token."""
    _, token = developer_with_app(server.settings, "ada", "ada-app")
    return token


@pytest.fixture(scope="module")
def bob(server: Server) -> str:
    return developer_token(server.settings, "bob")


def objects_root(server: Server) -> Path:
    return server.settings.data / "objects"


def test_presigned_round_trip(server: Server, ada: str) -> None:
    body = payload(100_000)
    with server.client() as c:
        done = json_of(presigned_upload(c, ada, "ada-app", "1.0.0", "ada-arm64-v8a.apk", body), 201)
        assert done["os"] == "android"
        assert done["architecture"] == "arm64-v8a"
        assert done["format"] == "apk"
        assert done["size"] == len(body)
        assert done["sha256"] == hashlib.sha256(body).hexdigest()
        assert re.fullmatch(
            r"apps/ada-app/1\.0\.0/[0-9a-f]{16}-[0-9a-f]{20}/ada-arm64-v8a\.apk", done["s3Key"]
        )
        info = c.get("/api/app/ada-app")
        assert info.status_code == 200
        assert info.headers["cache-control"] == "public, max-age=300"
        shown = info.json()
        assert shown["app"] == "ada-app"
        assert shown["version"] == shown["tag"] == "1.0.0"
        assert shown["uploadedAt"].endswith("Z")
        assert httpx.get(shown["downloadUrl"]).content == body
        latest = c.get("/api/apps/ada-app/latest")
        download = follow(latest)
        assert download.content == body
        assert 'filename="ada-arm64-v8a.apk"' in download.headers["content-disposition"]


def test_direct_round_trip_and_new_app(server: Server, bob: str) -> None:
    """An upload for an app nobody has creates it for the caller, secret shown once."""
    body = payload(50_000, seed=3)
    with server.client() as c:
        done = json_of(direct_upload(c, bob, "bob-tool", "2.1.0", "bob-tool_amd64.deb", body), 201)
        assert done["appCreated"]["app"] == "bob-tool"
        assert done["appCreated"]["secret"].startswith("hs_")
        assert (done["os"], done["architecture"], done["format"]) == ("linux", "x86_64", "deb")
        assert follow(c.get("/api/apps/bob-tool/latest")).content == body
        apps = c.get("/api/apps", headers=bearer(bob)).json()["apps"]
        assert [a["name"] for a in apps] == ["bob-tool"]
        # A second build of the same app: no new app.
        again = json_of(direct_upload(c, bob, "bob-tool", "2.2.0", "bob-tool_amd64.deb", body), 201)
        assert "appCreated" not in again


def test_builds_are_immutable_but_retries_are_answered(server: Server, ada: str) -> None:
    body = payload(10_000, seed=5)
    with server.client() as c:
        first = json_of(direct_upload(c, ada, "ada-app", "3.0.0", "ada.AppImage", body), 201)
        repeat = json_of(
            c.post(
                "/api/upload",
                headers=bearer(ada),
                json={
                    "name": "ada-app",
                    "version": "3.0.0",
                    "fileName": "ada.AppImage",
                    "s3Key": first["s3Key"],
                },
            ),
            200,
        )
        assert repeat["id"] == first["id"]
        refused = direct_upload(c, ada, "ada-app", "3.0.0", "ada.AppImage", payload(10, seed=9))
        assert refused.status_code == 409
        assert error_of(refused)["code"] == "build_exists"
        presign = c.post(
            "/api/upload/presign",
            headers=bearer(ada),
            json={"fileName": "ada.AppImage", "name": "ada-app", "version": "3.0.0"},
        )
        assert presign.status_code == 409
        # The stored build was not touched by the refused upload.
        assert follow(c.get("/api/apps/ada-app/latest/linux/x86_64/appimage")).content == body


# --- who may upload ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_token"),
        ({"Authorization": "Bearer nope"}, 401, "invalid_token"),
        ({"Authorization": "Bearer bh_" + "0" * 64}, 401, "invalid_token"),
        ({"Authorization": "Basic abc"}, 401, "missing_token"),
    ],
)
def test_uploads_need_a_valid_token(
    server: Server, headers: dict[str, str], status: int, code: str
) -> None:
    grant = {"fileName": "x.apk", "name": "ada-app", "version": "9.0.0"}
    with server.client() as c:
        for answer in (
            c.post("/api/upload/presign", headers=headers, json=grant),
            c.post(
                "/api/upload", headers=headers, json={**grant, "s3Key": "apps/ada-app/9.0.0/x.apk"}
            ),
            c.post("/api/upload", headers=headers, data=grant, files={"file": ("x.apk", b"x")}),
            c.get("/api/apps/ada-app/builds", headers=headers),
            c.put("/api/apps/ada-app/icon", headers=headers, content=b"\x89PNG\r\n\x1a\n"),
        ):
            assert answer.status_code == status, answer.text
            assert error_of(answer)["code"] == code
    assert not (objects_root(server) / "apps/ada-app/9.0.0").exists()


def test_another_developers_app_is_refused(server: Server, ada: str, bob: str) -> None:
    grant = {"fileName": "evil.apk", "name": "ada-app", "version": "6.6.6"}
    with server.client() as c:
        presign = c.post("/api/upload/presign", headers=bearer(bob), json=grant)
        assert presign.status_code == 403
        assert error_of(presign)["field"] == "name"
        # Even with a key obtained some other way, finalize is refused...
        ada_grant = json_of(c.post("/api/upload/presign", headers=bearer(ada), json=grant), 200)
        put = httpx.put(ada_grant["uploadUrl"], content=b"ada's")
        assert put.status_code == 200
        finalize = c.post(
            "/api/upload", headers=bearer(bob), json={**grant, "s3Key": ada_grant["s3Key"]}
        )
        assert finalize.status_code == 403
        # ...as is a direct upload, which stores nothing.
        direct = direct_upload(c, bob, "ada-app", "6.6.7", "evil.apk", b"bob's bytes")
        assert direct.status_code == 403
        assert not (objects_root(server) / "apps/ada-app/6.6.7").exists()
        assert c.get("/api/apps/ada-app/builds", headers=bearer(bob)).status_code == 403
        listing = json_of(c.get("/api/apps/ada-app/builds", headers=bearer(ada)), 200)
        assert "6.6.6" not in {b["version"] for b in listing["builds"]}


@pytest.mark.parametrize(
    "file_name",
    [
        "../../secret.key.apk",
        "a/b.apk",
        "..\\..\\x.apk",
        ".hidden.apk",
        "-rf.apk",
        "a\x00b.apk",
        "x\n.apk",
        "",
    ],
)
def test_path_traversal_in_file_name_is_refused(server: Server, ada: str, file_name: str) -> None:
    with server.client() as c:
        presign = c.post(
            "/api/upload/presign",
            headers=bearer(ada),
            json={"fileName": file_name, "name": "ada-app", "version": "7.0.0"},
        )
        assert presign.status_code == 422, presign.text
        assert error_of(presign)["field"] == "fileName"
        direct = c.post(
            "/api/upload",
            headers=bearer(ada),
            data={"name": "ada-app", "version": "7.0.0", "fileName": file_name},
            files={"file": ("x.apk", b"bytes")},
        )
        assert direct.status_code == 422, direct.text
    assert not (objects_root(server) / "apps/ada-app/7.0.0").exists()


@pytest.mark.parametrize(
    ("s3_key", "code"),
    [
        ("apps/ada-app/7.1.0/../../../secret.key", "bad_key"),
        ("../secret.key", "bad_key"),
        ("/etc/passwd", "bad_key"),
        ("apps/ada-app/7.1.0/.meta", "bad_key"),
        ("apps/bob-tool/2.1.0/bob-tool_amd64.deb", "foreign_key"),
        ("apps/ada-app/7.1.0/other.apk", "foreign_key"),
    ],
)
def test_path_traversal_in_s3_key_is_refused(
    server: Server, ada: str, s3_key: str, code: str
) -> None:
    with server.client() as c:
        answer = c.post(
            "/api/upload",
            headers=bearer(ada),
            json={"name": "ada-app", "version": "7.1.0", "fileName": "app.apk", "s3Key": s3_key},
        )
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert (error["field"], error["code"]) == ("s3Key", code)


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"version": "1.0.0", "fileName": "a.apk"}, "name", "missing_field"),
        ({"name": "ada-app", "fileName": "a.apk"}, "version", "missing_field"),
        ({"name": "ada-app", "version": "1.0.0"}, "fileName", "missing_field"),
        ({"name": "Ada App", "version": "1.0.0", "fileName": "a.apk"}, "name", "unprocessable"),
        (
            {"name": "ada-app", "version": "1.0/../2", "fileName": "a.apk"},
            "version",
            "unprocessable",
        ),
        (
            {"name": "ada-app", "version": "1.0.0", "fileName": "notes.txt"},
            "fileName",
            "unknown_platform",
        ),
        (
            {"name": "ada-app", "version": "1.0.0", "fileName": "a.apk", "os": "beos"},
            "os",
            "unprocessable",
        ),
        (
            {"name": "ada-app", "version": "1.0.0", "fileName": "a.apk", "architecture": "z80"},
            "architecture",
            "unprocessable",
        ),
        ({"name": "ada-app", "version": 1, "fileName": "a.apk"}, "version", "unprocessable"),
    ],
)
def test_presign_validates_each_field(
    server: Server, ada: str, fields: dict[str, object], field: str, code: str
) -> None:
    with server.client() as c:
        answer = c.post("/api/upload/presign", headers=bearer(ada), json=fields)
    assert answer.status_code == 422, answer.text
    assert (error_of(answer)["field"], error_of(answer)["code"]) == (field, code)


def test_bad_bodies(server: Server, ada: str) -> None:
    with server.client() as c:
        not_json = c.post(
            "/api/upload/presign",
            headers={**bearer(ada), "Content-Type": "text/plain"},
            content=b"x",
        )
        assert not_json.status_code == 415
        array = c.post("/api/upload/presign", headers=bearer(ada), json=[1])
        assert array.status_code == 400
        xml = c.post(
            "/api/upload",
            headers={**bearer(ada), "Content-Type": "application/xml"},
            content=b"<a/>",
        )
        assert xml.status_code == 415
        nothing = c.post(
            "/api/upload",
            headers=bearer(ada),
            data={"name": "ada-app", "version": "1.0.0"},
            files={"other": ("a", b"x")},
        )
        assert (nothing.status_code, error_of(nothing)["field"]) == (422, "file")
        grant = json_of(_presign(c, ada, "ada-app", "8.0.0", "a.apk"), 200)
        never_put = _finalize(c, ada, "ada-app", "8.0.0", "a.apk", grant["s3Key"])
        assert never_put.status_code == 404
        assert error_of(never_put)["code"] == "no_upload"


def test_file_must_come_last(server: Server, ada: str) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nada-app\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n8.1.0\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.apk"\r\n\r\nAPK\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="os"\r\n\r\nandroid\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    with server.client() as c:
        answer = c.post(
            "/api/upload",
            headers={**bearer(ada), "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body,
        )
    assert answer.status_code == 422
    assert error_of(answer)["code"] == "file_not_last"
    assert not (objects_root(server) / "apps/ada-app/8.1.0/a.apk").exists()


# --- size limits: 413, nothing kept -------------------------------------------------------------


def _leftovers(server: Server) -> list[Path]:
    return list((objects_root(server) / ".tmp").iterdir())


def test_oversized_direct_upload_stores_nothing(server: Server, ada: str) -> None:
    with server.client() as c:
        # Just over the limit: refused while streaming.
        streamed = direct_upload(c, ada, "ada-app", "9.1.0", "big.apk", payload(LIMIT + 1))
        assert streamed.status_code == 413, streamed.text
        assert error_of(streamed)["code"] == "too_large"
        # Far over: refused on its Content-Length before a byte is read.
        declared = direct_upload(c, ada, "ada-app", "9.2.0", "big.apk", payload(LIMIT * 2))
        assert declared.status_code == 413
        # Exactly the limit is fine.
        exact = direct_upload(c, ada, "ada-app", "9.3.0", "big.apk", payload(LIMIT))
        assert exact.status_code == 201
        versions = {
            b["version"]
            for b in c.get("/api/apps/ada-app/builds", headers=bearer(ada)).json()["builds"]
        }
    assert not (objects_root(server) / "apps/ada-app/9.1.0").exists()
    assert not (objects_root(server) / "apps/ada-app/9.2.0").exists()
    assert "9.1.0" not in versions
    assert "9.3.0" in versions
    assert _leftovers(server) == []


def test_oversized_presigned_upload_stores_nothing(server: Server, ada: str) -> None:
    with server.client() as c:
        grant = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(ada),
                json={"fileName": "big.apk", "name": "ada-app", "version": "9.4.0"},
            ),
            200,
        )
        assert grant["maxBytes"] == LIMIT
        declared = httpx.put(grant["uploadUrl"], content=payload(LIMIT + 1))
        assert declared.status_code == 413
        chunked = httpx.put(
            grant["uploadUrl"],
            content=iter([payload(LIMIT), b"one byte too many"]),
        )
        assert chunked.status_code == 413
        finalize = c.post(
            "/api/upload",
            headers=bearer(ada),
            json={
                "name": "ada-app",
                "version": "9.4.0",
                "fileName": "big.apk",
                "s3Key": grant["s3Key"],
            },
        )
        assert finalize.status_code == 404
    assert not (objects_root(server) / grant["s3Key"]).exists()
    assert _leftovers(server) == []


# --- signed URLs (the filesystem store's /objects route) --------------------------------------


def _sign(server: Server, **grant: object) -> str:
    from base.keys import derive
    from storage.objects.signing import Grant, sign_url

    runtime = server.runtime
    return sign_url(derive(runtime.secret, "objects"), server.url, Grant(**grant))  # type: ignore[attr-defined, arg-type]


def test_tampered_and_expired_urls_are_refused(server: Server, ada: str) -> None:
    with server.client() as c:
        done = json_of(direct_upload(c, ada, "ada-app", "10.0.0", "ada.apk", b"secret build"), 201)
        url = json_of(c.get("/api/app/ada-app"), 200)["downloadUrl"]
    assert httpx.get(url).content == b"secret build"
    tampered = [
        url.replace("sig=", "sig=A"),
        url.replace("10.0.0", "9.3.0"),
        url.replace("expires=", "expires=9"),
        url.replace("filename=ada.apk", "filename=other.apk"),
        url.split("&sig=")[0],
    ]
    for bad in tampered:
        answer = httpx.get(bad)
        assert answer.status_code == 403, bad
        assert error_of(answer)["code"] in ("bad_signature", "malformed_url")
    expired = _sign(server, method="GET", key=done["s3Key"], expires=int(time.time()) - 1)
    answer = httpx.get(expired)
    assert (answer.status_code, error_of(answer)["code"]) == (403, "url_expired")
    # A download URL is not an upload URL.
    assert httpx.put(url, content=b"overwrite").status_code == 403
    put_expired = _sign(
        server, method="PUT", key=done["s3Key"], expires=int(time.time()) - 1, max_bytes=10
    )
    assert httpx.put(put_expired, content=b"x").status_code == 403
    assert httpx.get(url).content == b"secret build"


def test_objects_route_cannot_reach_outside_the_store(server: Server) -> None:
    secret = (server.settings.data / "secret.key").read_bytes()
    for path in (
        "/objects/../secret.key",
        "/objects/%2e%2e/secret.key",
        "/objects/.meta/x",
        "/objects/.tmp/x",
    ):
        answer = httpx.get(server.url + path + "?expires=9999999999&sig=x")
        assert answer.status_code in (403, 404), path
        assert secret not in answer.content


# --- who owns what a presigned URL writes (issue 13: build squatting) ---------------------------


def _presign(c: httpx.Client, token: str, app: str, version: str, file_name: str) -> httpx.Response:
    grant = {"fileName": file_name, "name": app, "version": version}
    return c.post("/api/upload/presign", headers=bearer(token), json=grant)


def _finalize(
    c: httpx.Client, token: str, app: str, version: str, file_name: str, key: str
) -> httpx.Response:
    body = {"name": app, "version": version, "fileName": file_name, "s3Key": key}
    return c.post("/api/upload", headers=bearer(token), json=body)


@pytest.mark.integration
def test_presigning_a_free_name_makes_it_the_callers_app(server: Server) -> None:
    """The squat: Mallory presigns for a name nobody has, then Victor creates that app and
    uploads the same version; Mallory's URL must never put her bytes into Victor's build.
    The presign makes the name Mallory's at once, so Victor is told so up front."""
    mallory = developer_token(server.settings, "mallory")
    victor = developer_token(server.settings, "victor")
    with server.client() as c:
        grant = json_of(_presign(c, mallory, "contested", "1.0.0", "app.apk"), 200)
        assert grant["appCreated"]["app"] == "contested"
        assert grant["appCreated"]["secret"].startswith("hs_")
        taken = c.post("/api/apps", headers=bearer(victor), json={"name": "contested"})
        assert (taken.status_code, error_of(taken)["field"]) == (409, "name"), taken.text
        refused = _presign(c, victor, "contested", "1.0.0", "app.apk")
        assert (refused.status_code, error_of(refused)["field"]) == (403, "name")
        direct = direct_upload(c, victor, "contested", "1.0.0", "app.apk", b"victor's bytes")
        assert direct.status_code == 403
        # Mallory's URL uploads Mallory's build, which only Mallory can finalize.
        put = httpx.put(grant["uploadUrl"], content=b"mallory's bytes")
        assert put.status_code == 200, put.text
        theirs = _finalize(c, victor, "contested", "1.0.0", "app.apk", grant["s3Key"])
        assert theirs.status_code == 403
        json_of(_finalize(c, mallory, "contested", "1.0.0", "app.apk", grant["s3Key"]), 201)
        assert [a["name"] for a in c.get("/api/apps", headers=bearer(victor)).json()["apps"]] == []
        # A second presign of the caller's own app creates nothing.
        again = json_of(_presign(c, mallory, "contested", "1.0.1", "app.apk"), 200)
        assert "appCreated" not in again


@pytest.mark.integration
def test_a_stalled_upload_for_a_free_name_cannot_replace_the_owners_build(
    server: Server,
) -> None:
    """Mallory starts a direct upload for a name nobody has and stalls it mid-file; meanwhile
    Victor creates that app and uploads the same version and file name. When Mallory's bytes
    finally arrive they must neither become nor replace Victor's build."""
    mallory = developer_token(server.settings, "mallory2")
    victor = developer_token(server.settings, "victor2")
    release = threading.Event()
    boundary = "stalled"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nstalled-app\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n1.0.0\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="app.apk"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        # Falcon hands a chunk of the body on when the next one arrives: two, apart in time.
        yield head + b"m" * 16384
        time.sleep(0.2)
        yield b"m" * 16
        release.wait(30)
        yield f"\r\n--{boundary}--\r\n".encode()

    def mallory_upload() -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            kind = f"multipart/form-data; boundary={boundary}"
            return c.post(
                "/api/upload", headers={**bearer(mallory), "Content-Type": kind}, content=body()
            )

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(mallory_upload)
        try:
            eventually(lambda: _leftovers(server))  # her file is being written
            with server.client() as c:
                created = c.post("/api/apps", headers=bearer(victor), json={"name": "stalled-app"})
                json_of(created, 201)
                mine = json_of(
                    direct_upload(c, victor, "stalled-app", "1.0.0", "app.apk", b"victor's"), 201
                )
        finally:
            release.set()
        answer = pending.result(timeout=60)
    assert answer.status_code == 403, answer.text
    with server.client() as c:
        assert follow(c.get("/api/apps/stalled-app/latest")).content == b"victor's"
        listing = json_of(c.get("/api/apps/stalled-app/builds", headers=bearer(victor)), 200)
        assert [b["sha256"] for b in listing["builds"]] == [mine["sha256"]]
    assert _leftovers(server) == []


# --- builds are immutable: write-once objects, downloads checked against the record -----------


@pytest.mark.integration
def test_a_presigned_url_cannot_change_a_finalized_build(server: Server, ada: str) -> None:
    """The documented flow with a plain PUT, as `curl --upload-file` or any presigned-URL
    client sends it (no extra headers): presign, PUT, finalize. The URL stays valid for
    minutes after; PUTting other bytes to it then changes nothing that is served."""
    with server.client() as c:
        grant = json_of(_presign(c, ada, "ada-app", "11.0.0", "once.apk"), 200)
        assert set(grant) >= {"uploadUrl", "s3Key", "expiresIn", "maxBytes"}
        assert "headers" not in grant
        first = httpx.put(grant["uploadUrl"], content=b"a first try")
        assert first.status_code == 200, first.text
        # Until it is finalized, a PUT replaces what was staged (as S3 does).
        # Whatever type the PUT claims, the build is served as what its file name says.
        put = httpx.put(
            grant["uploadUrl"], content=b"the real build", headers={"Content-Type": "text/html"}
        )
        assert put.status_code == 200, put.text
        done = json_of(_finalize(c, ada, "ada-app", "11.0.0", "once.apk", grant["s3Key"]), 201)
        assert done["sha256"] == hashlib.sha256(b"the real build").hexdigest()
        assert done["s3Key"] != grant["s3Key"]  # the build's own key, which no URL writes
        again = httpx.put(grant["uploadUrl"], content=b"a replacement!")
        assert again.status_code == 200, again.text  # staged again, and read by nobody
        handed_out = json_of(c.get("/api/app/ada-app"), 200)["downloadUrl"]
        for served in (follow(c.get("/api/apps/ada-app/latest")), httpx.get(handed_out)):
            assert served.content == b"the real build"
            assert hashlib.sha256(served.content).hexdigest() == done["sha256"]
            assert served.headers["content-type"] == "application/vnd.android.package-archive"
        # A retried finalize answers the recorded build, whatever was PUT since.
        retry = json_of(_finalize(c, ada, "ada-app", "11.0.0", "once.apk", grant["s3Key"]), 200)
        assert (retry["id"], retry["sha256"]) == (done["id"], done["sha256"])
        assert follow(c.get("/api/apps/ada-app/latest")).content == b"the real build"
    assert _leftovers(server) == []


@pytest.mark.integration
def test_an_upload_url_writes_its_own_staging_key_only(server: Server, ada: str) -> None:
    """A presigned URL cannot be pointed at a build's key, nor at another developer's app:
    the key is signed, and only staging keys are ever signed for a PUT."""
    bob = developer_token(server.settings, "bob-urls")
    with server.client() as c:
        json_of(c.post("/api/apps", headers=bearer(bob), json={"name": "bob-urls"}), 201)
        bobs = json_of(direct_upload(c, bob, "bob-urls", "1.0.0", "b.apk", b"bob's build"), 201)
        grant = json_of(_presign(c, ada, "ada-app", "11.1.0", "u.apk"), 200)
        url, key = grant["uploadUrl"], grant["s3Key"]
        assert key.startswith("uploads/apps/ada-app/11.1.0/"), key
        for target in (bobs["s3Key"], key.replace("ada-app", "bob-urls"), key[len("uploads/") :]):
            moved = url.replace(key, target)
            assert moved != url
            refused = httpx.put(moved, content=b"mallory")
            assert (refused.status_code, error_of(refused)["code"]) == (403, "bad_signature")
        # A URL signed for a build's key (as an older Hutch signed them) writes nothing either.
        forged = _sign(
            server,
            method="PUT",
            key=bobs["s3Key"] + "x",
            expires=int(time.time()) + 60,
            max_bytes=100,
        )
        refused = httpx.put(forged, content=b"mallory")
        assert (refused.status_code, error_of(refused)["code"]) == (403, "not_an_upload_key")
        assert not (objects_root(server) / (bobs["s3Key"] + "x")).exists()
        assert follow(c.get("/api/apps/bob-urls/latest")).content == b"bob's build"


@pytest.mark.integration
def test_bytes_changed_on_disk_are_never_served(server: Server, ada: str) -> None:
    with server.client() as c:
        done = json_of(direct_upload(c, ada, "ada-app", "12.0.0", "t.apk", b"original bytes"), 201)
        handed_out = json_of(c.get("/api/app/ada-app"), 200)["downloadUrl"]
        assert httpx.get(handed_out).content == b"original bytes"
        path = objects_root(server) / done["s3Key"]
        with path.open("r+b") as file:  # the same size, other bytes: only the hash can tell
            file.write(b"EVIL")
        refusals = [
            c.get("/api/apps/ada-app/latest"),
            c.get("/api/apps/ada-app/latest/android/any/apk"),
            c.get("/api/app/ada-app"),
            httpx.get(handed_out),
        ]
        for answer, code in zip(
            refusals, ["build_corrupted"] * 3 + ["object_corrupted"], strict=True
        ):
            assert answer.status_code == 409, answer.text
            error = error_of(answer)
            assert error["code"] == code
            assert "SHA-256" in error["message"]
            assert b"EVIL" not in answer.content
        # The bytes put back (a restore: another file, the same bytes) are served again.
        path.unlink()
        path.write_bytes(b"original bytes")
        assert follow(c.get("/api/apps/ada-app/latest")).content == b"original bytes"
        assert httpx.get(handed_out).content == b"original bytes"


# --- malformed multipart bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        b'Content-Disposition: form-data; name="\xff\xfe"\r\n\r\nx',
        b'Content-Disposition: form-data; name="file"; filename="\xc3\x28.apk"\r\n\r\nAPK',
        b'Content-Disposition: form-data; name="v\xe9rsion"\r\n\r\n1.0.0',
    ],
)
@pytest.mark.integration
def test_invalid_utf8_in_a_part_header_is_a_400(server: Server, ada: str, part: bytes) -> None:
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\nada-app\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="version"\r\n\r\n13.0.0\r\n'
        b"--" + boundary + b"\r\n" + part + b"\r\n--" + boundary + b"--\r\n"
    )
    with server.client() as c:
        answer = c.post(
            "/api/upload",
            headers={**bearer(ada), "Content-Type": "multipart/form-data; boundary=b0undary"},
            content=body,
        )
    assert answer.status_code == 400, answer.text
    assert error_of(answer)["code"] == "bad_multipart"
    assert not (objects_root(server) / "apps/ada-app/13.0.0").exists()
