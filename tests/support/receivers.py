"""Local stand-ins for what job triggers reach: an HTTP server receiving webhooks (answering
each path from a script, or holding a request open) and an SMTP server (aiosmtpd) keeping
the mail it is given. Both speak their real protocol on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.servers import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when the request was read."""


@dataclass
class HttpReceiver:
    url: str
    answers: dict[str, list[int]] = field(default_factory=dict)
    """Per path, the statuses to answer in turn (then 200)."""
    holding: set[str] = field(default_factory=set)
    """Paths whose requests are held open until `release()` (up to 60 s)."""
    received: list[Received] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def release(self) -> None:
        self._released.set()

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bool]:
        with self._lock:
            self.received.append(Received(path, headers, body, time.monotonic()))
            script = self.answers.get(path, [])
            status = script.pop(0) if script else 200
        return status, path in self.holding and not self._released.is_set()


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    port = free_port()
    receiver = HttpReceiver(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, hold = receiver._take(self.path, headers, body)
            if hold:
                receiver._released.wait(60)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class MailReceiver:
    url: str
    mail: list[Mail] = field(default_factory=list)
    refuse: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Per recipient address, the RCPT answers to give in turn (then `250 OK`)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse[address]:
            return self.refuse[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mail.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 OK"


@contextmanager
def smtp_receiver() -> Iterator[MailReceiver]:
    port = free_port()
    receiver = MailReceiver(f"smtp://127.0.0.1:{port}")
    controller = Controller(receiver, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
