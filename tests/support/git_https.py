"""Git remotes over real HTTPS for tests: bare repositories served by the real
`git http-backend` (as CGI) behind a TLS server whose certificate a trustme CA signed, on a
loopback address of the test's choosing. A path may instead redirect, or answer slowly."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GIT = shutil.which("git") or "git"


def bare_repository(root: Path, name: str, branches: dict[str, str], head: str = "main") -> Path:
    """A bare repository `root/name` with one commit per branch (message: the branch's
    `branches` text) and HEAD pointing at `head`."""
    work = root / f"{name}.work"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args: str, cwd: Path = work) -> str:
        done = subprocess.run(
            [GIT, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    work.mkdir(parents=True)
    git("init", "-q", "-b", head)
    for branch, message in branches.items():
        git("checkout", "-q", "--orphan", branch)
        git("commit", "-q", "--allow-empty", "-m", message)
    bare = root / name
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    git("symbolic-ref", "HEAD", f"refs/heads/{head}", cwd=bare)
    return bare


def add_many_branches(bare: Path, count: int) -> None:
    """`count` more branches at HEAD's commit, written into packed-refs at once."""
    commit = subprocess.run(
        [GIT, "rev-parse", "HEAD"], cwd=bare, check=True, capture_output=True, text=True
    ).stdout.strip()
    packed = bare / "packed-refs"
    old = (
        packed.read_text() if packed.exists() else "# pack-refs with: peeled fully-peeled sorted\n"
    )
    lines = [f"{commit} refs/heads/bulk-{i:06d}-{'x' * 40}\n" for i in range(count)]
    packed.write_text(old + "".join(lines))


@contextmanager
def https_server_on(
    handler: type[BaseHTTPRequestHandler], cert: Any, host: str
) -> Iterator[ThreadingHTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    httpd = ThreadingHTTPServer((host, 0), handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class GitHttps:
    url: str
    """https://host:port/ — repositories are under it by name."""
    redirects: dict[str, str] = field(default_factory=dict)
    """Path (e.g. /moved.git) -> where to send it (a 302)."""
    slow: set[str] = field(default_factory=set)
    """Paths (e.g. /slow.git) whose answers wait until the server stops."""
    stopping: threading.Event = field(default_factory=threading.Event)


@contextmanager
def git_https(root: Path, cert: Any, host: str = "127.0.0.1") -> Iterator[GitHttps]:
    """Serve the bare repositories under `root` over HTTPS on `host`."""
    state = GitHttps("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            repo = "/" + path.lstrip("/").split("/", 1)[0]
            if repo in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[repo] + self.path[len(repo) :])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if repo in state.slow:
                state.stopping.wait(60)
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
            }
            done = subprocess.run(
                [GIT, "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with https_server_on(Handler, cert, host) as httpd:
        state.url = f"https://{host}:{httpd.server_address[1]}"
        try:
            yield state
        finally:
            state.stopping.set()
            time.sleep(0.05)
