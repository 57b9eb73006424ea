"""The reference builder end to end: a web app served over HTTPS on 127.0.0.1 becomes a TWA
project zip; private targets fail the build with a clear error."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from base.net_guard import parse_allowed_networks
from builder.webapp import BuildFailed, FetchPolicy, build_android_project
from tests.support.local_https import Handler, https_server, make_tls

pytestmark = pytest.mark.integration

pytest.importorskip("trustme")

ICON = b"\x89PNG\r\n\x1a\n" + b"icon-bytes"
PAGES = {
    "/": (
        200,
        "text/html",
        b"<html><head><title>Demo</title>"
        b'<link rel="manifest" href="/app.webmanifest"></head></html>',
    ),
    "/app.webmanifest": (
        200,
        "application/manifest+json",
        json.dumps(
            {
                "name": "Demo App",
                "short_name": "Demo",
                "start_url": "/?twa=1",
                "theme_color": "#123456",
                "icons": [{"src": "/icon-512.png", "sizes": "512x512", "type": "image/png"}],
            }
        ).encode(),
    ),
    "/icon-512.png": (200, "image/png", ICON),
    "/no-manifest": (200, "text/html", b"<title>Bare</title>"),
}


class _Site(Handler):
    def do_GET(self) -> None:
        status, kind, body = PAGES.get(self.path, (404, "text/plain", b"missing"))
        self.send(status, body, Content_Type=kind)


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[int, ssl.SSLContext]]:
    cert, client = make_tls()
    with https_server(_Site, cert) as httpd:
        yield httpd.server_address[1], client


def build(url: str, policy: FetchPolicy, **kwargs: Any) -> bytes:
    values: dict[str, Any] = {
        "name": "Demo App",
        "bundle_id": "com.example.demo",
        "version": "1.0.0",
        "permissions": ["camera"],
    }
    values.update(kwargs)
    return asyncio.run(build_android_project(url, policy=policy, **values))


def test_web_app_becomes_a_twa_project(site: tuple[int, ssl.SSLContext]) -> None:
    port, tls = site
    policy = FetchPolicy(allowed=parse_allowed_networks("127.0.0.0/8,::1/128"), verify=tls)
    data = build(f"https://localhost:{port}/", policy)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("twa/app/src/main/res/mipmap-xxxhdpi/ic_launcher.png") == ICON
        strings = archive.read("twa/app/src/main/res/values/strings.xml").decode()
        assert f"https://localhost:{port}/?twa=1" in strings
        assert "#123456" in archive.read("twa/app/src/main/res/values/colors.xml").decode()
        assert b"android.permission.CAMERA" in archive.read("twa/app/src/main/AndroidManifest.xml")


def test_page_without_manifest_still_builds(site: tuple[int, ssl.SSLContext]) -> None:
    port, tls = site
    policy = FetchPolicy(allowed=parse_allowed_networks("127.0.0.0/8,::1/128"), verify=tls)
    with zipfile.ZipFile(io.BytesIO(build(f"https://localhost:{port}/no-manifest", policy))) as z:
        assert "twa/app/src/main/res/drawable/ic_launcher.xml" in z.namelist()


def test_private_address_fails_the_build(site: tuple[int, ssl.SSLContext]) -> None:
    port, tls = site
    with pytest.raises(BuildFailed, match="refused to fetch the page"):
        build(f"https://localhost:{port}/", FetchPolicy(verify=tls))


def test_bad_answers_fail_the_build(site: tuple[int, ssl.SSLContext]) -> None:
    port, tls = site
    policy = FetchPolicy(allowed=parse_allowed_networks("127.0.0.0/8,::1/128"), verify=tls)
    with pytest.raises(BuildFailed, match="HTTP 404"):
        build(f"https://localhost:{port}/gone", policy)
    with pytest.raises(BuildFailed, match="bundleId"):
        build(f"https://localhost:{port}/", policy, bundle_id="demo")
