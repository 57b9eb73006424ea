"""The embedded relational store on SQLite (WAL), shared safely by several processes.

It is a projection of the log: its tracking records (projection_positions) commit in the same
transaction as the rows, so `synchronous=NORMAL` is enough: a lost tail after a power cut
rolls the rows and their position back together, and the projector replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from storage.errors import Conflict, StorageError, Unavailable
from storage.relational.migrations import apply_migrations
from storage.relational.protocol import Params, Row, Transaction
from storage.relational.turns import local_turn


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params | None = None) -> int:
        with _translated():
            return self._conn.execute(sql, params or {}).rowcount

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        with _translated():
            return self._conn.execute(sql, params or {}).fetchall()

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        with _translated():
            row: Row | None = self._conn.execute(sql, params or {}).fetchone()
            return row


_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "readonly", "full")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise Conflict(str(exc)) from exc
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if any(word in message.lower() for word in _TRANSIENT):
            raise Unavailable(f"relational store: {message}") from exc
        raise StorageError(f"relational store: {message}") from exc  # e.g. a missing table
    except sqlite3.Error as exc:
        raise StorageError(f"relational store: {exc}") from exc


class SQLiteRelational:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._lock_path = path.with_name(path.name + ".commands.lock")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise Unavailable(f"relational store at {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def migrate(self) -> list[str]:
        return apply_migrations(self, self.dialect)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        conn = self._conn()
        with _translated():
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTransaction(conn)
        except BaseException:
            # SQLite may have rolled back by itself (a full disk): a ROLLBACK then fails
            # with "no transaction is active" and hides the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        with _translated():
            conn.execute("COMMIT")

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        return _SQLiteTransaction(self._conn()).fetchall(sql, params)

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        return _SQLiteTransaction(self._conn()).fetchone(sql, params)

    @contextlib.asynccontextmanager
    async def command_lock(self, name: str) -> AsyncIterator[None]:
        # One lock for every aggregate: commands are rare next to ingest, and one file lock
        # serialises them across the CLI, ingest workers and the query process alike.
        async with local_turn():
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def ping(self) -> str:
        row = self.fetchone("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
        assert row is not None
        return str(row[0])

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
