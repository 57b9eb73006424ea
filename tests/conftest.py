"""Shared fixtures: settings in a temporary data directory, a Hutch server (uvicorn in a
thread, real HTTP) for request-level tests, local S3 servers; and the hook that marks every
test using a service fixture `integration`. Their support code is in tests/support/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from base.settings import Settings
from tests.support import s3
from tests.support.browser import launch, new_page
from tests.support.github_standin import GitHubStandIn, github_standin
from tests.support.servers import Server, serve_in_thread
from tests.support.settings import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("hutch") / "data")


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubStandIn]:
    """A local GitHub (OAuth, REST, webhooks); `github.env` points a Hutch server at it."""
    with github_standin(tmp_path_factory.mktemp("github")) as standin:
        yield standin


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, one per module (tests/support/browser.py)."""
    with launch() as started:
        yield started


@pytest.fixture
def browser_page(chromium: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own (no cookies or storage from another test)."""
    with new_page(chromium) as page:
        yield page


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server's endpoint (it does not check signatures)."""
    with s3.moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def verifying_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """(s3:// URL, credentials or None for the environment's) of a verifying S3 server."""
    with s3.verifying_server(tmp_path_factory.mktemp("versitygw")) as found:
        yield found


SERVICE_FIXTURES = frozenset(
    {
        # a Hutch server (uvicorn in a thread, or `hutch serve` as a process tree)
        "server", "served", "serving", "ingest_only", "world",
        # stores and services: chDB, SQLite and Kafka logs, relational stores, S3, ClickHouse
        "runtime", "analytics", "chdb", "store", "new_store", "new_log", "log", "db",
        "kafka_log", "stores", "standin", "services", "topology", "apps",
        "verifying_s3", "moto_endpoint", "s3_url", "server_url", "small_disk", "disk",
        "site", "tls", "target_url", "github",
        # a headless chromium (tests/support/browser.py)
        "chromium", "browser_page",
    }
)  # fmt: skip
"""Fixtures that start a server, a process or a service, or open a store: a test using one
(directly or through another fixture) is an integration test, whatever its module says."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
