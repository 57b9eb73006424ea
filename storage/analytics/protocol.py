"""The analytics interface. chDB and ClickHouse server both pass tests/conformance/analytics.py.

SQL is ClickHouse SQL, the same text for both; values are bound as ClickHouse query
parameters (`{name:Type}`), never formatted into the text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    """Values as ClickHouse's JSONCompact format gives them (64-bit ints as strings)."""
    elapsed_s: float


class EngineInsert(NamedTuple):
    """An INSERT whose rows the engine makes itself from JSON lines (JSONEachRow)."""

    table: str
    columns: tuple[str, ...]
    select: str
    """`SELECT … FROM {input} …`: the adapter puts the lines' table in place of `{input}`.
    May bind `{name:Type}` parameters from `params`."""
    structure: str
    """The columns read from each line, as a ClickHouse structure (`name Type, …`)."""
    params: Mapping[str, Any]
    settings: Mapping[str, int | str]
    """How the lines are read (input_format_* settings)."""


class RowBinary(NamedTuple):
    """Rows already encoded in ClickHouse's RowBinary format, one after another: each row's
    values in `columns` order, each encoded as its entry in `types` (a ClickHouse type the
    table column converts from: String for a LowCardinality(String))."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    data: bytes
    rows: int

    @property
    def structure(self) -> str:
        """The rows' structure as a table function takes it: `` `name` Type, …``."""
        return ", ".join(f"`{c}` {t}" for c, t in zip(self.columns, self.types, strict=True))


class Analytics(Protocol):
    def execute(self, sql: str) -> None:
        """Run a statement without a result (DDL). Raises BadQuery or Unavailable."""

    def insert(
        self,
        table: str,
        columns: Mapping[str, Sequence[Any]],
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        """Insert rows given column by column; returns the number of rows.

        One call is one block: either all rows land or none. Calling again with the same
        `dedup_token` after a failure does not insert the rows twice, as long as the engine
        kept what it wrote (after a crash it may remember a block it lost: projections/sink.py
        checks the rows themselves). Blocks until the rows are stored. `marker` is the
        insert's `log_comment`, which a table's MATERIALIZED column can store in every row.
        Raises Unavailable (retryable; NoSpace when a smaller write may fit) or BadQuery.
        """

    def insert_json(
        self,
        insert: EngineInsert,
        lines: bytes,
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        """Run `insert` over `lines`; returns the rows written. The same guarantees as
        `insert`: one block, all or nothing, deduplicated by `dedup_token`, marked by
        `marker`."""

    def insert_row_binary(
        self,
        table: str,
        block: RowBinary,
        *,
        dedup_token: str | None = None,
        marker: str | None = None,
    ) -> int:
        """Insert encoded rows; returns the number of rows. The same guarantees as `insert`:
        one block, all or nothing, deduplicated by `dedup_token`, marked by `marker`."""

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        database: str | None = None,
    ) -> QueryResult:
        """Run one SELECT with bound parameters. Raises BadQuery or Unavailable.

        `database`, if given, is the query's current database, where its bare table names
        resolve; on a ClickHouse server configured with an analyst user (`sql_user`), such a
        query runs as that user. A query stopped by its own limits (time, memory, result
        size) is a BadQuery: it would fail again."""

    def ping(self) -> str:
        """The engine's current time (ISO 8601); raises Unavailable."""

    def close(self) -> None: ...
