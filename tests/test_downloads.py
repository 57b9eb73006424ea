"""Downloads: the latest build, platform routes with aliases, counts per build and per day
(with the 30-second debounce per client address, also under concurrent requests), app info
and its cache, icons and /api/img. Client addresses come from X-Forwarded-For, which uvicorn
takes from a trusted proxy (127.0.0.1, as these requests come from)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.builds import bearer, direct_upload, follow, json_of
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("downloads") / "data")


@pytest.fixture(scope="module")
def cleo(server: Server) -> str:
    _, token = developer_with_app(server.settings, "cleo", "cleo-app")
    uploads = [
        ("1.0.0", "cleo-1.0.0-x86_64.AppImage"),
        ("1.0.0", "cleo_1.0.0_amd64.deb"),
        ("1.0.0", "cleo-1.0.0-arm64.rpm"),
        ("1.0.0", "cleo-setup-x64.exe"),
        ("1.1.0", "cleo-1.1.0-x86_64.AppImage"),
        ("1.1.0", "cleo-universal.apk"),
    ]
    with server.client() as c:
        for version, name in uploads:
            json_of(direct_upload(c, token, "cleo-app", version, name, name.encode()), 201)
    return token


def test_latest_is_the_newest_upload(server: Server, cleo: str) -> None:
    with server.client() as c:
        answer = c.get("/api/apps/cleo-app/latest")
        assert answer.headers["cache-control"] == "no-store"
        assert follow(answer).content == b"cleo-universal.apk"


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("linux/x86_64/appimage", "cleo-1.1.0-x86_64.AppImage"),
        ("linux/amd64/AppImage", "cleo-1.1.0-x86_64.AppImage"),
        ("linux/x86_64/deb", "cleo_1.0.0_amd64.deb"),
        ("linux/aarch64/rpm", "cleo-1.0.0-arm64.rpm"),
        ("win/x64/exe", "cleo-setup-x64.exe"),
        ("android/arm64-v8a/apk", "cleo-universal.apk"),  # universal runs anywhere
        ("linux/any/appimage", "cleo-1.1.0-x86_64.AppImage"),
    ],
)
def test_platform_routes_and_aliases(server: Server, cleo: str, path: str, served: str) -> None:
    with server.client() as c:
        assert follow(c.get(f"/api/apps/cleo-app/latest/{path}")).content == served.encode()


@pytest.mark.parametrize(
    "path",
    [
        "linux/arm64/deb",
        "macos/arm64/dmg",
        "linux/x86_64/flatpak",
        "plan9/x86/zip",
        "linux/z80/deb",
    ],
)
def test_no_match_lists_what_exists(server: Server, cleo: str, path: str) -> None:
    with server.client() as c:
        answer = c.get(f"/api/apps/cleo-app/latest/{path}")
    assert answer.status_code == 404
    error = error_of(answer)
    assert error["code"] == "no_matching_build"
    assert "linux/x86_64/appimage" in error["available"]
    assert "linux/x86_64/appimage" in error["message"]
    assert error["available"] == sorted(error["available"])


def test_unknown_apps_and_apps_without_builds(server: Server) -> None:
    developer_with_app(server.settings, "dan", "dan-app")
    with server.client() as c:
        for path in (
            "/api/apps/ghost/latest",
            "/api/apps/ghost/latest/linux/x86_64/deb",
            "/api/app/ghost",
        ):
            answer = c.get(path)
            assert (answer.status_code, error_of(answer)["code"]) == (404, "not_found"), path
        empty = c.get("/api/apps/dan-app/latest")
        assert (empty.status_code, error_of(empty)["available"]) == (404, [])
        assert error_of(c.get("/api/app/dan-app"))["code"] == "no_builds"


def _listing(c: httpx.Client, token: str, app: str, **params: Any) -> dict[str, Any]:
    return dict(
        json_of(c.get(f"/api/apps/{app}/builds", headers=bearer(token), params=params), 200)
    )


def _downloads(c: httpx.Client, token: str, app: str) -> dict[str, int]:
    return {b["fileName"]: b["downloads"] for b in _listing(c, token, app)["builds"]}


def test_repeats_within_30_seconds_count_once(server: Server) -> None:
    _, token = developer_with_app(server.settings, "eve", "eve-app")
    with server.client() as c:
        json_of(direct_upload(c, token, "eve-app", "1.0.0", "eve.apk", b"eve"), 201)
        for path, address in (
            *(("latest", "192.0.2.1") for _ in range(3)),
            ("latest", "192.0.2.2"),
            ("latest/android/any/apk", "192.0.2.3"),
        ):
            answer = c.get(f"/api/apps/eve-app/{path}", headers={"X-Forwarded-For": address})
            assert answer.status_code == 302
        eventually(lambda: _downloads(c, token, "eve-app") == {"eve.apk": 3})
        build = _listing(c, token, "eve-app")["builds"][0]
        today = datetime.datetime.now(datetime.UTC).date().isoformat()
        assert build["downloadsByDay"] == [{"day": today, "count": 3}]


def test_counts_are_right_under_concurrent_downloads(server: Server) -> None:
    _, token = developer_with_app(server.settings, "fred", "fred-app")
    with server.client() as c:
        json_of(direct_upload(c, token, "fred-app", "1.0.0", "fred.apk", b"fred"), 201)

    def download(address: str) -> int:
        with server.client() as c:
            answer = c.get("/api/apps/fred-app/latest", headers={"X-Forwarded-For": address})
            return answer.status_code

    addresses = [f"198.51.100.{i}" for i in range(24)] + ["203.0.113.9"] * 16
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(download, addresses)) == {302}
    with server.client() as c:
        eventually(lambda: _downloads(c, token, "fred-app") == {"fred.apk": 25})
        assert _listing(c, token, "fred-app")["builds"][0]["downloadsByDay"][0]["count"] == 25


def test_listing_pages_and_bounds(server: Server, cleo: str) -> None:
    with server.client() as c:
        first = _listing(c, cleo, "cleo-app", limit=4)
        assert (first["total"], first["limit"], first["offset"]) == (6, 4, 0)
        assert [b["fileName"] for b in first["builds"]][:2] == [
            "cleo-universal.apk",
            "cleo-1.1.0-x86_64.AppImage",
        ]
        rest = _listing(c, cleo, "cleo-app", limit=4, offset=4)
        assert len(rest["builds"]) == 2
        for params, field in (
            ({"limit": 0}, "limit"),
            ({"limit": 101}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"offset": -1}, "offset"),
            ({"offset": "x"}, "offset"),
            ({"days": 0}, "days"),
            ({"days": 400}, "days"),
        ):
            answer = c.get("/api/apps/cleo-app/builds", headers=bearer(cleo), params=params)
            assert (answer.status_code, error_of(answer)["field"]) == (400, field), params
        assert c.get("/api/apps/ghost/builds", headers=bearer(cleo)).status_code == 404


def test_app_info_follows_a_new_upload_at_once(server: Server) -> None:
    _, token = developer_with_app(server.settings, "gil", "gil-app")
    with server.client() as c:
        json_of(direct_upload(c, token, "gil-app", "1.0.0", "gil.apk", b"one"), 201)
        first = json_of(c.get("/api/app/gil-app"), 200)
        assert json_of(c.get("/api/app/gil-app"), 200) == first  # the cached answer
        json_of(direct_upload(c, token, "gil-app", "1.0.1", "gil.apk", b"two"), 201)
        second = json_of(c.get("/api/app/gil-app"), 200)
    assert (first["version"], second["version"]) == ("1.0.0", "1.0.1")
    assert httpx.get(second["downloadUrl"]).content == b"two"
    assert set(first) >= {"app", "version", "tag", "downloadUrl", "uploadedAt"}


def test_icons(server: Server, cleo: str) -> None:
    _, other = developer_with_app(server.settings, "hal", "hal-app")
    with server.client() as c:
        answer = json_of(c.put("/api/apps/cleo-app/icon", headers=bearer(cleo), content=PNG), 200)
        image = httpx.get(answer["iconUrl"])
        assert image.status_code == 200
        assert image.content == PNG
        assert image.headers["content-type"] == "image/png"
        assert image.headers["x-content-type-options"] == "nosniff"
        assert json_of(c.get("/api/app/cleo-app"), 200)["iconUrl"] == answer["iconUrl"]
        svg = c.put("/api/apps/cleo-app/icon", headers=bearer(cleo), content=b"<svg onload='x()'/>")
        assert svg.status_code == 415
        huge = c.put(
            "/api/apps/cleo-app/icon", headers=bearer(cleo), content=PNG + b"\x00" * (1 << 20)
        )
        assert huge.status_code == 413
        theirs = c.put("/api/apps/cleo-app/icon", headers=bearer(other), content=PNG)
        assert theirs.status_code == 403
        for key in ("nothing.png", "..%2Fsecret.key", ".meta"):
            assert c.get(f"/api/img/{key}").status_code == 404, key


@pytest.mark.integration
def test_varying_the_user_agent_does_not_inflate_counts(server: Server) -> None:
    """A client is its address (an IPv6 client its /64, which it can vary at will); what it
    says about itself does not make it another client. Addresses come from X-Forwarded-For,
    which uvicorn takes from a trusted proxy (127.0.0.1, this test)."""
    _, token = developer_with_app(server.settings, "ivy", "ivy-app")
    with server.client() as c:
        json_of(direct_upload(c, token, "ivy-app", "1.0.0", "ivy.apk", b"ivy"), 201)
        json_of(direct_upload(c, token, "ivy-app", "1.0.0", "ivy_amd64.deb", b"ivy deb"), 201)
        downloads = [
            *(("198.51.100.1", f"agent-{i}") for i in range(8)),
            ("198.51.100.2", "agent-0"),
            ("2001:db8:1:2::1", "phone"),
            ("2001:db8:1:2:ffff::99", "laptop"),  # the same /64
            ("2001:db8:1:3::1", "phone"),
        ]
        for address, agent in downloads:
            answer = c.get(
                "/api/apps/ivy-app/latest/android/any/apk",
                headers={"X-Forwarded-For": address, "User-Agent": agent},
            )
            assert answer.status_code == 302, answer.text
        # Downloads of one app are applied in order: once this one counts, all the above have.
        marker = c.get("/api/apps/ivy-app/latest/linux/any/deb", headers={"User-Agent": "x"})
        assert marker.status_code == 302
        eventually(lambda: _downloads(c, token, "ivy-app")["ivy_amd64.deb"] == 1)
        assert _downloads(c, token, "ivy-app") == {"ivy.apk": 4, "ivy_amd64.deb": 1}
