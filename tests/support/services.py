"""Real services for the integration tests: reach them, or skip (fail under CI=true) when one
is missing; a fresh PostgreSQL schema per test."""

from __future__ import annotations

import os
import uuid
from typing import NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for this reason, unless CI=true, where every integration test must run,
    so it fails instead."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def need_service(env: str, what: str) -> str:
    """The URL of a real service from `env`. Unset: skip the test, unless CI=true, where
    every integration test must run, so it fails instead."""
    url = os.environ.get(env, "")
    if not url:
        unavailable(f"{what} not configured: set {env} (`make services` prints it)")
    return url


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
