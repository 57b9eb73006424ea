"""The production relational store on PostgreSQL (psycopg 3 with a connection pool).

The SQL is the one SQLite runs (`:name` parameters, ON CONFLICT, RETURNING, BIGINT micros),
rewritten once per statement text into psycopg's `%(name)s` form. Transactions run at READ
COMMITTED (set on every connection), which state/relational.py relies on: the upsert that
takes a position row waits for a concurrent applier to commit, then answers the offset that
applier committed, and the statements after it, each with a new snapshot, see its rows.

Every wait is bounded, so a dead server turns into Unavailable instead of a hung request:
`connect_timeout` for a new connection, the pool's `timeout` for borrowing one,
`statement_timeout` for a statement (advisory lock waits included), and TCP keepalives with
`tcp_user_timeout` for a server that vanished without closing its sockets. Connections are
checked when borrowed, so those a restarted server dropped are replaced, not handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import IsolationLevel
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from storage.errors import Conflict, StorageError, Unavailable
from storage.relational.migrations import apply_migrations
from storage.relational.placeholders import to_pyformat
from storage.relational.protocol import Params, Row, Transaction
from storage.relational.turns import local_turn

log = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]

# libpq settings applied unless the URL names them.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "5",
    "application_name": "hutch",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
STATEMENT_TIMEOUT_MS = 30_000
# Advisory locks share one 64-bit key space per database: keys are hashed from a prefix, the
# schema in use (two Hutch installations may share a database) and the lock's name.
_LOCK_KEY = "hashtextextended('hutch:' || coalesce(current_schema(), '') || ':' || %s, 0)"


class _PostgresTransaction:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params | None = None) -> int:
        with _translated():
            return self._conn.execute(to_pyformat(sql), params or {}).rowcount

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        with _translated():
            return self._conn.execute(to_pyformat(sql), params or {}).fetchall()

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        with _translated():
            return self._conn.execute(to_pyformat(sql), params or {}).fetchone()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise Conflict(str(exc)) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        # Includes a lost connection, a refused one, a pool timeout, a cancelled statement
        # (statement_timeout) and serialisation failures: all worth retrying later.
        raise Unavailable(f"relational store: {exc}") from exc
    except psycopg.Error as exc:
        raise StorageError(f"relational store: {exc}") from exc


def conninfo(url: str, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> str:
    """libpq connection parameters for `url`, with Hutch's defaults for what it leaves out."""
    params = conninfo_to_dict(url)
    for key, value in _CONNECTION_DEFAULTS.items():
        params.setdefault(key, value)
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={statement_timeout_ms}".strip()
    params["options"] = options
    return make_conninfo("", **params)


def _configure(conn: Connection) -> None:
    # Explicit, whatever the server's default_transaction_isolation says: the position lock
    # in state/relational.py needs each statement to see what committed before it.
    conn.isolation_level = IsolationLevel.READ_COMMITTED


def _split_pool_options(url: str) -> tuple[str, dict[str, str]]:
    """The URL without Hutch's own `pool_size` and `pool_timeout` (libpq rejects them); the
    other parameters are kept byte for byte, as libpq decodes them its own way."""
    parts = urlsplit(url)
    kept, ours = [], {}
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if key in ("pool_size", "pool_timeout"):
            ours[key] = unquote(value)
        else:
            kept.append(item)
    return urlunsplit(parts._replace(query="&".join(kept))), ours


class PostgresRelational:
    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout_s: float = 10.0,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        """Connections open in the background: a server that is down now only makes the
        operations fail (Unavailable) until it is back. `pool_size` and `pool_timeout` may
        also come from the URL's query string."""
        self._url = url
        url, options = _split_pool_options(url)
        pool_size = int(options.get("pool_size", pool_size))
        pool_timeout_s = float(options.get("pool_timeout", pool_timeout_s))
        info = conninfo(url, statement_timeout_ms)
        common: dict[str, Any] = {
            "kwargs": {"autocommit": True},
            "configure": _configure,
            "check": ConnectionPool.check_connection,
            "timeout": pool_timeout_s,
            "open": False,
        }
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            info, min_size=1, max_size=pool_size, name="hutch-relational", **common
        )
        # Held locks pin a connection each: a pool of their own, so commands waiting on a
        # lock never starve the reads and projections of connections, nor the reverse.
        self._locks: ConnectionPool[Connection] = ConnectionPool(
            info, min_size=0, max_size=pool_size, name="hutch-locks", num_workers=1, **common
        )
        self._pool.open(wait=False)
        self._locks.open(wait=False)

    def migrate(self) -> list[str]:
        # Serialised across processes: concurrent `CREATE TABLE IF NOT EXISTS` may otherwise
        # collide in PostgreSQL's catalogue, and two migrators would race on every file.
        # Without a statement timeout: a migration may rewrite a big table, and the next
        # migrator waits for the lock as long as that takes.
        migrator = PostgresRelational(self._url, pool_size=1, statement_timeout_ms=0)
        try:
            conn = migrator._acquire("migrations")
            try:
                return apply_migrations(migrator, self.dialect)
            finally:
                migrator._release(conn, "migrations")
        finally:
            migrator.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with _translated(), self._pool.connection() as conn, conn.transaction():
            yield _PostgresTransaction(conn)

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        with _translated(), self._pool.connection() as conn:
            return conn.execute(to_pyformat(sql), params or {}).fetchall()

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        with _translated(), self._pool.connection() as conn:
            return conn.execute(to_pyformat(sql), params or {}).fetchone()

    @contextlib.asynccontextmanager
    async def command_lock(self, name: str) -> AsyncIterator[None]:
        async with local_turn(), self._advisory_lock(name):
            yield

    @contextlib.asynccontextmanager
    async def _advisory_lock(self, name: str) -> AsyncIterator[None]:
        # pg_advisory_lock blocks its connection until granted (in arrival order), so it
        # waits in a worker thread. A caller cancelled meanwhile must not leave the lock
        # held once the thread gets it: the thread's result is released when it arrives.
        loop = asyncio.get_running_loop()
        key = f"command:{name}"
        acquiring = loop.run_in_executor(None, self._acquire, key)
        try:
            conn = await asyncio.shield(acquiring)
        except asyncio.CancelledError:

            def release_late(done: asyncio.Future[Connection]) -> None:
                if not done.cancelled() and done.exception() is None:
                    loop.run_in_executor(None, self._release, done.result(), key)

            acquiring.add_done_callback(release_late)
            raise
        try:
            yield
        finally:
            await asyncio.shield(loop.run_in_executor(None, self._release, conn, key))

    def _acquire(self, key: str) -> Connection:
        """A connection of the lock pool holding the advisory lock `key` (session level)."""
        with _translated():
            conn = self._locks.getconn()
            try:
                conn.execute(f"SELECT pg_advisory_lock({_LOCK_KEY})", [key])
            except BaseException:
                self._locks.putconn(conn)
                raise
        return conn

    def _release(self, conn: Connection, key: str) -> None:
        """Unlock and give the connection back. If unlocking fails the connection is closed
        instead, which ends its session and so releases the lock on the server."""
        try:
            conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", [key])
        except psycopg.Error:
            log.warning("advisory unlock failed; closing its connection", extra={"lock": key})
            conn.close()
        finally:
            self._locks.putconn(conn)

    def ping(self) -> str:
        row = self.fetchone(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
        )
        assert row is not None
        return str(row[0])

    def close(self) -> None:
        self._locks.close()
        self._pool.close()
