"""A client that connects and sends nothing, or sends its request a byte at a time, is cut
off within HUTCH_CLIENT_TIMEOUT (plus a second per HUTCH_CLIENT_MIN_RATE bytes it did send):
on the public port (gunicorn's uvicorn workers) and on the query service's own socket, with
a JSON 408 where a request was under way. A client at a decent pace is not."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.support.admin import developer_with_app
from tests.support.processes import kill_tree
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 2
LIMIT_S = 20.0
"""How long a test waits for the server to cut a connection it should cut after ~2 s: far
above the bound, far below forever."""


@dataclass(frozen=True)
class Instance:
    served: Served
    secret: str
    token: str

    @property
    def query_socket(self) -> Path:
        return self.served.settings.data / "run" / "query.sock"


@pytest.fixture(scope="module")
def hutch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    settings = make_settings(tmp_path_factory.mktemp("timeouts") / "data")
    served = Served(settings, free_port(), env={"HUTCH_CLIENT_TIMEOUT": str(TIMEOUT_S)})
    try:
        secret, token = developer_with_app(settings, "tia", "tia-app")
        yield Instance(served, secret, token)
    finally:
        kill_tree(served.process.pid)
        served.process.wait()


@dataclass(frozen=True)
class Outcome:
    answer: bytes
    closed: bool
    seconds: float

    @property
    def status(self) -> int | None:
        if not self.answer:
            return None
        return int(self.answer.split(b" ", 2)[1])

    def error(self) -> dict[str, object]:
        head, _, body = self.answer.partition(b"\r\n\r\n")
        assert b"application/json" in head.lower(), self.answer
        found = orjson.loads(body)
        assert found["message"] == found["error"]["message"], found  # the one error shape
        return dict(found["error"])


def tcp(instance: Instance) -> socket.socket:
    host, _, port = instance.served.url.removeprefix("http://").rpartition(":")
    return socket.create_connection((host, int(port)), timeout=LIMIT_S)


def unix(instance: Instance) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(instance.query_socket))
    return sock


def exchange(sock: socket.socket, data: bytes, *, chunk: int = 1, every_s: float = 0.1) -> Outcome:
    """Send `data` `chunk` bytes every `every_s` seconds, reading whatever the server answers,
    until it closes the connection or LIMIT_S passes."""
    started = time.monotonic()
    answer = bytearray()
    sent = 0
    closed = False
    with sock:
        while time.monotonic() - started < LIMIT_S:
            wait = every_s if sent < len(data) else LIMIT_S - (time.monotonic() - started)
            readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
            if readable:
                try:
                    got = sock.recv(65536)
                except ConnectionResetError:
                    got = b""
                if not got:
                    closed = True
                    break
                answer += got
            elif sent < len(data):
                try:
                    sock.sendall(data[sent : sent + chunk])
                except OSError:  # closed under us: read what it said, if anything
                    sent = len(data)
                    continue
                sent += chunk
    return Outcome(bytes(answer), closed, time.monotonic() - started)


def request_head(path: str, length: int, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hutch", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


BODY = orjson.dumps({"kind": "info", "version": "slow", "bits": {"pad": "x" * 400}})


def assert_cut(outcome: Outcome) -> None:
    """Closed by the server, within LIMIT_S but not before the client's time was up (a
    server that dropped every connection at once would cut trickles too)."""
    assert outcome.closed, f"still open after {LIMIT_S}s: {outcome.answer!r}"
    assert outcome.seconds >= TIMEOUT_S / 2, outcome
    if outcome.answer:
        assert outcome.status == 408, outcome.answer
        assert outcome.error()["code"] == "request_timeout"


Connect = Callable[[Instance], socket.socket]


@pytest.mark.parametrize("connect", [tcp, unix], ids=["ingest", "query"])
def test_a_connection_that_sends_nothing_is_cut(hutch: Instance, connect: Connect) -> None:
    assert_cut(exchange(connect(hutch), b""))


@pytest.mark.parametrize("connect", [tcp, unix], ids=["ingest", "query"])
def test_a_request_head_sent_a_byte_at_a_time_is_cut(hutch: Instance, connect: Connect) -> None:
    head = request_head("/api/telemetry", len(BODY), X_Padding="p" * 500)
    outcome = exchange(connect(hutch), head)
    assert_cut(outcome)
    assert outcome.status == 408
    assert outcome.error()["code"] == "request_timeout"


def test_a_body_sent_a_byte_at_a_time_gets_a_408_on_ingest(hutch: Instance) -> None:
    sock = tcp(hutch)
    sock.sendall(request_head("/api/telemetry", len(BODY), X_Secret=hutch.secret))
    outcome = exchange(sock, BODY)
    assert_cut(outcome)
    assert outcome.status == 408
    assert outcome.error()["message"]


def test_a_body_sent_a_byte_at_a_time_gets_a_408_on_the_query_service(hutch: Instance) -> None:
    body = orjson.dumps({"sql": "SELECT 1 -- " + "x" * 400})
    sock = unix(hutch)
    sock.sendall(request_head("/api/sql", len(body), Authorization=f"Bearer {hutch.token}"))
    outcome = exchange(sock, body)
    assert_cut(outcome)
    assert outcome.status == 408


def test_a_body_that_trickles_on_after_an_early_answer_is_cut(hutch: Instance) -> None:
    """Refused before its body was read (a Content-Length over the limit: 413), the request's
    body goes on arriving a byte at a time: the connection is not kept open for it."""
    sock = tcp(hutch)
    sock.sendall(request_head("/api/telemetry", 2_000_000, X_Secret=hutch.secret))
    outcome = exchange(sock, BODY)
    assert outcome.closed, f"still open after {LIMIT_S}s: {outcome.answer!r}"
    assert outcome.status == 413


def test_a_body_that_bursts_then_stops_gets_a_408_without_waiting_out_its_credit(
    hutch: Instance,
) -> None:
    """300 KB at once earns minutes at the minimum rate, but a body that then stops (a
    truncated upload) is cut after TIMEOUT_S of silence: a 408 from the application's read."""
    sock = tcp(hutch)
    sock.sendall(request_head("/api/telemetry", 900_000, X_Secret=hutch.secret) + b" " * 300_000)
    outcome = exchange(sock, b"")
    assert outcome.closed, f"still open after {LIMIT_S}s: {outcome.answer!r}"
    assert outcome.status == 408, outcome.answer
    assert outcome.error()["code"] == "request_timeout"
    assert outcome.seconds < TIMEOUT_S + 3, outcome.seconds


