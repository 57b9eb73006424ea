"""What a projection is. The runner (projections/runner.py) drives every one the same way.

An analytics projection is a pure transform from a batch of log records to column-oriented
rows per ClickHouse table. It never touches the sink: the runner writes the rows, with an
insert deduplication token per table and log range, then commits the offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from schemas.events import Topic
from storage.log import Record

Columns = dict[str, list[Any]]
"""Column name -> values, all lists of one length: one block for Analytics.insert."""

Rows = dict[str, Columns]
"""Table name -> its columns for this batch. Tables with no rows may be left out."""


class AnalyticsProjection(Protocol):
    name: str
    """Stable name: the consumer group (`hutch.<name>`) and `hutch replay <name>`."""

    topics: tuple[Topic, ...]
    tables: tuple[str, ...]
    """The tables it owns, in creation order; replay drops and recreates them."""

    def ddl(self) -> list[str]:
        """CREATE TABLE IF NOT EXISTS statements for its tables, in order."""

    def transform(self, records: Sequence[Record]) -> Rows:
        """Rows for these records. Pure: the same records give the same rows, always.

        A record it cannot decode is skipped (and logged with its offset), never raised:
        the log keeps it, and a poison record must not stop the projection.
        """
