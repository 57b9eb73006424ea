"""BuildHut uploads and downloads over HTTP on the filesystem object store: presigned and
direct uploads, the latest build and its download, platform routes, counts, icons."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builds_support import (
    bearer,
    developer_token,
    direct_upload,
    follow,
    json_of,
    payload,
    presigned_upload,
)
from tests.conftest import Server, serve_in_thread
from tests.helpers import developer_with_app, error_of

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
        assert done["s3Key"] == "apps/ada-app/1.0.0/ada-arm64-v8a.apk"
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
        assert httpx.put(ada_grant["uploadUrl"], content=b"ada's bytes").status_code == 200
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
        never_put = c.post(
            "/api/upload",
            headers=bearer(ada),
            json={
                "name": "ada-app",
                "version": "8.0.0",
                "fileName": "a.apk",
                "s3Key": "apps/ada-app/8.0.0/a.apk",
            },
        )
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
            grant["uploadUrl"], content=iter([payload(LIMIT), b"one byte too many"])
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
    from hutch.keys import derive
    from storage.objects.signing import Grant, sign_url

    runtime = server.runtime
    return sign_url(derive(runtime.secret, "objects"), server.url, Grant(**grant))  # type: ignore[attr-defined, arg-type]


def test_tampered_and_expired_urls_are_refused(server: Server, ada: str) -> None:
    import time

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
