"""Shared fixtures: settings in a temporary data directory, real services when configured,
and a Hutch server (uvicorn in a thread, real HTTP) for request-level tests."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from hutch.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PRODUCTION = os.environ.get("HUTCH_TEST_BACKENDS", "") == "production"
"""Run every test that builds settings on Kafka and PostgreSQL instead of the embedded log
and relational store (`make test` does a second pass this way when the services are up)."""


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


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("options", f"-c search_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def fresh_postgres_schema(server_url: str) -> str:
    """A URL whose connections work in a new, empty schema of the test database."""
    from storage.relational.postgres import PostgresRelational

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = PostgresRelational(server_url, pool_size=1)
    try:
        with admin.transaction() as tx:
            tx.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.close()
    return with_search_path(server_url, schema)


def production_env() -> dict[str, str]:
    """Settings for a fresh Kafka topic namespace and a fresh PostgreSQL schema."""
    kafka = need_service("HUTCH_TEST_KAFKA", "Kafka")
    postgres = need_service("HUTCH_TEST_POSTGRES", "PostgreSQL")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return {
        "HUTCH_LOG": f"{kafka}?prefix={prefix}&partitions=3",
        "HUTCH_DB": fresh_postgres_schema(postgres),
    }


def make_settings(data: Path, **env: str) -> Settings:
    base = {"HUTCH_DATA": str(data), **(production_env() if PRODUCTION else {})}
    return Settings.from_env({**base, **env})


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


def serve_in_thread(data: Path, **env: str) -> Iterator[Server]:
    """Hutch over real HTTP on a port chosen first, so its public URL (in signed links) is
    its real address; migrated before the projectors start."""
    import uvicorn

    from hutch.app import create_app
    from hutch.runtime import Runtime

    port = free_port()
    address = f"127.0.0.1:{port}"
    settings = make_settings(data, HUTCH_BIND=address, HUTCH_PUBLIC_URL=f"http://{address}", **env)
    runtime = Runtime(settings, want_analytics=True, run_projectors=True)
    runtime.db.migrate()
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
    yield from serve_in_thread(tmp_path_factory.mktemp("hutch") / "data")
