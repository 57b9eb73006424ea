"""A stand-in ClickHouse server for tests: ClickHouse's HTTP interface in front of chDB.

No ClickHouse server can be installed on the test machines, so the server adapter is tested
against this: the real ClickHouse engine (chDB) behind the HTTP protocol clickhouse-connect
speaks. Run it as a process of its own (chDB allows one data directory per process):

    python tests/support/clickhouse_standin.py --port 18123 --path /tmp/ch --user u --password p \
        --database hutch_test

What it implements, as ClickHouse's HTTPHandler does:
- `GET /ping` and `GET /` without a query answer `Ok.`.
- `/` runs one query: the `query` URL parameter, a line feed and the body, or either alone; or,
  for `multipart/form-data`, the `query` and `param_*` form fields.
- `param_<name>` binds `{name:Type}`; `database` (or `X-ClickHouse-Database`), `default_format`
  (or `X-ClickHouse-Format`), `query_id` (or `X-ClickHouse-Query-Id`); every other URL
  parameter not reserved by the HTTP interface is a setting for this request only.
- GET implies `readonly=2`. Credentials by Basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key`
  or `user`/`password`; a wrong pair is `AUTHENTICATION_FAILED`.
- Answers carry X-ClickHouse-Query-Id, -Summary, -Timezone, -Server-Display-Name and, for
  statements that produce a result, -Format; failures carry X-ClickHouse-Exception-Code and
  the `Code: N. DB::Exception: ...` text, with ClickHouse's mapping of codes to HTTP statuses.
- `INSERT … SELECT … FROM input('structure') … FORMAT F` reads the body as the input() table.
- Request bodies may be gzip, deflate, zstd or lz4 encoded (clickhouse-connect's inserts are).

What it does not: sessions (`session_id` is accepted, but every request starts afresh), HTTP
response compression (answers are identity-encoded, which clients must accept), the native
`compress`/`decompress` framing and external tables (both refused as NOT_IMPLEMENTED),
progress headers while a query runs, and multi-statement refusal (chDB runs them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import socket
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import falcon
import falcon.asgi

_INPUT = re.compile(r"\binput\(\s*('(?:[^'\\]|\\.)*')\s*\)", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE)

# Parameters the HTTP interface reads itself; any other is a setting (HTTPHandler.cpp).
RESERVED = frozenset(
    {
        "query",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "database",
        "default_format",
    }
)

# exceptionCodeToHTTPStatus.cpp, by the error names chDB puts at the end of its messages.
_STATUS_BY_NAME = {
    **dict.fromkeys(["REQUIRED_PASSWORD"], 401),
    **dict.fromkeys(
        [
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ],
        403,
    ),
    **dict.fromkeys(
        [
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ],
        400,
    ),
    **dict.fromkeys(
        [
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ],
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}
_CODE = re.compile(r"Code: (\d+)\.")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
_INSERT_HEAD = re.compile(
    r"(?is)^(\s*INSERT\s+INTO\s+.*?)(\s+SETTINGS\s+.*?)?\s+FORMAT\s+(\w+)\s*$"
)
_RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
}


class ServerError(Exception):
    """An exception the stand-in raises itself, in ClickHouse's shape."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")


def _status(message: str) -> int:
    name = _NAME.search(message)
    return _STATUS_BY_NAME.get(name.group(1), 500) if name else 500


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES or fmt.startswith("TabSeparated"):
        return _CONTENT_TYPES.get(fmt, _CONTENT_TYPES["TabSeparated"])
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt in ("Native", "RowBinary", "Parquet", "Arrow", "ArrowStream", "ORC", "Avro"):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def _kind(sql: str) -> str:
    start = _LEADING_NOISE.match(sql)
    word = re.match(r"[A-Za-z]+", sql[start.end() if start else 0 :])
    return word.group().upper() if word else ""


@dataclass
class Outcome:
    body: bytes
    summary: dict[str, str] = field(default_factory=dict)


