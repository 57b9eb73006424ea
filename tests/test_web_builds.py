"""The web-app build service over HTTP: creating builds (and every way to get it wrong),
listing them, the worker API, and `hutch builder` turning a local HTTPS web app into a
downloadable TWA project."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from base.settings import Settings
from tests.support.admin import hutch
from tests.support.builds import bearer, developer_token, json_of
from tests.support.local_https import Handler, https_server
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

pytest.importorskip("trustme")

LOCAL = "127.0.0.0/8,::1/128"
ICON = b"\x89PNG\r\n\x1a\n" + b"icon"
SITE = {
    "/": (
        "text/html",
        b'<html><head><title>Notes</title><link rel="manifest" href="/m.json"></head></html>',
    ),
    "/m.json": (
        "application/manifest+json",
        json.dumps(
            {
                "name": "Notes",
                "start_url": "/app",
                "theme_color": "#336699",
                "icons": [{"src": "/icon.png", "sizes": "512x512", "type": "image/png"}],
            }
        ).encode(),
    ),
    "/icon.png": ("image/png", ICON),
}


class _Site(Handler):
    def do_GET(self) -> None:
        kind, body = SITE.get(self.path, ("text/plain", b""))
        self.send(200 if self.path in SITE else 404, body, Content_Type=kind)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL of a local HTTPS web app, CA file that trusts it)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with https_server(_Site, cert) as httpd:
        yield f"https://localhost:{httpd.server_address[1]}", ca_file


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("web-builds") / "data"
    yield from serve_in_thread(data, HUTCH_BUILDER_ALLOW_NETWORKS=LOCAL)


@pytest.fixture(scope="module")
def ivy(server: Server) -> str:
    return developer_token(server.settings, "ivy")


def worker_token(server: Server, name: str = "builder-1") -> str:
    code, created = hutch(server.settings, "worker", "create", name)
    assert code == 0, created
    assert created["token"].startswith("hw_")
    return str(created["token"])


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": "https://example.com/",
        "name": "Example",
        "bundleId": "com.example.app",
        "version": "1.0.0",
        "permissions": ["camera", "gps"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(c: httpx.Client, token: str, **overrides: Any) -> httpx.Response:
    return c.post("/api/v1/builds", headers=bearer(token), json=request(**overrides))


def run_builder(
    server: Server, token: str, *args: str, settings: Settings | None = None
) -> tuple[int, dict[str, Any]]:
    return hutch(
        settings or server.settings,
        "builder",
        "--server",
        server.url,
        "--token",
        token,
        "--once",
        *args,
    )


def test_create_answers_queued(server: Server, ivy: str) -> None:
    with server.client() as c:
        made = json_of(create(c, ivy, bundleId="com.ivy.first"), 201)
        assert set(made) == {"id", "status", "createdAt"}
        assert made["status"] == "queued"
        shown = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(ivy)), 200)
        assert shown["status"] == "queued"
        assert shown["platform"] == "android"
        assert shown["permissions"] == ["camera", "gps"]
        assert "completedAt" not in shown
        assert "downloadUrl" not in shown
        assert "error" not in shown


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"url": "http://example.com/"}, "url", "url_not_allowed"),
        ({"url": "https://10.0.0.1/"}, "url", "url_not_allowed"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url", "url_not_allowed"),
        ({"url": "https://[fd00::1]/"}, "url", "url_not_allowed"),
        ({"url": "https://0x0a000001/"}, "url", "url_not_allowed"),
        ({"url": "https://user:pw@example.com/"}, "url", "url_not_allowed"),
        ({"url": None}, "url", "unprocessable"),
        ({"bundleId": "example"}, "bundleId", "bad_bundle_id"),
        ({"bundleId": "com.example.class"}, "bundleId", "bad_bundle_id"),
        ({"bundleId": "com.1example.app"}, "bundleId", "bad_bundle_id"),
        ({"bundleId": "com/../x"}, "bundleId", "bad_bundle_id"),
        ({"version": "1.0"}, "version", "bad_version"),
        ({"version": "v1.0.0"}, "version", "bad_version"),
        ({"version": "1000.0.0"}, "version", "bad_version"),  # past Android's versionCode
        ({"permissions": ["camera", "telepathy"]}, "permissions", "unknown_permission"),
        ({"permissions": "camera"}, "permissions", "unprocessable"),
        ({"platform": "symbian"}, "platform", "unprocessable"),
        ({"name": ""}, "name", "unprocessable"),
        ({"name": "x" * 51}, "name", "unprocessable"),
    ],
)
def test_bad_requests_are_refused(
    server: Server, ivy: str, overrides: dict[str, Any], field: str, code: str
) -> None:
    with server.client() as c:
        answer = create(c, ivy, **{"bundleId": "com.ivy.bad", **overrides})
        assert answer.status_code == 422, answer.text
        assert (error_of(answer)["field"], error_of(answer)["code"]) == (field, code)
        listing = json_of(c.get("/api/v1/builds", headers=bearer(ivy), params={"limit": 100}), 200)
    assert all(b["bundleId"] != "com.ivy.bad" for b in listing["builds"])


def test_versions_must_increase_per_bundle_and_platform(server: Server, ivy: str) -> None:
    with server.client() as c:
        json_of(create(c, ivy, bundleId="com.ivy.notes", version="1.2.0"), 201)
        for version in ("1.2.0", "1.1.9", "1.2.0-rc.1", "1.2.0+build.7"):
            answer = create(c, ivy, bundleId="com.ivy.notes", version=version)
            assert answer.status_code == 409, version
            assert (error_of(answer)["code"], error_of(answer)["field"]) == (
                "version_not_higher",
                "version",
            )
        json_of(create(c, ivy, bundleId="com.ivy.notes", version="1.2.1"), 201)
        # Another platform, or another bundle id, has its own sequence.
        json_of(create(c, ivy, bundleId="com.ivy.notes", version="1.0.0", platform="ios"), 201)
        json_of(create(c, ivy, bundleId="com.ivy.other", version="0.0.1"), 201)
    # Another developer's builds of the same bundle id do not count against this one.
    other = developer_token(server.settings, "jon")
    with server.client() as c:
        json_of(create(c, other, bundleId="com.ivy.notes", version="0.1.0"), 201)


def test_builds_are_private_and_paginated(server: Server) -> None:
    kim = developer_token(server.settings, "kim")
    with server.client() as c:
        ids = [
            json_of(create(c, kim, bundleId="com.kim.app", version=f"1.0.{i}"), 201)["id"]
            for i in range(5)
        ]
        page = json_of(
            c.get("/api/v1/builds", headers=bearer(kim), params={"limit": 2, "offset": 1}), 200
        )
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
        assert [b["id"] for b in page["builds"]] == [ids[3], ids[2]]
        default = json_of(c.get("/api/v1/builds", headers=bearer(kim)), 200)
        assert (default["limit"], default["offset"], len(default["builds"])) == (20, 0, 5)
        for params, field in (
            ({"limit": 0}, "limit"),
            ({"limit": 101}, "limit"),
            ({"offset": -1}, "offset"),
            ({"limit": "x"}, "limit"),
        ):
            answer = c.get("/api/v1/builds", headers=bearer(kim), params=params)
            assert (answer.status_code, error_of(answer)["field"]) == (400, field)
        lee = developer_token(server.settings, "lee")
        theirs = c.get(f"/api/v1/builds/{ids[0]}", headers=bearer(lee))
        assert theirs.status_code == 404
        assert json_of(c.get("/api/v1/builds", headers=bearer(lee)), 200)["total"] == 0
        assert c.get("/api/v1/builds").status_code == 401
        assert c.post("/api/v1/builds", json=request()).status_code == 401


def test_worker_api_needs_a_worker_token(server: Server, ivy: str) -> None:
    with server.client() as c:
        for headers, status, code in (
            ({}, 401, "missing_token"),
            (bearer(ivy), 403, "worker_token_required"),
            (bearer("hw_" + "0" * 64), 401, "invalid_token"),
            (bearer("hw_short"), 401, "invalid_token"),
        ):
            answer = c.post("/api/v1/worker/claim", headers=headers, json={"platform": "android"})
            assert (answer.status_code, error_of(answer)["code"]) == (status, code)
        token = worker_token(server, "revoked-one")
        worker_id = c.post(
            "/api/v1/worker/claim", headers=bearer(token), json={"platform": "symbian"}
        )
        assert worker_id.status_code == 422
    code, workers = hutch(server.settings, "worker", "create", "to-revoke")
    assert code == 0
    assert hutch(server.settings, "worker", "revoke", workers["worker"])[0] == 0
    with server.client() as c:
        revoked = c.post(
            "/api/v1/worker/claim", headers=bearer(workers["token"]), json={"platform": "android"}
        )
        assert (revoked.status_code, error_of(revoked)["code"]) == (401, "token_revoked")


def _drain(c: httpx.Client, token: str, platform: str) -> list[dict[str, Any]]:
    """Claim everything queued for `platform` (and fail it), so a test starts from empty."""
    claimed = []
    while (
        answer := c.post("/api/v1/worker/claim", headers=bearer(token), json={"platform": platform})
    ).status_code == 200:
        body = answer.json()
        claimed.append(body)
        c.post(
            f"/api/v1/worker/builds/{body['build']['id']}/status",
            headers=bearer(token),
            json={"claimId": body["claimId"], "status": "failed", "error": "drained by a test"},
        )
    assert answer.status_code == 204
    return claimed


def test_builder_turns_a_web_app_into_a_downloadable_project(
    server: Server, ivy: str, site: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = site
    token = worker_token(server)
    with server.client() as c:
        _drain(c, token, "android")
        made = json_of(
            create(
                c,
                ivy,
                url=f"{url}/",
                name="Notes",
                bundleId="com.ivy.twa",
                permissions=["camera", "notifications"],
            ),
            201,
        )
    monkeypatch.setenv("HUTCH_BUILDER_ALLOW_NETWORKS", LOCAL)
    code, outcome = run_builder(server, token, "--ca-file", str(ca_file))
    assert code == 0, outcome
    assert outcome["build"] == made["id"]
    assert outcome["status"] == "success", outcome
    with server.client() as c:
        done = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(ivy)), 200)
    assert done["status"] == "success"
    assert done["completedAt"] >= done["createdAt"]
    assert "error" not in done
    artifact = httpx.get(done["downloadUrl"])
    assert artifact.status_code == 200
    assert "com.ivy.twa-1.0.0-android.zip" in artifact.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(artifact.content)) as project:
        manifest = project.read("twa/app/src/main/AndroidManifest.xml")
        assert b"android.permission.CAMERA" in manifest
        assert b"android.permission.POST_NOTIFICATIONS" in manifest
        assert project.read("twa/app/src/main/res/mipmap-xxxhdpi/ic_launcher.png") == ICON
        assert b"#336699" in project.read("twa/app/src/main/res/values/colors.xml")
    # Nothing left to do: the next claim finds an empty queue.
    code, idle = run_builder(server, token)
    assert (code, idle) == (0, {"build": None})


def test_builder_refuses_private_addresses_and_fails_the_build(
    server: Server, ivy: str, site: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server allowed the local network when the build was made; this builder does not,
    so it refuses to fetch and fails the build with a clear error."""
    url, ca_file = site
    token = worker_token(server)
    with server.client() as c:
        _drain(c, token, "android")
        made = json_of(create(c, ivy, url=f"{url}/", bundleId="com.ivy.guarded"), 201)
    strict = dataclasses.replace(server.settings, builder_allow_networks="")
    code, outcome = run_builder(server, token, "--ca-file", str(ca_file), settings=strict)
    assert code == 0
    assert outcome["status"] == "failed"
    with server.client() as c:
        failed = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(ivy)), 200)
    assert failed["status"] == "failed"
    assert "refused to fetch the page" in failed["error"]
    assert "not public" in failed["error"]
    assert "completedAt" in failed
    assert "downloadUrl" not in failed


