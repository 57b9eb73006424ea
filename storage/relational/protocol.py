"""The relational interface. SQLite and PostgreSQL both pass tests/conformance/relational.py.

SQL is written once for both dialects: named parameters as `:name`, integers for times
(microseconds since the epoch) and booleans, `ON CONFLICT` upserts, `RETURNING`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]
Params = Mapping[str, Any]


class Transaction(Protocol):
    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; returns the number of rows it changed."""

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None: ...


class Relational(Protocol):
    dialect: str
    """"sqlite" or "postgresql": picks a migration's dialect variant, if it has one."""

    def migrate(self) -> list[str]:
        """Apply the migrations in schemas/relational not applied yet; returns their names."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A read-write transaction, committed on exit, rolled back on an exception.

        Writers are serialised (SQLite) or isolated (PostgreSQL); a uniqueness violation
        raises Conflict, a lost connection Unavailable. Blocks; call from a thread in async
        code.
        """

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        """A read outside any write transaction (sees committed data)."""

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None: ...

    def command_lock(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive lock across processes while a command validates and appends.

        CommandContext on one aggregate run one at a time, so each validates against the state
        its predecessors left (see state/relational.py). PostgreSQL bounds the wait
        (then Unavailable); SQLite's file lock waits until the holder lets go.
        """

    def ping(self) -> str:
        """The database's current time (ISO 8601); raises Unavailable."""

    def close(self) -> None: ...
