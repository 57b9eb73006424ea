"""Reads forwarded by ingest to the query process, with bytes no HTTP library would send.

Under `hutch serve` the ingest workers pass every query route (hutch/routes.py) to the query
process. Paths and query strings with percent-encoded NUL, CR, LF and invalid UTF-8, and header
values in latin-1 or UTF-8, must be answered like any other request: a JSON answer, never a 500.
The requests go over raw sockets, since httpx refuses to send them.
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
import orjson
import pytest

from hutch.apps import forwarded_methods
from ingest.forward import target
from tests.support.admin import developer_with_app
from tests.support.processes import kill_tree
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration

SEGMENTS = [
    b"%00",
    b"%0d%0a",
    b"a%0D%0ASet-Cookie:%20x=1",
    b"%09",
    b"%7f",
    b"%ff",
    b"%c3%28",
    b"%ed%a0%80",
    b"%e9t%e9",
    b"caf%C3%A9",
    b"%",
    b"%zz",
    b"..",
    b"%2e%2e",
    b"%2f",
    b"x%00y",
]
"""Path parameters: percent-encoded controls, invalid and valid UTF-8, stray escapes."""

PARAMS = [
    "limit",
    "offset",
    "cursor",
    "since",
    "until",
    "kind",
    "severity",
    "minSeverity",
    "version",
    "type",
    "name",
    "q",
    "appName",
    "secret",
    "serviceName",
    "traceId",
    "spanId",
    "statusCode",
    "attribute",
    "groupBy",
    "bucket",
    "aggregation",
    "os",
    "arch",
    "format",
]
"""Query parameters the query service reads somewhere."""

HEADER_VALUES = [b"caf\xe9", b"caf\xc3\xa9", b"\xff\xfe", b"a\tb", b"\xc3\x28"]
"""Header values as latin-1 and UTF-8 bytes, invalid UTF-8, a tab."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw_request(port: int, request: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    pairs = [line.split(b": ", 1) for line in lines]
    names = [name.lower() for name, _ in pairs if name.lower() != b"set-cookie"]
    assert len(names) == len(set(names)), f"a header twice in the answer: {head!r}"
    headers = dict(pairs)
    return Answer(int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body)


def request(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [f"{method.upper()} ".encode() + target + b" HTTP/1.1", b"Host: hutch"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_answered(answer: Answer, what: bytes) -> None:
    """Not a server error (a 503 with Retry-After is the answer of a busy or restarting
    backend, which other tests on this machine may cause), and, except for the HTTP parser's
    own refusals, a JSON answer; an error carries the one error shape."""
    if answer.status == 503:
        assert b"retry-after" in answer.headers, (what, answer.body[:300])
        return
    assert answer.status < 500, (what, answer.status, answer.body[:300])
    if not answer.headers.get(b"content-type", b"").startswith(b"application/json"):
        assert answer.status == 400, (what, answer.status, answer.body[:300])
        assert answer.body == b"Invalid HTTP request received.", (what, answer.body[:300])
        return
    body = answer.json()
    if answer.status >= 400:
        assert set(body) == {"error", "message"}, (what, body)
        assert {"code", "message"} <= set(body["error"]), (what, body)
        assert body["message"] == body["error"]["message"], (what, body)


@dataclass(frozen=True)
class Serving:
    port: int
    credentials: list[list[tuple[bytes, bytes]]]
    log: Path


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    settings = make_settings(tmp_path_factory.mktemp("forwarding") / "data")
    port = free_port()
    served = Served(settings, port)
    try:
        secret, token = developer_with_app(settings, "fwd", "fwd-app")
        credentials = [
            [],
            [(b"Authorization", f"Bearer {token}".encode())],
            [(b"X-Secret", secret.encode())],
        ]
        yield Serving(port, credentials, served.log)
    finally:
        kill_tree(served.process.pid)
        served.process.wait()


def targets(template: str) -> Iterator[bytes]:
    """The route with each hostile segment in each of its parameters (one at a time; the
    others hold ordinary values)."""
    names = re.findall(r"{(\w+)}", template)
    ordinary = {"app": "fwd-app"}
    for hostile in names:
        for segment in SEGMENTS:
            path = template
            for name in names:
                value = segment if name == hostile else ordinary.get(name, "x").encode()
                path = path.replace(f"{{{name}}}", value.decode("latin-1"))
            yield path.encode("latin-1")


def queries(path: bytes) -> Iterator[bytes]:
    for segment in SEGMENTS:
        yield path + b"?" + b"&".join(p.encode() + b"=" + segment for p in PARAMS)
        yield path + b"?" + segment + b"=1&" + segment


def concrete(template: str) -> bytes:
    return re.sub(r"{\w+}", lambda m: "fwd-app" if m.group() == "{app}" else "x", template).encode()


def routes() -> list[tuple[str, str]]:
    return [(uri, m) for uri, methods in forwarded_methods().items() for m in methods]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("uri", "method"), routes())
def test_hostile_paths_and_queries_get_an_answer(serving: Serving, uri: str, method: str) -> None:
    body = b'{"query": "SELECT 1"}' if method == "post" else b""
    content = [(b"Content-Type", b"application/json")] if body else []
    hostile = [*targets(uri), *queries(concrete(uri)), b"/" + concrete(uri)]
    assert hostile
    for url in hostile:
        for credentials in serving.credentials:
            answer = raw_request(serving.port, request(method, url, [*credentials, *content], body))
            assert_answered(answer, url)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("uri", "method"), routes())
