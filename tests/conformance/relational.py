"""The relational store conformance suite: SQLite and PostgreSQL must pass it unchanged.

A test module subclasses `RelationalConformance` and provides `new_store`, a factory of
stores over the SAME fresh database.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from schemas.envelope import new_envelope
from schemas.identity import DeveloperCreated, encode
from state.identity import IdentityProjection
from state.relational import apply_batch, position
from storage.errors import Conflict
from storage.log import Record
from storage.relational import Relational

StoreFactory = Callable[[], Relational]


def developer_record(offset: int, name: str) -> Record:
    payload = encode(DeveloperCreated(name))
    return Record("apps", 0, offset, new_envelope("developer.created.v1", payload, key=name))


class RelationalConformance:
    @pytest.fixture
    def new_store(self) -> StoreFactory:
        raise NotImplementedError

    @pytest.fixture
    def store(self, new_store: StoreFactory) -> Iterator[Relational]:
        store = new_store()
        store.migrate()
        yield store
        store.close()

    def test_migrations_apply_once(self, store: Relational) -> None:
        assert store.migrate() == []
        assert store.fetchall("SELECT name FROM developers") == []

    def test_a_transaction_commits_on_exit(self, store: Relational) -> None:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO developers (name, created_at) VALUES (:n, :t)", {"n": "a", "t": 1}
            )
        assert store.fetchall("SELECT name, created_at FROM developers") == [("a", 1)]

    def test_a_transaction_rolls_back_on_error(self, store: Relational) -> None:
        def write_then_fail() -> None:
            with store.transaction() as tx:
                tx.execute("INSERT INTO developers (name, created_at) VALUES ('b', 1)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            write_then_fail()
        assert store.fetchall("SELECT name FROM developers") == []

    def test_a_duplicate_key_is_a_conflict(self, store: Relational) -> None:
        with store.transaction() as tx:
            tx.execute("INSERT INTO developers (name, created_at) VALUES ('c', 1)")
        with pytest.raises(Conflict), store.transaction() as tx:
            tx.execute("INSERT INTO developers (name, created_at) VALUES ('c', 2)")
        assert store.fetchall("SELECT created_at FROM developers WHERE name = 'c'") == [(1,)]

    def test_rowcount_and_null_parameters(self, store: Relational) -> None:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO tokens (id, developer, name, token_hash, prefix, created_at, "
                "expires_at) VALUES ('t1', 'd', 'n', 'h', 'p', 1, :e)",
                {"e": None},
            )
            changed = tx.execute("UPDATE tokens SET revoked_at = 5 WHERE revoked_at IS NULL")
        assert changed == 1
        assert store.fetchone("SELECT expires_at, revoked_at FROM tokens") == (None, 5)

    def test_a_second_store_sees_committed_writes(
        self, store: Relational, new_store: StoreFactory
    ) -> None:
        other = new_store()
        try:
            with store.transaction() as tx:
                tx.execute("INSERT INTO developers (name, created_at) VALUES ('d', 1)")
            assert other.fetchone("SELECT name FROM developers") == ("d",)
        finally:
            other.close()

    def test_ping_gives_the_time(self, store: Relational) -> None:
        assert store.ping()[:2] == "20"

    async def test_command_lock_excludes_other_holders(
        self, store: Relational, new_store: StoreFactory
    ) -> None:
        other = new_store()
        inside: list[str] = []
        overlaps = 0

        async def hold(s: Relational, tag: str) -> None:
            nonlocal overlaps
            for _ in range(5):
                async with s.command_lock("developer:x"):
                    if inside:
                        overlaps += 1
                    inside.append(tag)
                    await asyncio.sleep(0.01)
                    inside.remove(tag)

        try:
            await asyncio.gather(hold(store, "a"), hold(other, "b"), hold(store, "c"))
        finally:
            other.close()
        assert overlaps == 0

    def test_projection_applies_each_record_once_under_concurrency(
        self, store: Relational, new_store: StoreFactory
    ) -> None:
        projection = IdentityProjection()
        records = [developer_record(i, f"dev-{i}") for i in range(50)]
        stores = [new_store() for _ in range(3)]
        applied: list[int] = []

        def apply(s: Relational) -> None:
            for start in range(0, 50, 10):
                applied.append(apply_batch(s, projection, records[start : start + 10]))

        threads = [threading.Thread(target=apply, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in stores:
            s.close()
        assert sum(applied) == 50
        assert position(store, "identity", "apps", 0) == 50
        names = [r[0] for r in store.fetchall("SELECT name FROM developers ORDER BY name")]
        assert names == sorted(f"dev-{i}" for i in range(50))

    async def test_a_burst_of_commands_in_one_process_does_not_stall(
        self, store: Relational
    ) -> None:
        """More commands at once than the default thread pool has threads, each needing a
        thread while it holds the lock (as catch-up and validation do)."""
        done: list[int] = []

        async def command(n: int) -> None:
            async with store.command_lock(f"developer:{n % 3}"):
                await asyncio.to_thread(store.ping)
                done.append(n)

        await asyncio.wait_for(asyncio.gather(*(command(n) for n in range(40))), timeout=60)
        assert sorted(done) == list(range(40))