class Engine:
    """chDB, one fresh connection per request: no state leaks between requests (a chDB
    connection also hands a failed query's partial output to the next query on it)."""

    def __init__(self, path: Path, databases: list[str]) -> None:
        import chdb  # only in this process: chDB takes one data directory per process

        self._chdb: Any = chdb  # untyped module
        self._path = str(path)
        path.mkdir(parents=True, exist_ok=True)
        self.scratch = path / "standin-uploads"
        self.scratch.mkdir(exist_ok=True)
        # Kept open for the process's life, so the engine is not started per request.
        self._anchor = self._chdb.connect(self._path)
        for name in databases:
            self._anchor.query(f"CREATE DATABASE IF NOT EXISTS {_identifier(name)}")
        version, tz = self._anchor.query("SELECT version(), timezone()", "TSV").bytes().split()
        self.version = version.decode()
        self.timezone = tz.decode()

    def run(
        self,
        sql: str,
        fmt: str,
        database: str,
        settings: list[tuple[str, str]],
        params: dict[str, str],
    ) -> Outcome:
        conn = self._chdb.connect(self._path)
        try:
            if database:
                conn.query(f"USE {_identifier(database)}", "Null")
            for name, value in settings:
                if not _SETTING.fullmatch(name):
                    raise ServerError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
                literal = value.replace("\\", "\\\\").replace("'", "\\'")
                conn.query(f"SET {name} = '{literal}'", "Null")
            result = conn.query(sql, fmt, params=params) if params else conn.query(sql, fmt)
            body: bytes = result.bytes() if result is not None else b""
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": str(result.rows_written()),
                "written_bytes": str(result.bytes_written()),
                "total_rows_to_read": "0",
                "result_rows": "0",
                "result_bytes": str(len(body)),
                "elapsed_ns": str(int(result.elapsed() * 1e9)),
            }
            return Outcome(body, summary)
        finally:
            conn.close()


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class Request:
    method: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]


class QueryHandler:
    def __init__(self, engine: Engine, user: str, password: str) -> None:
        self._engine = engine
        self._user = user
        self._password = password
        self._display_name = socket.gethostname()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if not req.query_string:
            resp.content_type = "text/html; charset=UTF-8"
            resp.text = "Ok.\n"
            return
        await self._answer(req, resp)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._answer(req, resp)

    async def _answer(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.set_header("X-ClickHouse-Server-Display-Name", self._display_name)
        query_id = ""
        try:
            request = await _read(req)
            params = dict(request.params)
            query_id = params.get("query_id") or request.headers.get("x-clickhouse-query-id", "")
            query_id = query_id or str(uuid.uuid4())
            self._authenticate(request, params)
            outcome, fmt = await asyncio.to_thread(self._execute, request, params)
        except Exception as exc:
            message = str(exc) if _CODE.search(str(exc)) else f"Code: 1002. DB::Exception: {exc}"
            code = int(_CODE.search(message).group(1))  # type: ignore[union-attr]
            resp.status = _status(message)
            resp.content_type = "text/plain; charset=UTF-8"
            resp.set_header("X-ClickHouse-Exception-Code", str(code))
            resp.text = f"{message} (version {self._engine.version})\n"
            return
        resp.set_header("X-ClickHouse-Query-Id", query_id)
        resp.set_header("X-ClickHouse-Timezone", self._engine.timezone)
        resp.set_header("X-ClickHouse-Summary", json.dumps(outcome.summary))
        if fmt is not None:
            resp.set_header("X-ClickHouse-Format", fmt)
        resp.content_type = _content_type(fmt or "")
        resp.data = outcome.body

    def _authenticate(self, request: Request, params: dict[str, str]) -> None:
        user = params.get("user", "default")
        password = params.get("password", "")
        if "x-clickhouse-user" in request.headers:
            user = request.headers["x-clickhouse-user"]
            password = request.headers.get("x-clickhouse-key", "")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            user, _, password = decoded.partition(":")
        if (user, password) != (self._user, self._password):
            raise ServerError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name",
            )

    def _execute(self, request: Request, params: dict[str, str]) -> tuple[Outcome, str | None]:
        for unsupported in ("compress", "decompress"):
            if params.get(unsupported, "0") not in ("0", "false", ""):
                raise ServerError(48, "NOT_IMPLEMENTED", f"the stand-in has no `{unsupported}`")
        settings = [
            (name, value)
            for name, value in request.params
            if name and name not in RESERVED and not name.startswith("param_")
        ]
        if request.method == "GET":
            settings.insert(0, ("readonly", "2"))  # GET implies a read-only query
        database = request.headers.get("x-clickhouse-database") or params.get("database", "")
        fmt = (
            request.headers.get("x-clickhouse-format")
            or params.get("default_format")
            or "TabSeparated"
        )
        head = params.get("query", "")
        if request.form:
            sql = request.form.get("query", head)
            bound = {**_bound(request.params), **_bound(request.form.items())}
        else:
            bound = _bound(request.params)
            if request.body and _INPUT.search(head):
                return self._insert_from_input(head, request.body, database, settings, bound), None
            try:
                body = request.body.decode()
            except UnicodeDecodeError:
                # chDB takes text only: binary rows (Native, RowBinary...) go through a file.
                return self._insert_binary(head, request.body, database, settings), None
            sql = f"{head}\n{body}" if head else body
        if not sql.strip():
            raise ServerError(62, "SYNTAX_ERROR", "Empty query")
        kind = _kind(sql)
        explicit = _FORMAT_CLAUSE.search(sql) if kind != "INSERT" else None
        outcome = self._engine.run(sql, fmt, database, settings, bound)
        if kind not in _RESULT_KINDS:
            return outcome, None
        return outcome, explicit.group(1) if explicit else fmt

    def _insert_binary(
        self, head: str, data: bytes, database: str, settings: list[tuple[str, str]]
    ) -> Outcome:
        if not head:  # the INSERT header leads the body, before the first line feed
            first, _, data = data.partition(b"\n")
            head = first.decode(errors="replace")
        match = _INSERT_HEAD.match(head)
        if match is None:
            raise ServerError(48, "NOT_IMPLEMENTED", "binary data must follow `INSERT ... FORMAT`")
        into, clause, fmt = match.groups()
        with self._spooled(data) as path:
            sql = f"{into} FROM INFILE '{path}'{clause or ''} FORMAT {fmt}"
            return self._engine.run(sql, "TabSeparated", database, settings, {})

    def _insert_from_input(
        self,
        head: str,
        data: bytes,
        database: str,
        settings: list[tuple[str, str]],
        bound: dict[str, str],
    ) -> Outcome:
        """`INSERT … SELECT … FROM input('structure') … FORMAT F` with the rows in the body:
        chDB has no input() for data sent with a query, so the rows go through a file."""
        fmt = _TRAILING_FORMAT.search(head)
        if fmt is None:
            raise ServerError(62, "SYNTAX_ERROR", "input() needs a trailing FORMAT clause")
        with self._spooled(data) as path:
            sql = _INPUT.sub(
                lambda m: f"file('{path}', '{fmt.group(1)}', {m.group(1)})", head[: fmt.start()]
            )
            return self._engine.run(sql, "TabSeparated", database, settings, bound)

    @contextlib.contextmanager
    def _spooled(self, data: bytes) -> Iterator[str]:
        """A request body chDB cannot take with a query, in a scratch file for the statement;
        yields its path as the inside of an SQL string literal."""
        with tempfile.NamedTemporaryFile(dir=self._engine.scratch, suffix=".body") as file:
            file.write(data)
            file.flush()
            yield file.name.replace("\\", "\\\\").replace("'", "\\'")


