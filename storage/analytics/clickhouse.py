"""Analytics on a ClickHouse server over HTTP (clickhouse-connect), with chDB's exact SQL.

What goes over the wire is what the chDB adapter hands its engine: inserts are the INSERT
header from storage/analytics/sql.py (deduplication token included) followed by the
JSONColumns body; queries bind `{name:Type}` parameters server-side (`param_<name>`) in the
text form of storage/analytics/params.py, and answer in JSONCompact. Per-query settings travel
as URL parameters, ClickHouse's own way for HTTP.

The client is created on first use, so a server that is down at start-up makes operations
fail with Unavailable until it is back rather than stopping the process. It is shared by
threads: no HTTP session (sessions forbid concurrent queries), and bounded connect and
read timeouts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import clickhouse_connect
import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import (
    ClickHouseError,
    DatabaseError,
    OperationalError,
    ProgrammingError,
)

from storage.analytics.params import format_value
from storage.analytics.protocol import EngineInsert, QueryResult, RowBinary
from storage.analytics.sql import (
    PING_SQL,
    block_rows,
    engine_insert_settings,
    error_code,
    insert_select_statement,
    insert_settings,
    insert_statement,
    json_compact_result,
    no_space,
    ping_time,
    quoted,
    setting_values,
    unavailable,
)
from storage.errors import BadQuery, NoSpace, StorageError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:")
_AUTH_CODES = frozenset(
    {
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        516,  # AUTHENTICATION_FAILED
    }
)
_OPTIONS = (
    "secure",
    "verify",
    "connect_timeout",
    "send_receive_timeout",
    "sql_user",
    "sql_password",
)
CONNECT_TIMEOUT_S = 5
SEND_RECEIVE_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    host: str = "localhost"
    port: int = 8123
    username: str = "default"
    password: str = ""
    database: str = "default"
    secure: bool = False
    verify: bool = True
    connect_timeout_s: int = CONNECT_TIMEOUT_S
    send_receive_timeout_s: int = SEND_RECEIVE_TIMEOUT_S
    sql_username: str = ""
    """The analyst user POST /api/sql's queries run as (ops/clickhouse/analyst.sql); empty:
    they run as `username`, held by Hutch's own checks and filters alone."""
    sql_password: str = ""

    @classmethod
    def from_url(cls, url: str) -> ClickHouseConfig:
        """`clickhouse://user:pw@host:8123/db?secure=0` (`clickhouses://` for TLS); query
        options: secure, verify, connect_timeout and send_receive_timeout (seconds), and
        sql_user / sql_password for the analyst user."""
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise ValueError(f"not a ClickHouse URL: {parts.scheme}://")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown ClickHouse URL options: {', '.join(unknown)}")
        secure = parts.scheme == "clickhouses" or _flag(options.get("secure", "0"))
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if secure else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.strip("/")) or "default",
            secure=secure,
            verify=_flag(options.get("verify", "1")),
            connect_timeout_s=int(options.get("connect_timeout", CONNECT_TIMEOUT_S)),
            send_receive_timeout_s=int(options.get("send_receive_timeout", SEND_RECEIVE_TIMEOUT_S)),
            sql_username=options.get("sql_user", ""),
            sql_password=options.get("sql_password", ""),
        )


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


