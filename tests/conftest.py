"""Shared fixtures: settings in a temporary data directory, real services when configured,
and a Hutch server (uvicorn in a thread, real HTTP) for request-level tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hutch.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"


def need_service(env: str, what: str) -> str:
    """The URL of a real service from `env`. Unset: skip the test, unless CI=true, where
    every integration test must run, so it fails instead."""
    url = os.environ.get(env, "")
    if not url:
        message = f"{what} not configured: set {env} (`make services` prints it)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(data: Path, **env: str) -> Settings:
    return Settings.from_env({"HUTCH_DATA": str(data), **env})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@dataclass
class Server:
    """A Hutch app served over real HTTP from this process (uvicorn in a thread)."""

    url: str
    settings: Settings
    runtime: object

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve_in_thread(settings: Settings) -> Iterator[Server]:
    import uvicorn

    from hutch.app import create_app
    from hutch.runtime import Runtime

    runtime = Runtime(settings, want_analytics=True, run_projectors=True)
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        runtime.release()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(make_settings(tmp_path_factory.mktemp("hutch") / "data"))
