"""Hutch over real HTTP for request-level tests: in this process (uvicorn in a thread, the
`server` fixture's kind), or as `hutch serve` in processes of its own (`Served`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from base.settings import Settings
from tests.support.settings import make_settings
from tests.support.waiting import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_thread(app: Any, port: int) -> Iterator[None]:
    """`app` served by uvicorn on 127.0.0.1:`port` in a thread, from when it listens until
    the block ends."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        if server.started:
            return True
        if not thread.is_alive():
            raise RuntimeError("test server stopped before it started")
        return False

    try:
        eventually(started, timeout_s=30, interval_s=0.02)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Server:
    """A Hutch app served over real HTTP from this process (uvicorn in a thread)."""

    url: str
    settings: Settings
    runtime: object

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve_in_thread(data: Path, **env: str) -> Iterator[Server]:
    """Hutch over real HTTP on a port chosen first, so its public URL (in signed links) is
    its real address; migrated before the projectors start."""
    from hutch.apps import combined_app
    from hutch.runtime import Runtime

    port = free_port()
    address = f"127.0.0.1:{port}"
    settings = make_settings(data, HUTCH_BIND=address, HUTCH_PUBLIC_URL=f"http://{address}", **env)
    runtime = Runtime(settings, want_analytics=True, run_projectors=True)
    runtime.db.migrate()
    try:
        with uvicorn_thread(combined_app(runtime), port):
            yield Server(f"http://127.0.0.1:{port}", settings, runtime)
    finally:
        runtime.release()


class Served:
    """`hutch serve` as a real process, its stderr kept in a file beside the data directory.

    Its HOME is a directory of its own, so nothing it might leave there (gunicorn once put
    its control socket in ~/.gunicorn) reaches other instances. `session`: in a process group
    of its own, which a test can SIGKILL whole as a shell's job control would. `wait`: until
    it answers /api/health."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
        session: bool = False,
    ) -> None:
        self.settings = settings
        data = settings.data
        data.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        self.home = data.parent / "home"
        self.home.mkdir(exist_ok=True)
        full_env = {**os.environ, **settings.as_env()}
        for inherited in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR"):
            full_env.pop(inherited, None)
        full_env.update({"HUTCH_BIND": f"127.0.0.1:{port}", "HOME": str(self.home), **(env or {})})
        self.log = data.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hutch", "serve"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115
            start_new_session=session,
        )
        if wait:
            eventually(self._healthy, timeout_s=60)

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"hutch serve exited with {self.process.returncode}: {tail}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_lines(self) -> list[dict[str, Any]]:
        """What it logged, one JSON object per line (anything else is a test failure)."""
        return [orjson.loads(line) for line in self.log.read_text().splitlines() if line]