def test_non_ascii_header_values_get_an_answer(serving: Serving, uri: str, method: str) -> None:
    body = b'{"query": "SELECT 1"}' if method == "post" else b""
    content = [(b"Content-Type", b"application/json")] if body else []
    target = concrete(uri)
    for value in HEADER_VALUES:
        for credentials in serving.credentials:
            for name in (b"X-Probe", b"User-Agent", b"Accept", b"Cookie", b"If-None-Match"):
                headers = [*credentials, *content, (name, value)]
                answer = raw_request(serving.port, request(method, target, headers, body))
                assert_answered(answer, name + b": " + value)
            # The credentials themselves in another charset: refused as credentials.
            for name in (b"Authorization", b"X-Secret"):
                answer = raw_request(
                    serving.port, request(method, target, [*content, (name, value)], body)
                )
                assert_answered(answer, name + b": " + value)


@pytest.mark.integration
@pytest.mark.slow
def test_forwarding_is_faithful(serving: Serving) -> None:
    """What the query service sees is what the client sent: escaped CR and LF reach it in
    the app's name (so its own 404 names it), and neither a dot segment nor a leading double
    slash is resolved on the way (the route ingest matched is the one the query serves)."""
    token = serving.credentials[1]
    answer = raw_request(serving.port, request("get", b"/api/apps/a%0D%0Ab/flags", token, b""))
    assert answer.status == 404, answer.body
    assert repr("a\r\nb") in answer.json()["error"]["message"]
    answer = raw_request(serving.port, request("get", b"/api/apps/%2e%2e/flags", token, b""))
    assert answer.status == 404, answer.body
    assert repr("..") in answer.json()["error"]["message"]
    answer = raw_request(serving.port, request("get", b"/api/traces/..", token, b""))
    assert answer.status in (400, 404), answer.body
    assert answer.json()["error"]["field"] == "traceId"
    for url in (b"/api/apps?x=%0d%0a%ff", b"//api/apps"):  # "//api" is not a host "api"
        listed = raw_request(serving.port, request("get", url, token, b""))
        assert listed.status == 200, (url, listed.body)
        assert "fwd-app" in listed.body.decode()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "field"),
    [
        (b"/api/apps/a%00b/flags", "path"),
        (b"/api/traces/%00", "path"),
        (b"/api/telemetry?appName=a%00", "appName"),
        (b"/api/logs?serviceName=x&q=%00", "q"),
        (b"/api/apps?x%00=1", "x\x00"),
    ],
)
def test_a_nul_is_refused_before_any_lookup(serving: Serving, url: bytes, field: str) -> None:
    """No store can hold a NUL (PostgreSQL text cannot): a 400 naming where it was, on
    every backend, with or without credentials."""
    for credentials in serving.credentials:
        answer = raw_request(serving.port, request("get", url, credentials, b""))
        assert answer.status == 400, answer.body
        error = answer.json()["error"]
        assert error["code"] == "bad_request"
        assert error["field"] == field
        assert "NUL" in error["message"]


@pytest.mark.integration
@pytest.mark.slow
def test_no_server_error_was_logged(serving: Serving) -> None:
    """Run last in this module: no request above made a worker log an unhandled error."""
    assert '"unhandled error"' not in serving.log.read_text(errors="replace")


def test_the_forwarded_target_decodes_to_what_was_received() -> None:
    """Any raw path and query bytes: what httpx writes on the wire for the target sent on
    percent-decodes to the bytes received (so the query service routes and reads the same
    request), and no dot segment is left for it to resolve."""
    rng = random.Random(7)
    alphabet = [bytes([b]) for b in range(256)] + [b"%", b"/", b"?", b"#", b".", b"..", b"%2e"]
    client = httpx.Client(base_url="http://hutch-query")
    for _ in range(3000):
        path = b"/" + b"".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        query = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        sent = target(path, query)
        wire = client.build_request("GET", sent).url.raw_path
        wire_path, mark, wire_query = wire.partition(b"?")
        assert unquote_to_bytes(wire_path) == unquote_to_bytes(path)
        assert unquote_to_bytes(wire_query) == unquote_to_bytes(query)
        assert bool(mark) == bool(query)
        assert wire_path.split(b"/").count(b"..") == 0