class _Bound:
    """A parameter already in ClickHouse's text form. clickhouse-connect formats the Python
    types it knows in its own way (datetimes lose their microseconds, for one) and sends any
    other object as `str(value)`: wrapping the text sends exactly what chDB receives."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _bound(params: Mapping[str, Any]) -> dict[str, _Bound]:
    return {name: _Bound(format_value(value)) for name, value in params.items()}


def _translate(exc: Exception) -> StorageError:
    message = str(exc)
    if isinstance(exc, ProgrammingError):
        return BadQuery(message)  # refused by the client before sending, e.g. a readonly setting
    if isinstance(exc, OperationalError | OSError):
        return Unavailable(f"analytics store: {message}")  # transport, timeouts, 429/503/504
    if isinstance(exc, DatabaseError):
        code = exc.code if exc.code is not None else error_code(message)
        if no_space(code, message):
            return NoSpace(f"analytics store: {message}")
        if code is None or unavailable(code, message) or code in _AUTH_CODES:
            # No code: an HTTP failure that is not ClickHouse's (a proxy's 502, say).
            return Unavailable(f"analytics store: {message}")
        return BadQuery(message, code)
    return Unavailable(f"analytics store: {message}")


class ClickHouseAnalytics:
    def __init__(self, config: ClickHouseConfig) -> None:
        self.config = config
        self._client: Client | None = None
        self._analyst: Client | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> ClickHouseAnalytics:
        return cls(ClickHouseConfig.from_url(url))

    def execute(self, sql: str) -> None:
        self._call(lambda client: client.command(sql))

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
        head = insert_statement(table, names, dedup_token, marker)
        body = orjson.dumps(columns)
        # The header goes in the `query` URL parameter and the rows in the body; the server
        # reads them as one statement. A command is never resent by the client on its own,
        # so a lost answer is retried by the caller, with the same token.
        self._call(lambda client: client.command(head, data=body))
        return count

    def insert_json(
        self,
        insert: EngineInsert,
        lines: bytes,
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        # The server reads the body as the input() table, in the trailing FORMAT.
        sql = insert_select_statement(insert, f"input({quoted(insert.structure)})")
        sql += "\nFORMAT JSONEachRow"
        settings = setting_values(engine_insert_settings(insert, dedup_token, marker))
        bound = _bound(insert.params)
        summary = self._call(
            lambda client: client.command(
                sql, parameters=bound or None, data=lines, settings=settings
            )
        )
        return int(getattr(summary, "written_rows", 0))

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
        # clickhouse-connect's own raw insert: the statement and a line feed lead the body, so
        # rows starting with a byte ClickHouse reads as white space stay whole. It may send
        # again a request whose connection broke; the token makes that harmless.
        settings = insert_settings(dedup_token, marker)
        self._call(
            lambda client: client.raw_insert(
                table, list(block.columns), block.data, settings=settings, fmt="RowBinary"
            )
        )
        return block.rows

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        database: str | None = None,
    ) -> QueryResult:
        started = time.perf_counter()
        bound: dict[str, Any] | None = None
        # Without a placeholder clickhouse-connect would format the text client-side
        # (Python %-style); ClickHouse ignores parameters a query does not use anyway.
        if params and _PLACEHOLDER.search(sql):
            bound = _bound(params)
        values = setting_values(settings)
        # The header names the query's database; the client's own `database` URL parameter
        # is left out so that nothing competes with it.
        headers = None if database is None else {"X-ClickHouse-Database": database}
        raw = self._call(
            lambda client: client.raw_query(
                sql,
                parameters=bound,
                settings=values or None,
                fmt="JSONCompact",
                use_database=database is None,
                transport_settings=headers,
            ),
            analyst=database is not None,
        )
        return json_compact_result(raw, started)

    def ping(self) -> str:
        return ping_time(self.query(PING_SQL))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = [c for c in (self._client, self._analyst) if c is not None]
            self._client = self._analyst = None
        for client in clients:
            client.close()

    def _call(self, action: Callable[[Client], T], *, analyst: bool = False) -> T:
        client = self._connect(analyst and bool(self.config.sql_username))
        try:
            return action(client)
        except (ClickHouseError, OSError) as exc:
            raise _translate(exc) from exc

    def _connect(self, analyst: bool = False) -> Client:
        with self._lock:
            if self._closed:
                raise Unavailable("analytics store is closed")
            if analyst:
                if self._analyst is None:
                    c = self.config
                    self._analyst = self._new_client(c.sql_username, c.sql_password)
                return self._analyst
            if self._client is None:
                self._client = self._new_client(self.config.username, self.config.password)
            return self._client

    def _new_client(self, username: str, password: str) -> Client:
        c = self.config
        try:
            return clickhouse_connect.get_client(
                host=c.host,
                port=c.port,
                username=username,
                password=password,
                database=c.database,
                secure=c.secure,
                verify=c.verify,
                connect_timeout=c.connect_timeout_s,
                send_receive_timeout=c.send_receive_timeout_s,
                autogenerate_session_id=False,
                compress=False,
                dedicated_pool=True,
            )
        except (ClickHouseError, OSError) as exc:
            # Connecting runs a few queries (version, settings); whatever fails there, the
            # store is not usable yet.
            raise Unavailable(f"analytics store at {c.host}:{c.port}: {exc}") from exc