def _bound(pairs: Any) -> dict[str, str]:
    return {name[len("param_") :]: value for name, value in pairs if name.startswith("param_")}


async def _read(req: falcon.asgi.Request) -> Request:
    params = parse_qsl(req.query_string, keep_blank_values=True)
    headers = {name.lower(): value for name, value in req.headers.items()}
    form: dict[str, str] = {}
    body = b""
    if (req.content_type or "").startswith("multipart/form-data"):
        async for part in await req.get_media():
            if part.filename is not None:
                raise ServerError(48, "NOT_IMPLEMENTED", "the stand-in has no external tables")
            form[part.name] = (await part.get_data()).decode()
    else:
        body = _decoded(await req.stream.read(), headers.get("content-encoding", "").lower())
    return Request(req.method, params, headers, body, form)


def _decoded(body: bytes, encoding: str) -> bytes:
    """A request body in one of the Content-Encodings clients send ClickHouse."""
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        from backports import zstd  # the stdlib has it from 3.14

        return bytes(zstd.decompress(body))
    if encoding == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        # clickhouse-connect sends one frame per block, back to back.
        out = bytearray()
        while body:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out += decompressor.decompress(body)
            body = decompressor.unused_data
        return bytes(out)
    raise ServerError(36, "BAD_ARGUMENTS", f"Unknown compression method {encoding}")


class Ping:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = "text/html; charset=UTF-8"
        resp.text = "Ok.\n"


App = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]


def create_app(engine: Engine, user: str, password: str) -> App:
    app: App = falcon.asgi.App()
    app.req_options.keep_blank_qs_values = True
    app.req_options.auto_parse_qs_csv = False
    app.req_options.strip_url_path_trailing_slash = False
    app.add_route("/", QueryHandler(engine, user, password))
    app.add_route("/ping", Ping())
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--path", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument(
        "--database", action="append", default=[], help="create this database (repeatable)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    engine = Engine(args.path, args.database)
    app = create_app(engine, args.user, args.password)
    print(f"stand-in ClickHouse {engine.version} ready in {time.monotonic() - started:.1f}s")
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", access_log=False
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
