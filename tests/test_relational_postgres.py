"""PostgreSQL passes the relational conformance suite, and survives a server restart.

Each test runs in a schema of its own (search_path set through the connection options), in
the database HUTCH_TEST_POSTGRES names (`bash ops/services.sh start` prints it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from storage.errors import StorageError, Unavailable
from storage.relational.migrations import migration_files
from storage.relational.postgres import PostgresRelational
from tests.conformance.relational import RelationalConformance, StoreFactory
from tests.support.services import IN_CI, need_service, with_search_path
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parent.parent / "ops" / "services.sh"


@pytest.fixture(scope="module")
def server_url() -> str:
    return need_service("HUTCH_TEST_POSTGRES", "PostgreSQL")


@pytest.fixture
def schema_url(server_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test; dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = PostgresRelational(server_url, pool_size=1)
    try:
        with admin.transaction() as tx:
            tx.execute(f'CREATE SCHEMA "{schema}"')
        yield with_search_path(server_url, schema)
        with admin.transaction() as tx:
            tx.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.close()


class TestPostgresRelational(RelationalConformance):
    @pytest.fixture
    def new_store(self, schema_url: str) -> StoreFactory:
        return lambda: PostgresRelational(schema_url)


@pytest.fixture
def store(schema_url: str) -> Iterator[PostgresRelational]:
    db = PostgresRelational(schema_url, pool_timeout_s=3)
    db.migrate()
    yield db
    db.close()


def test_concurrent_migrators_apply_each_migration_once(schema_url: str) -> None:
    stores = [PostgresRelational(schema_url) for _ in range(3)]
    applied: list[list[str]] = []
    errors: list[Exception] = []

    def migrate(db: PostgresRelational) -> None:
        try:
            applied.append(db.migrate())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(db,)) for db in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in stores:
        db.close()
    assert errors == []
    names = [name for done in applied for name in done]
    assert sorted(names) == [name for name, _ in migration_files("postgresql")]


def test_colons_and_percents_in_literals_are_left_alone(store: PostgresRelational) -> None:
    row = store.fetchone(
        "SELECT 'a:b 100%' AS lit, :v::text || '%', E'it\\'s :x', $q$ :y % $q$ -- :z %\n",
        {"v": "5"},
    )
    assert row == ("a:b 100%", "5%", "it's :x", " :y % ")


def test_a_syntax_error_is_a_storage_error_not_unavailable(store: PostgresRelational) -> None:
    with pytest.raises(StorageError) as raised:
        store.fetchall("SELEC 1")
    assert not isinstance(raised.value, Unavailable)


async def test_a_cancelled_lock_waiter_does_not_keep_the_lock(store: PostgresRelational) -> None:
    async with store.command_lock("app:y"):
        waiter = asyncio.create_task(_hold(store, "app:y"))
        await asyncio.sleep(0.2)  # the waiter is now blocked on the server
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    # The waiter's thread got the lock after we released it and must have let it go.
    await asyncio.wait_for(_hold(store, "app:y"), timeout=30)


async def _hold(store: PostgresRelational, name: str) -> None:
    async with store.command_lock(name):
        pass


def _bounded(action: Callable[[], object], limit_s: float) -> object:
    """What `action` returned or raised, or a failure if it is still running after limit_s:
    a dead server must not hang a caller."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():
        pytest.fail(f"still blocked after {limit_s}s with the server down")
    return outcome[0]


def _services(command: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUTCH_PG_PORT": str(port)}
    return subprocess.run(
        ["bash", str(SERVICES), command], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.integration
@pytest.mark.slow
def test_a_restart_is_unavailable_then_recovers(schema_url: str) -> None:
    port = urlsplit(schema_url).port or 5432
    status = _services("status", port)
    if f"postgres: running on 127.0.0.1:{port}" not in status.stdout:
        message = f"the PostgreSQL on port {port} is not run by ops/services.sh: cannot restart it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    db = PostgresRelational(schema_url, pool_timeout_s=1)
    try:
        db.migrate()
        with db.transaction() as tx:
            tx.execute("INSERT INTO developers (name, created_at) VALUES ('kept', 1)")
        assert _services("pg-stop", port).returncode == 0
        try:
            read = _bounded(lambda: db.fetchall("SELECT name FROM developers"), 60)
            assert isinstance(read, Unavailable), read

            def write() -> None:
                with db.transaction() as tx:
                    tx.execute("INSERT INTO developers (name, created_at) VALUES ('lost', 2)")

            assert isinstance(_bounded(write, 60), Unavailable)
            assert isinstance(_bounded(db.ping, 60), Unavailable)
        finally:
            started = _services("pg-start", port)
            assert started.returncode == 0, started.stderr
        assert _retry(lambda: db.fetchall("SELECT name FROM developers")) == [("kept",)]
        asyncio.run(asyncio.wait_for(_hold(db, "after-restart"), timeout=30))
    finally:
        db.close()


def _retry(action: Callable[[], object], limit_s: float = 60) -> object:
    """The pool reconnects in the background: the first calls after a restart may still be
    refused, but the store must come back on its own."""
    (answer,) = eventually(
        lambda: (action(),), timeout_s=limit_s, interval_s=0.2, ignoring=(Unavailable,)
    )
    return answer