def test_status_only_moves_forward(server: Server, ivy: str) -> None:
    token = worker_token(server)
    with server.client() as c:
        _drain(c, token, "android")
        made = json_of(create(c, ivy, bundleId="com.ivy.forward"), 201)
        claim = json_of(
            c.post("/api/v1/worker/claim", headers=bearer(token), json={"platform": "android"}), 200
        )
        assert claim["build"]["id"] == made["id"]
        path = f"/api/v1/worker/builds/{made['id']}/status"

        def report(status: str, **extra: str) -> httpx.Response:
            return c.post(
                path,
                headers=bearer(token),
                json={"claimId": claim["claimId"], "status": status, **extra},
            )

        building = json_of(report("building"), 200)
        assert building["status"] == "building"
        assert "leaseExpiresAt" in building
        assert "upload" in building
        missing = report("success")  # nothing was uploaded
        assert (missing.status_code, error_of(missing)["code"]) == (404, "no_upload")
        assert json_of(report("failed", error="compiler exploded"), 200)["status"] == "failed"
        assert json_of(report("failed", error="again"), 200)["status"] == "failed"  # a retry
        for status in ("building", "success"):
            backwards = report(status)
            assert backwards.status_code == 409, status
        assert report("queued").status_code == 422
        assert report("failed").status_code == 422  # no error message
        wrong_claim = c.post(
            path, headers=bearer(token), json={"claimId": "x", "status": "building"}
        )
        assert (wrong_claim.status_code, error_of(wrong_claim)["code"]) == (409, "lease_lost")
        other = worker_token(server, "builder-2")
        stolen = c.post(
            path, headers=bearer(other), json={"claimId": claim["claimId"], "status": "building"}
        )
        assert stolen.status_code == 409
        shown = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(ivy)), 200)
        assert (shown["status"], shown["error"]) == ("failed", "compiler exploded")


