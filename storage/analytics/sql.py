"""ClickHouse statement text and error codes shared by the chDB and ClickHouse server adapters.

Kept apart from both drivers: the server adapter must not import chdb (a process that imports
it and then forks hangs), yet it sends the very same INSERT header.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from storage.analytics.protocol import EngineInsert, QueryResult
from storage.errors import BadQuery

_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"[a-z_0-9]+")

UNAVAILABLE_CODES = frozenset(
    {
        241,  # MEMORY_LIMIT_EXCEEDED: retry later (unless the query's own limit: see below)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        243,  # NOT_ENOUGH_SPACE
    }
)
NOT_ENOUGH_SPACE = 243
_QUERY_MEMORY_LIMIT = re.compile(r"Query memory limit exceeded|Memory limit \(for query\)")


def error_code(message: str) -> int | None:
    """The ClickHouse error code in an exception's text (`Code: 62. DB::Exception: ...`)."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def unavailable(code: int | None, message: str) -> bool:
    """Whether a failure is the engine's (retry later) rather than the query's. A query
    stopped by its own memory limit fails the same way every time: not worth a retry."""
    if code == 241 and _QUERY_MEMORY_LIMIT.search(message):
        return False
    return code in UNAVAILABLE_CODES


def no_space(code: int | None, message: str) -> bool:
    """Whether a failure is the disk being too full for the write (a smaller one may fit)."""
    return code == NOT_ENOUGH_SPACE or "No space left on device" in message


def quoted_name(name: str) -> str:
    """A ClickHouse identifier in backquotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def insert_statement(
    table: str, columns: Sequence[str], dedup_token: str | None, marker: str | None = None
) -> str:
    """The INSERT header both adapters send before a JSONColumns body."""
    names = ", ".join(f"`{c}`" for c in columns)
    head = f"INSERT INTO {table} ({names})"
    settings = insert_settings(dedup_token, marker)
    if settings:
        head += " SETTINGS " + ", ".join(f"{k} = {quoted(str(v))}" for k, v in settings.items())
    return head + " FORMAT JSONColumns "


def insert_settings(dedup_token: str | None, marker: str | None) -> dict[str, int | str]:
    """An insert's deduplication token, and its marker as the `log_comment` setting: a table
    can store it in every row of the insert (a MATERIALIZED column reading
    `getSetting('log_comment')`), so the rows say which write made them."""
    settings: dict[str, int | str] = {}
    if dedup_token is not None:
        settings["insert_deduplication_token"] = dedup_token
    if marker is not None:
        settings["log_comment"] = marker
    return settings


ONE_BLOCK_SETTINGS: dict[str, int | str] = {
    "max_threads": 1,
    "max_insert_threads": 1,
    "input_format_parallel_parsing": 0,
    "max_block_size": 1_048_576,
    "min_insert_block_size_rows": 1_048_576,
    "min_insert_block_size_bytes": 0,
}
"""An INSERT … SELECT made of exactly one block, the same way every time: with a
deduplication token, a retried insert is recognised only if its blocks come out the same."""


def insert_select_statement(insert: EngineInsert, source: str) -> str:
    """`INSERT INTO table (columns) SELECT …` with the lines' table function in place of
    `{input}`; settings are the caller's to add."""
    names = ", ".join(f"`{c}`" for c in insert.columns)
    return f"INSERT INTO {insert.table} ({names}) " + insert.select.replace("{input}", source)


def engine_insert_settings(
    insert: EngineInsert, dedup_token: str | None, marker: str | None = None
) -> dict[str, int | str]:
    return {**insert.settings, **ONE_BLOCK_SETTINGS, **insert_settings(dedup_token, marker)}


def quoted(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def setting_values(settings: Mapping[str, Any] | None) -> dict[str, str]:
    """Per-query settings as text (booleans as 0/1); a malformed name is a BadQuery."""
    values: dict[str, str] = {}
    for name, value in (settings or {}).items():
        if not _SETTING_NAME.fullmatch(name):
            raise BadQuery(f"invalid setting name {name!r}")
        values[name] = str(int(value)) if isinstance(value, bool) else str(value)
    return values


def settings_clause(settings: Mapping[str, Any] | None) -> str:
    if not settings:
        return ""
    parts = []
    for name, value in settings.items():
        if not _SETTING_NAME.fullmatch(name):
            raise BadQuery(f"invalid setting name {name!r}")
        literal = str(int(value)) if isinstance(value, bool | int) else quoted(str(value))
        parts.append(f"{name} = {literal}")
    return "\nSETTINGS " + ", ".join(parts)  # on its own line: a trailing -- comment is fine


PING_SQL = "SELECT toString(now64(6, 'UTC'))"


def json_compact_result(raw: bytes, started: float) -> QueryResult:
    """A JSONCompact answer (both adapters ask for this format) as a QueryResult."""
    decoded = orjson.loads(raw) if raw else {"meta": [], "data": []}
    return QueryResult(
        columns=[m["name"] for m in decoded["meta"]],
        types=[m["type"] for m in decoded["meta"]],
        rows=decoded["data"],
        elapsed_s=time.perf_counter() - started,
    )


def ping_time(result: QueryResult) -> str:
    """The engine's time from PING_SQL's result, as ISO 8601 UTC."""
    return str(result.rows[0][0]).replace(" ", "T") + "Z"


def block_rows(columns: Mapping[str, Sequence[Any]]) -> int:
    """How many rows a block of columns holds (0 for no columns)."""
    return len(next(iter(columns.values()), ()))
