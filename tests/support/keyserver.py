"""A local OpenPGP keyserver speaking keys.openpgp.org's VKS API over HTTPS (a trustme CA), and
real keys made with gpg.

The stand-in listens on 127.0.0.2 (a loopback address of its own), so a Hutch told to allow
only 127.0.0.2/32 (HUTCH_KEYSERVER_ALLOW_NETWORKS) reaches it while 127.0.0.1, where the
`trap` servers listen, stays a refused private address. `env` points a Hutch at it; its
certificate is trusted through HUTCH_KEYSERVER_CA only, never by the system.

Each path answers a key (`add_key`: by fingerprint, subkey fingerprint, key id, e-mail), or a
scripted misbehaviour (`script`): slow, huge, a redirect, garbage; anything else is VKS's 404.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

HOST = "127.0.0.2"
TRAP_HOST = "127.0.0.1"
Action = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class GpgKey:
    fingerprint: str
    subkey_fingerprints: tuple[str, ...]
    user_ids: tuple[str, ...]
    created: int
    expires: int | None
    armored: bytes

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]


def gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback",
         "--passphrase", "", *args],
        input=data, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@contextmanager
def gpg_home() -> Iterator[Path]:
    """A throwaway GNUPGHOME; its gpg-agent (key generation starts one) is stopped after."""
    home = Path(tempfile.mkdtemp(prefix="hutch-test-gpg-"))
    try:
        yield home
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


def make_key(home: Path, uid: str, algo: str = "ed25519", expire: str = "1y",
             subkey: str | None = "cv25519", extra_uids: tuple[str, ...] = ()) -> GpgKey:  # fmt: skip
    """A new key pair in `home`, and what gpg itself lists for its public key."""
    gpg(home, "--quick-gen-key", uid, algo, "sign", expire)
    listing = gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys", uid).decode()
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    if subkey:
        gpg(home, "--quick-add-key", fingerprint, subkey, "encr", expire)
    for extra in extra_uids:
        gpg(home, "--quick-add-uid", fingerprint, extra)
    listing = gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys", fingerprint).decode()
    lines = [line.split(":") for line in listing.splitlines()]
    pub = next(f for f in lines if f[0] == "pub")
    fprs = [f[9] for f in lines if f[0] == "fpr"]
    return GpgKey(
        fingerprint=fprs[0],
        subkey_fingerprints=tuple(fprs[1:]),
        user_ids=tuple(f[9] for f in lines if f[0] == "uid"),
        created=int(pub[5]),
        expires=int(pub[6]) if pub[6] else None,
        armored=gpg(home, "--armor", "--export", fingerprint),
    )


def revoke(home: Path, key: GpgKey) -> GpgKey:
    """`key` with the revocation certificate gpg made with it applied."""
    certificate = (home / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_text()
    # gpg writes it with a ':' before the armour's first line, so it is not applied by chance.
    gpg(home, "--import", data=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
    armored = gpg(home, "--armor", "--export", key.fingerprint)
    return GpgKey(key.fingerprint, key.subkey_fingerprints, key.user_ids, key.created,
                  key.expires, armored)  # fmt: skip


def tls_context(cert: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


@dataclass
class KeyserverStandIn:
    url: str
    ca_file: Path
    port: int
    paths: dict[str, Action] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    """Per path, the bytes a large answer managed to send before the client hung up."""
    trap_cert: Any = field(default=None, repr=False)
    """A certificate for 127.0.0.1 from the same CA, for `trap`."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        return {
            "HUTCH_KEYSERVER_URL": self.url,
            "HUTCH_KEYSERVER_CA": str(self.ca_file),
            "HUTCH_KEYSERVER_ALLOW_NETWORKS": f"{HOST}/32",
        }

    def add_key(self, key: GpgKey, emails: tuple[str, ...] = ()) -> None:
        """Serve `key` where VKS would: its fingerprints, key id and the given addresses."""
        for fpr in (key.fingerprint, *key.subkey_fingerprints):
            self.script(f"/vks/v1/by-fingerprint/{fpr}", answer(key.armored))
        self.script(f"/vks/v1/by-keyid/{key.key_id}", answer(key.armored))
        for email in emails:
            self.script(f"/vks/v1/by-email/{quote(email, safe='')}", answer(key.armored))

    def script(self, path: str, action: Action) -> None:
        with self._lock:
            self.paths[path] = action

    def seen(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
            action = self.paths.get(handler.path)
        if action is None:
            body = b"No key found for this query\n"
            handler.send_response(404)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        action(handler)

    def count(self, path: str, sent: int) -> None:
        with self._lock:
            self.written[path] = sent


def answer(body: bytes, status: int = 200, content_type: str = "application/pgp-keys") -> Action:
    def act(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return act


def redirect(location: str) -> Action:
    def act(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return act


def slow(seconds: float, then: Action) -> Action:
    def act(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        then(handler)

    return act


def huge(standin: KeyserverStandIn, path: str, size: int, declare: bool) -> Action:
    """`size` bytes of armour-looking text, with or without a Content-Length; how much went
    out before the client hung up is kept in `standin.written[path]`."""
    chunk = b"A" * 64 * 1024

    def act(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/pgp-keys")
        if declare:
            handler.send_header("Content-Length", str(size))
        handler.end_headers()
        sent = 0
        try:
            handler.wfile.write(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")
            while sent < size:
                handler.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        finally:
            standin.count(path, sent)
        handler.close_connection = True

    return act


class _Handler(BaseHTTPRequestHandler):
    standin: KeyserverStandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.standin._handle(self)


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], host: str, context: ssl.SSLContext | None
          ) -> Iterator[ThreadingHTTPServer]:  # fmt: skip
    httpd = ThreadingHTTPServer((host, 0), handler)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def keyserver_standin(tmp: Path) -> Iterator[KeyserverStandIn]:
    """The stand-in on 127.0.0.2, its CA's certificate written to `tmp`/keyserver-ca.pem."""
    import trustme

    ca = trustme.CA()
    ca_file = tmp / "keyserver-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler: type[_Handler] = type("KeyserverHandler", (_Handler,), {})
    with serve(handler, HOST, tls_context(ca.issue_cert(HOST, "localhost"))) as httpd:
        port = int(httpd.server_address[1])
        standin = KeyserverStandIn(f"https://{HOST}:{port}", ca_file, port)
        handler.standin = standin
        standin.trap_cert = ca.issue_cert(TRAP_HOST, "localhost")
        yield standin


@dataclass
class Trap:
    """A server nothing may reach: it only counts the requests it gets."""

    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def trap(standin: KeyserverStandIn, tls: bool, host: str = TRAP_HOST) -> Iterator[Trap]:
    """An HTTPS server on 127.0.0.1 whose certificate Hutch would accept (the stand-in's CA),
    or a plain HTTP one (`tls=False`, e.g. on 127.0.0.2): reaching it would succeed, so only
    the guard keeps Hutch away."""
    caught = Trap("")

    class TrapHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            caught.hits.append(self.path)
            answer(b"caught")(self)

    context = tls_context(standin.trap_cert) if tls else None
    with serve(TrapHandler, host, context) as httpd:
        caught.url = f"{'https' if tls else 'http'}://{host}:{httpd.server_address[1]}"
        yield caught
