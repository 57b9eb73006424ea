"""Analytics on chDB: the ClickHouse engine in this process, persistent in the data directory.

chDB allows one process per data directory ("Cannot lock file .../status"), and a process
that imported chdb and then forked hangs in the child: import this module only in the one
process that owns the store, after any fork (hutch/wiring.py does it lazily).
Queries run in the caller's thread; chDB releases the GIL while the engine works, so the
async services call it through a thread pool. Each query borrows a connection of its own from
a small pool: a chDB connection keeps a failed query's partial output and hands it to the next
query on that connection (seen with chdb 4.4), so a connection that saw an error is closed and
replaced, and no two queries ever share one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import chdb
import orjson

from storage.analytics.params import format_params
from storage.analytics.protocol import EngineInsert, QueryResult, RowBinary
from storage.analytics.sql import (
    PING_SQL,
    block_rows,
    engine_insert_settings,
    error_code,
    insert_select_statement,
    insert_statement,
    json_compact_result,
    no_space,
    ping_time,
    quoted,
    quoted_name,
    settings_clause,
    unavailable,
)
from storage.errors import BadQuery, NoSpace, Unavailable

log = logging.getLogger(__name__)


def _translate(exc: Exception) -> Exception:
    message = str(exc)
    code = error_code(message)
    if no_space(code, message):
        return NoSpace(message)
    if "Cannot lock file" in message or unavailable(code, message):
        return Unavailable(message)
    return BadQuery(message, code)


POOL_SIZE = 8
HOME = "default"
"""Every connection's current database, where Hutch's tables are."""
_T = TypeVar("_T")


class ChdbAnalytics:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = str(path)
        self._spool = path / "spool"
        self._spool.mkdir(exist_ok=True)
        for left in self._spool.iterdir():  # by a process that died mid-insert
            left.unlink(missing_ok=True)
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._pool_lock = threading.Lock()
        self._closed = False
        self._ddl_lock = threading.Lock()
        self._pool.put(self._connect())  # fails early if the directory is locked

    def _connect(self) -> Any:
        try:
            conn = chdb.connect(self._path)
        except Exception as exc:
            raise _translate(exc) from exc
        with self._pool_lock:
            self._created += 1
        return conn

    def _borrow(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._pool_lock:
            room = self._created < POOL_SIZE
        return self._connect() if room else self._pool.get()

    def _discard(self, conn: Any) -> None:
        with self._pool_lock:
            self._created -= 1
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            log.debug("closing a failed chDB connection raised", exc_info=True)

    def execute(self, sql: str) -> None:
        with self._ddl_lock:
            self._run(sql, "Null")

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        count = block_rows(columns)
        if count == 0:
            return 0
        names = list(columns)
        body = orjson.dumps(columns).decode()
        self._run(insert_statement(table, names, dedup_token, marker) + body, "Null")
        return count

    def insert_json(
        self,
        insert: EngineInsert,
        lines: bytes,
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        return self._insert_from_file(insert, lines, "JSONEachRow", dedup_token, marker)

    def insert_row_binary(
        self,
        table: str,
        block: RowBinary,
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        if block.rows == 0:
            return 0
        insert = EngineInsert(
            table, block.columns, "SELECT * FROM {input}", block.structure, {}, {}
        )
        self._insert_from_file(insert, block.data, "RowBinary", dedup_token, marker)
        return block.rows

    def _insert_from_file(
        self,
        insert: EngineInsert,
        data: bytes,
        fmt: str,
        dedup_token: str | None,
        marker: str | None,
    ) -> int:
        # file() rather than FROM INFILE: the engine reads RowBinary twice as fast through it.
        with self._spooled(data) as spool:
            source = f"file({quoted(spool)}, {quoted(fmt)}, {quoted(insert.structure)})"
            sql = insert_select_statement(insert, source)
            settings = engine_insert_settings(insert, dedup_token, marker)
            return self._execute(
                sql + settings_clause(settings), "Null", insert.params, _rows_written
            )

    @contextlib.contextmanager
    def _spooled(self, data: bytes) -> Iterator[str]:
        """The path of a file holding `data` for one statement, removed once it ends: chDB
        has no input() for data passed with a query, nor a query that is not text."""
        spool = self._spool / f"{uuid.uuid4().hex}.spool"
        try:
            try:
                spool.write_bytes(data)
            except OSError as exc:
                # A full disk may clear, or fit a smaller write: the runner retries the span,
                # cut finer on NoSpace.
                error = NoSpace if exc.errno == errno.ENOSPC else Unavailable
                raise error(f"analytics spool file {spool}: {exc}") from exc
            yield str(spool)
        finally:
            with contextlib.suppress(OSError):
                spool.unlink(missing_ok=True)

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        database: str | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        text = sql + settings_clause(settings)
        raw = self._execute(text, "JSONCompact", params, _result_bytes, database)
        return json_compact_result(raw, started)

    def ping(self) -> str:
        return ping_time(self.query(PING_SQL))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            self._discard(conn)

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None = None) -> bytes:
        return self._execute(sql, fmt, params, _result_bytes)

    def _execute(
        self,
        sql: str,
        fmt: str,
        params: Mapping[str, Any] | None,
        read: Callable[[Any], _T],
        database: str | None = None,
    ) -> _T:
        """`read` of the engine's result object (None for some statements), taken before the
        connection serves another query. A chDB connection is a session: `database` is made
        its current database for this query only (USE, then USE back)."""
        if self._closed:
            raise Unavailable("analytics store is closed")
        conn = self._borrow()
        try:
            if database is not None:
                conn.query(f"USE {quoted_name(database)}", "Null")
            if params:
                result = conn.query(sql, fmt, params=format_params(params))
            else:
                result = conn.query(sql, fmt)
            value = read(result)
            if database is not None:
                conn.query(f"USE {HOME}", "Null")
        except Exception as exc:
            self._discard(conn)
            raise _translate(exc) from exc
        self._pool.put(conn)
        return value


def _result_bytes(result: Any) -> bytes:
    return result.bytes() if result is not None else b""


def _rows_written(result: Any) -> int:
    return int(result.rows_written()) if result is not None else 0
