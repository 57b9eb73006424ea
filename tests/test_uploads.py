"""BuildHut uploads and downloads over HTTP on the filesystem object store: presigned and
direct uploads, the latest build and its download, platform routes, counts, icons."""

from __future__ import annotations

import hashlib
import io
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
    serve_builds,
)
from tests.conftest import Server
from tests.helpers import developer_with_app, error_of, eventually

LIMIT = 256 * 1024  # HUTCH_MAX_UPLOAD for these tests: oversize cases stay small


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("uploads") / "data"
    yield from serve_builds(data, HUTCH_MAX_UPLOAD=str(LIMIT))


@pytest.fixture(scope="module")
def ada(server: Server) -> str:
    """A developer who owns `ada-app`; her token."""
    _, token = developer_with_app(server.settings.data, "ada", "ada-app")
    return token


@pytest.fixture(scope="module")
def bob(server: Server) -> str:
    return developer_token(server.settings.data, "bob")


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
