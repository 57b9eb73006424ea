"""The two kinds of part a runner writes (projections/sink.py): records polled as Python
objects with the projection's transform of them, or a span the log delivered as JSON lines
that the engine transforms itself. Both can cut themselves in halves, for a disk too full
for the whole."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TypeVar

from projections.interface import AnalyticsProjection, Columns, EngineProjection, Rows
from projections.sink import Part, TableRows
from storage.analytics import Analytics
from storage.analytics.protocol import EngineInsert, RowBinary
from storage.log import Record
from storage.log.protocol import JsonBatch, Span, span_of

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def cut(items: Sequence[_T], count: int) -> list[Sequence[_T]]:
    """`items` cut into `count` contiguous parts as even as can be (fewer if it is short)."""
    count = max(1, min(count, len(items)))
    size, extra = divmod(len(items), count)
    cuts = [0]
    for n in range(count):
        cuts.append(cuts[-1] + size + (1 if n < extra else 0))
    return [items[a:b] for a, b in itertools.pairwise(cuts)]


class _Block:
    """A table's rows made by the Python transform: columns, or encoded rows."""

    def __init__(self, table: str, block: Columns | RowBinary) -> None:
        self.table = table
        self._block = block
        if isinstance(block, RowBinary):
            self.rows: int | None = block.rows
        else:
            self.rows = len(next(iter(block.values()), ()))

    def insert(self, analytics: Analytics, dedup_token: str, marker: str) -> int:
        if isinstance(self._block, RowBinary):
            return analytics.insert_row_binary(
                self.table, self._block, dedup_token=dedup_token, marker=marker
            )
        return analytics.insert(self.table, self._block, dedup_token=dedup_token, marker=marker)


class RecordsPart:
    """Records of one partition and their rows (the transform's, unless given)."""

    def __init__(
        self,
        projection: AnalyticsProjection,
        records: Sequence[Record],
        rows: Rows | None = None,
    ) -> None:
        self.span = span_of(records)
        self._projection = projection
        self._records = records
        self._rows = projection.transform(records) if rows is None else rows

    def tables(self) -> list[TableRows]:
        return [
            _Block(table, block)
            for table in self._projection.tables
            if (block := self._rows.get(table))
        ]

    def halves(self) -> list[Part]:
        if len(self._records) < 2:
            return [self]
        return [RecordsPart(self._projection, half) for half in cut(self._records, 2)]


class _EngineRows:
    """A table's rows the engine makes from the JSON lines: their number is known only once
    they are inserted."""

    rows: int | None = None

    def __init__(self, projection: str, insert: EngineInsert, batch: JsonBatch) -> None:
        self.table = insert.table
        self._projection = projection
        self._insert = insert
        self._batch = batch

    def insert(self, analytics: Analytics, dedup_token: str, marker: str) -> int:
        batch = self._batch
        rows = analytics.insert_json(
            self._insert, batch.lines, dedup_token=dedup_token, marker=marker
        )
        if rows < batch.records:
            # The Python transform logs each record it skips; the engine only counts.
            log.warning(
                "records of a span gave no row: malformed, or the span was written before",
                extra={
                    "projection": self._projection,
                    "table": self.table,
                    "first_offset": batch.span.first,
                    "last_offset": batch.span.last,
                    "records": batch.records,
                    "rows": rows,
                },
            )
        return rows


class LinesPart:
    """A span the log delivered as JSON lines, for the engine's transform."""

    def __init__(self, projection: EngineProjection, batch: JsonBatch) -> None:
        self.span = batch.span
        self._projection = projection
        self._batch = batch

    def tables(self) -> list[TableRows]:
        return [
            _EngineRows(self._projection.name, insert, self._batch)
            for insert in self._projection.engine_inserts(self._batch)
        ]

    def halves(self) -> list[Part]:
        return [LinesPart(self._projection, half) for half in split_lines(self._batch)]


_LINE = b'{"offset":'


def split_lines(batch: JsonBatch) -> list[JsonBatch]:
    """The batch's records in two batches of consecutive offsets (itself if it cannot be cut).

    Each line is an object that starts with its offset, and the lines are joined by a space
    (storage/log/sqlite.py): minified JSON has no space outside its strings, and a string
    cannot hold `{"` unescaped, so a space and `{"offset":` always start a line.
    """
    if batch.records < 2 or not batch.lines.startswith(_LINE):
        return [batch]
    first, *rest = batch.lines.split(b" " + _LINE)
    lines = [first, *(_LINE + line for line in rest)]
    try:
        keyed = sorted((int(line[len(_LINE) : line.index(b",")]), line) for line in lines)
    except ValueError:
        return [batch]
    return [
        JsonBatch(
            Span(batch.span.topic, batch.span.partition, half[0][0], half[-1][0]),
            len(half),
            batch.apps,
            b" ".join(line for _, line in half),
        )
        for half in cut(keyed, 2)
    ]