def test_an_answered_request_is_not_kept_open_at_its_bodys_pace(hutch: Instance) -> None:
    """Answered before its body was read (401: no token), a request whose body has sent
    300 KB of 900 KB then stops: at the client's pace it would have minutes left, but an
    answered request's rest is read only for a moment (ANSWERED_LINGER_S) before the close."""
    sock = tcp(hutch)
    sock.sendall(request_head("/api/apps", 900_000) + b" " * 300_000)
    outcome = exchange(sock, b"")
    assert outcome.status == 401, outcome.answer
    assert outcome.error()["code"] == "missing_token"
    assert outcome.closed, f"still open after {LIMIT_S}s: {outcome.answer!r}"
    assert outcome.seconds < TIMEOUT_S + 3, outcome.seconds


def test_a_body_at_a_decent_pace_is_taken(hutch: Instance) -> None:
    """Past the bound in total time, but at more than the minimum rate all along."""
    body = orjson.dumps({"kind": "info", "version": "paced", "bits": {"pad": "y" * 5000}})
    sock = tcp(hutch)
    head = request_head("/api/telemetry", len(body), X_Secret=hutch.secret, Connection="close")
    sock.sendall(head)
    outcome = exchange(sock, body, chunk=200, every_s=0.1)  # 2 kB/s for 2.5 s
    assert outcome.status == 202, outcome.answer
