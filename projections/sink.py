"""Writing a span's rows into the analytics store exactly once, whatever the engine forgot.

Every row carries a marker naming the log records it came from: the insert's `log_comment`
(`telemetry:0:00000000000000001200-00000000000000001399`), which the table's MATERIALIZED
column `_log_span` stores in the same part as the rows. The rows themselves, not the engine's
insert-deduplication log, then say whether a write landed: that log may name a part that a
crash lost (it is written before the part is), and an insert with that part's token is
dropped as a duplicate of rows that are gone.

A part of a span is written plainly (one insert per table, with the deduplication token of
its range) when nothing of it can be in the store yet. When something may be there (the
first span the runner writes in a partition, which may be one a crashed writer began; or a
retry after a failure) it is written `checked`, table by table:
- the rows marked within its range are counted, by marker;
- all there (as many as the transform makes): nothing to write;
- none there: insert with the usual token, which still stops a copy still in flight from an
  earlier writer; if the rows are still missing afterwards, the engine dropped them as a
  duplicate of a block it no longer has, so insert again under a token never used;
- some there (a block split over several date partitions, of which a crash kept only some;
  or rows the engine makes itself, whose number is not known beforehand): delete the marked
  rows and insert again under a token never used.
Rows whose marker starts within the part but reaches past it were written by a coarser cut of
the same records (see below, or a writer that cut the span otherwise): they are deleted, and
the parts after this one, which never count them, write their own share again.

On a disk too full for a write (NoSpace) the runner cuts a part in halves (`Part.halves`) and
writes them as parts of their own: a smaller spool file and part may fit where the whole did
not. Halves lie within the part, so a check of the part finds whatever any cut of it wrote.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from schemas.events import TOPICS
from storage.analytics import Analytics
from storage.analytics.sql import quoted
from storage.log.protocol import Span

log = logging.getLogger(__name__)

COLUMN = "_log_span"
COLUMN_DDL = f"{COLUMN} LowCardinality(String) MATERIALIZED getSetting('log_comment')"
"""Hidden from `SELECT *`; rows written before the column existed read as ''."""
_DIGITS = 20  # a UInt64 offset, zero-padded so that markers sort as their offsets


DURABLE = "fsync_after_insert = 1, fsync_part_directory = 1"
"""An insert returns once its part is on disk (its files, then its directory): offsets are
committed after the insert, so a machine that loses power must not lose the part after the
commit. Measured: about 1% of insert throughput for the projectors' blocks."""


def table_statements(table: str) -> list[str]:
    """What a projection's table needs besides its DDL, also when it was made before: the
    marker column, and parts made durable by each insert."""
    return [
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {COLUMN_DDL}",
        f"ALTER TABLE {table} MODIFY SETTING {DURABLE}",
    ]


def marker(span: Span) -> str:
    return f"{_prefix(span)}{span.first:0{_DIGITS}d}-{span.last:0{_DIGITS}d}"


def _prefix(span: Span) -> str:
    return f"{span.topic}:{span.partition}:"


def marked_span(text: str) -> Span | None:
    """The span a marker names (None for anything else, such as rows from before markers)."""
    head, _, offsets = text.rpartition(":")
    name, _, partition = head.rpartition(":")
    first, _, last = offsets.partition("-")
    topic = next((t for t in TOPICS if t == name), None)
    if topic is None or not (partition.isdigit() and first.isdigit() and last.isdigit()):
        return None
    return Span(topic, int(partition), int(first), int(last))


def within(inner: Span, outer: Span) -> bool:
    return (
        inner.topic == outer.topic
        and inner.partition == outer.partition
        and outer.first <= inner.first
        and inner.last <= outer.last
    )


def dedup_token(projection: str, table: str, span: Span) -> str:
    """The insert deduplication token of one table's rows for one log span. The same span
    always gets the same token, whichever way its rows are written."""
    return f"{projection}:{table}:{span.topic}:{span.partition}:{span.first}-{span.last}"


class TableRows(Protocol):
    """One table's rows of a part, ready to insert."""

    table: str
    rows: int | None
    """How many, or None when the engine makes them (known only once inserted)."""

    def insert(self, analytics: Analytics, dedup_token: str, marker: str) -> int:
        """Insert them all as one block; the rows written."""


class Part(Protocol):
    """Consecutive records of one partition, and the rows they make."""

    span: Span

    def tables(self) -> list[TableRows]:
        """The rows per table; a table the records make no rows for may be left out."""

    def halves(self) -> list[Part]:
        """The records cut in two parts (the part itself if it holds one record)."""


def write(analytics: Analytics, projection: str, part: Part, *, checked: bool) -> int:
    """Insert a part's rows, each table's as one block; returns the rows written."""
    written = 0
    for rows in part.tables():
        token = dedup_token(projection, rows.table, part.span)
        if not checked:
            written += rows.insert(analytics, token, marker(part.span))
        else:
            written += _write_checked(analytics, projection, part.span, rows, token)
    return written


def _write_checked(
    analytics: Analytics, projection: str, span: Span, rows: TableRows, token: str
) -> int:
    found, beyond = _found(analytics, rows.table, span)
    if beyond:
        # Written by a coarser cut of the records (before the disk filled, or by a writer
        # that cut the span otherwise): the records past this part are still to be written
        # by the parts after it, which do not count these rows.
        _delete(analytics, rows.table, beyond, reason="written by a coarser cut")
    present = sum(found.values())
    if present and present == rows.rows:
        return 0
    if present:
        expected = "an unknown number" if rows.rows is None else rows.rows
        _delete(analytics, rows.table, list(found), reason=f"{present} of {expected} rows there")
        return rows.insert(analytics, _fresh(token), marker(span))
    written = rows.insert(analytics, token, marker(span))
    landed: int = sum(_found(analytics, rows.table, span)[0].values())
    if landed or rows.rows == 0:
        return written
    log.warning(
        "rows dropped as a duplicate of a block the store no longer has; writing them again",
        extra={"projection": projection, "table": rows.table, "span": marker(span)},
    )
    return rows.insert(analytics, _fresh(token), marker(span))


def _fresh(token: str) -> str:
    """A token no insert used before: the engine keeps the rows whatever it remembers."""
    return f"{token}:{uuid.uuid4().hex}"


def _found(analytics: Analytics, table: str, span: Span) -> tuple[dict[Span, int], list[Span]]:
    """The rows per marker for the markers that start within `span` (markers sort by their
    first offset): those within it, and those that reach past it."""
    result = analytics.query(
        f"SELECT {COLUMN}, count() FROM {table} "
        f"WHERE {COLUMN} >= {{low:String}} AND {COLUMN} <= {{high:String}} GROUP BY {COLUMN}",
        {
            "low": f"{_prefix(span)}{span.first:0{_DIGITS}d}",
            "high": f"{_prefix(span)}{span.last:0{_DIGITS}d}~",
        },
    )
    found: dict[Span, int] = {}
    beyond: list[Span] = []
    for text, count in result.rows:
        marked = marked_span(str(text))
        if marked is None:
            continue
        if within(marked, span):
            found[marked] = int(count)
        else:
            beyond.append(marked)
    return found, beyond


def _delete(analytics: Analytics, table: str, spans: Sequence[Span], *, reason: str) -> None:
    log.warning(
        "deleting rows of a partly written span before writing it again",
        extra={"table": table, "spans": [marker(s) for s in spans], "reason": reason},
    )
    markers = ", ".join(quoted(marker(s)) for s in spans)
    analytics.execute(f"DELETE FROM {table} WHERE {COLUMN} IN ({markers})")
