"""A throwaway HTTPS server on 127.0.0.1 with a certificate for `localhost` (trustme CA)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_tls() -> tuple[Any, ssl.SSLContext]:
    """(server certificate for `localhost` only, client context trusting its CA)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert, client


@contextmanager
def https_server(
    handler: type[BaseHTTPRequestHandler],
    cert: Any,
    on_sni: Callable[[str], None] | None = None,
) -> Iterator[ThreadingHTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    if on_sni is not None:

        def remember(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            on_sni(name or "")

        context.sni_callback = remember
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
