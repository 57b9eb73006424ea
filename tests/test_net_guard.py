"""The SSRF guard: literal checks, DNS checks, and guarded fetches from a real local server.

The server is HTTPS on 127.0.0.1 with a certificate for `localhost` only, from a throwaway CA
(trustme). Redirect targets that must be refused are loopback addresses outside the allowed
network (127.0.0.2), so even a guard bug could not send traffic off this machine.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from base.net_guard import (
    BlockedURL,
    FetchError,
    address_allowed,
    check_resolved,
    check_url_literal,
    fetch,
    literal_address,
    parse_allowed_networks,
    resolve_and_check,
)
from tests.support.local_https import Handler, https_server, make_tls

pytestmark = pytest.mark.integration

pytest.importorskip("trustme")

LOOPBACK = parse_allowed_networks("127.0.0.0/8,::1/128")
ONLY_127_0_0_1 = parse_allowed_networks("127.0.0.1/32,::1/128")


# --- literal checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://127.1/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://0x7f.0.0.1/",
        "https://localhost/",
        "https://LOCALHOST./",
        "https://app.localhost/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[2002:a00:1::]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[fe80::1%25eth0]/",
        "https://10.0.0.8/",
        "https://172.16.5.4/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://224.0.0.251/",
        "https://255.255.255.255/",
        "https://[fd12::1]/",
        "https://[ff02::1]/",
        "https://240.0.0.1/",
    ],
)
def test_non_public_literals_refused(url: str) -> None:
    problem = check_url_literal(url)
    assert problem is not None
    assert "not public" in problem


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/", "https"),
        ("ftp://example.com/", "https"),
        ("file:///etc/passwd", "https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://example.com:99999/", "malformed"),
        ("https://1.2.3.4.5/", "looks like an IP"),
        ("https://exa mple.com/", "domain"),
        ("https://" + "a" * 2100 + ".com/", "2048"),
    ],
)
def test_malformed_urls_refused(url: str, words: str) -> None:
    problem = check_url_literal(url)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/app",
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/",
        "https://bücher.de/",
        "https://dead.beef/",
        "https://example.com:8443/x?y=1",
    ],
)
def test_public_urls_accepted(url: str) -> None:
    assert check_url_literal(url) is None


def test_allowed_networks_open_named_ranges_only() -> None:
    assert check_url_literal("https://127.0.0.1:8443/", LOOPBACK) is None
    assert check_url_literal("https://localhost/", LOOPBACK) is None
    assert check_url_literal("https://[::ffff:127.0.0.1]/", LOOPBACK) is None
    assert check_url_literal("https://10.0.0.1/", LOOPBACK) is not None
    assert check_url_literal("http://127.0.0.1/", LOOPBACK) is not None  # still https only


def test_parse_allowed_networks() -> None:
    assert parse_allowed_networks(" 10.0.0.0/8 , ::1/128,") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_allowed_networks("") == ()
    with pytest.raises(ValueError, match="HUTCH_BUILDER_ALLOW_NETWORKS"):
        parse_allowed_networks("10.0.0.0/8,not-a-net")


def test_embedded_ipv4_must_be_public_too() -> None:
    mapped_private = literal_address("::ffff:192.168.0.1")
    assert mapped_private is not None
    assert not address_allowed(mapped_private)
    six_to_four_public = literal_address("2002:808:808::1")
    assert six_to_four_public is not None
    assert address_allowed(six_to_four_public)


# --- DNS -----------------------------------------------------------------------------------


def test_localhost_resolution_refused_unless_allowed() -> None:
    with pytest.raises(BlockedURL, match="not a public address"):
        asyncio.run(resolve_and_check("localhost", 443))
    addresses = asyncio.run(resolve_and_check("localhost", 443, LOOPBACK))
    assert addresses
    assert all(a.is_loopback for a in addresses)


def test_any_disallowed_address_refuses_the_host() -> None:
    assert check_resolved("h", ["8.8.8.8", "2606:4700::1111", "8.8.8.8"]) == [
        ipaddress.ip_address("8.8.8.8"),
        ipaddress.ip_address("2606:4700::1111"),
    ]
    with pytest.raises(BlockedURL, match=r"10\.0\.0\.1"):
        check_resolved("h", ["8.8.8.8", "10.0.0.1"])
    with pytest.raises(BlockedURL, match="::1"):
        check_resolved("h", ["127.0.0.1", "::1"], parse_allowed_networks("127.0.0.0/8"))
    with pytest.raises(FetchError, match="no address"):
        check_resolved("h", [])


# --- guarded fetches against a local HTTPS server ---------------------------------------------


class _Handler(Handler):
    server: Any

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        self.server.hits.append(self.path)
        routes = {
            "/": lambda: self.send(200, b"<html>hello</html>", Content_Type="text/html"),
            "/host": lambda: self.send(200, self.headers["Host"].encode()),
            "/to-root": lambda: self.send(302, Location="/"),
            "/to-other-loopback": lambda: self.send(302, Location=f"https://127.0.0.2:{port}/"),
            "/to-metadata": lambda: self.send(302, Location="https://169.254.169.254/"),
            "/to-http": lambda: self.send(301, Location=f"http://localhost:{port}/"),
            "/loop": lambda: self.send(307, Location="/loop"),
            "/big": lambda: self.send(200, b"x" * 100_000),
            "/bomb": lambda: self.send(
                200, gzip.compress(b"\0" * 2_000_000), Content_Encoding="gzip"
            ),
            "/missing": lambda: self.send(404, b"no"),
        }
        routes.get(self.path, routes["/missing"])()


@pytest.fixture(scope="module")
def tls() -> tuple[Any, ssl.SSLContext]:
    return make_tls()


@pytest.fixture(scope="module")
def server(tls: tuple[Any, ssl.SSLContext]) -> Iterator[tuple[int, list[str], list[str]]]:
    sni_names: list[str] = []
    with https_server(_Handler, tls[0], on_sni=sni_names.append) as httpd:
        httpd.hits = []  # type: ignore[attr-defined]
        yield httpd.server_address[1], httpd.hits, sni_names  # type: ignore[attr-defined]


def get(url: str, tls_context: ssl.SSLContext, **kwargs: Any) -> Any:
    return asyncio.run(fetch(url, verify=tls_context, **kwargs))


def test_local_server_refused_unless_loopback_allowed(server: Any, tls: Any) -> None:
    port, hits, _ = server
    before = len(hits)
    with pytest.raises(BlockedURL):
        get(f"https://localhost:{port}/", tls[1])
    with pytest.raises(BlockedURL):
        get(f"https://127.0.0.1:{port}/", tls[1])
    assert len(hits) == before  # refused before connecting
    result = get(f"https://localhost:{port}/", tls[1], allowed=LOOPBACK)
    assert (result.status, result.body, result.content_type) == (
        200,
        b"<html>hello</html>",
        "text/html",
    )


def test_pinned_connection_keeps_host_and_sni(server: Any, tls: Any) -> None:
    port, _, sni_names = server
    result = get(f"https://localhost:{port}/host", tls[1], allowed=LOOPBACK)
    assert result.body == f"localhost:{port}".encode()
    assert sni_names[-1] == "localhost"


def test_certificate_is_still_verified(server: Any, tls: Any) -> None:
    port, _, _ = server
    with pytest.raises(FetchError, match="failed"):  # the cert names localhost, not the IP
        get(f"https://127.0.0.1:{port}/", tls[1], allowed=LOOPBACK)
    with pytest.raises(FetchError):
        get(f"https://localhost:{port}/", ssl.create_default_context(), allowed=LOOPBACK)


def test_redirects_are_followed_and_rechecked(server: Any, tls: Any) -> None:
    port, hits, _ = server
    result = get(f"https://localhost:{port}/to-root", tls[1], allowed=LOOPBACK)
    assert (result.status, result.url) == (200, f"https://localhost:{port}/")
    before = len(hits)
    with pytest.raises(BlockedURL, match=r"127\.0\.0\.2"):
        get(f"https://localhost:{port}/to-other-loopback", tls[1], allowed=ONLY_127_0_0_1)
    with pytest.raises(BlockedURL, match=r"169\.254\.169\.254"):
        get(f"https://localhost:{port}/to-metadata", tls[1], allowed=LOOPBACK)
    with pytest.raises(BlockedURL, match="https"):
        get(f"https://localhost:{port}/to-http", tls[1], allowed=LOOPBACK)
    assert hits[before:] == ["/to-other-loopback", "/to-metadata", "/to-http"]
    with pytest.raises(FetchError, match="redirects"):
        get(f"https://localhost:{port}/loop", tls[1], allowed=LOOPBACK, max_redirects=3)


def test_body_cap(server: Any, tls: Any) -> None:
    port, _, _ = server
    with pytest.raises(FetchError, match="larger than"):
        get(f"https://localhost:{port}/big", tls[1], allowed=LOOPBACK, max_bytes=10_000)
    with pytest.raises(FetchError, match="larger than"):  # after decompression
        get(f"https://localhost:{port}/bomb", tls[1], allowed=LOOPBACK, max_bytes=100_000)
    result = get(f"https://localhost:{port}/missing", tls[1], allowed=LOOPBACK)
    assert result.status == 404  # returned, the caller decides