def test_an_upload_url_cannot_change_a_finished_artifact(server: Server, ivy: str) -> None:
    """The claim's upload URL outlives the build (lease + 5 minutes): a plain PUT to it after
    `success` only stages bytes nobody reads; the artifact served is the one reported."""
    token = worker_token(server, "builder-late")
    with server.client() as c:
        _drain(c, token, "android")
        made = json_of(create(c, ivy, bundleId="com.ivy.once"), 201)
        claim = json_of(
            c.post("/api/v1/worker/claim", headers=bearer(token), json={"platform": "android"}), 200
        )
        upload = claim["upload"]
        assert "headers" not in upload
        assert httpx.put(upload["url"], content=b"PK the project").status_code == 200
        body = {"claimId": claim["claimId"], "status": "success"}
        path = f"/api/v1/worker/builds/{made['id']}/status"
        json_of(c.post(path, headers=bearer(token), json=body), 200)
        late = httpx.put(upload["url"], content=b"PK another one")
        assert late.status_code == 200, late.text
        done = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(ivy)), 200)
        served = httpx.get(done["downloadUrl"])
        assert served.content == b"PK the project"
        assert hashlib.sha256(served.content).hexdigest() == done["sha256"]
        assert served.headers["content-type"] == "application/zip"


def test_concurrent_claims_get_distinct_builds(server: Server, ivy: str) -> None:
    tokens = [worker_token(server, f"racer-{i}") for i in range(4)]
    with server.client() as c:
        _drain(c, tokens[0], "ios")
        made = {
            json_of(
                create(c, ivy, bundleId="com.ivy.race", platform="ios", version=f"2.0.{i}"), 201
            )["id"]
            for i in range(6)
        }

    def claim(token: str) -> str | None:
        with server.client() as c:
            answer = c.post("/api/v1/worker/claim", headers=bearer(token), json={"platform": "ios"})
            return None if answer.status_code == 204 else str(answer.json()["build"]["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = list(pool.map(claim, [tokens[i % 4] for i in range(10)]))
    got = [b for b in claimed if b is not None]
    assert sorted(got) == sorted(made)  # each build exactly once
    assert claimed.count(None) == 4
