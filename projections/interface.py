"""What a projection is. The runner (projections/runner.py) drives every one the same way.

An analytics projection is a pure transform from a batch of log records to column-oriented
rows per ClickHouse table. It never touches the sink: the runner writes the rows, with an
insert deduplication token per table and log range, then commits the offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from schemas.events import Topic
from storage.analytics.protocol import EngineInsert, RowBinary
from storage.log import Record
from storage.log.protocol import JsonBatch

Columns = dict[str, list[Any]]
"""Column name -> values, all lists of one length: one block for Analytics.insert."""

Rows = dict[str, Columns | RowBinary]
"""Table name -> its rows for this batch: columns, or rows the transform encoded itself.
Tables with no rows may be left out."""


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


class EngineProjection(AnalyticsProjection, Protocol):
    """A projection that can also run its transform in the analytics engine, over records
    the log delivers as JSON lines (storage.log.protocol.JsonBatch): no record becomes a
    Python object. The runner takes this path when the log offers it.

    For every record, the rows must equal `transform`'s, column for column (tested on the
    same records, valid and malformed, in tests/test_engine_transforms.py).
    """

    def engine_inserts(self, batch: JsonBatch) -> list[EngineInsert]:
        """One insert per table the batch has rows for."""


def json_lines_structure(payload: str) -> str:
    """The structure of a JsonBatch's lines, the payload read as `payload` (a ClickHouse
    type, usually a named Tuple of the fields the projection uses)."""
    return (
        "offset UInt64, id String, type String, app Nullable(String), received_at Int64, "
        f"payload {payload}"
    )


JSON_LINES_SETTINGS: dict[str, int | str] = {
    # A field must have its declared type or the line is dropped: no number, boolean or
    # array read as a string...
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    # ...but an object read into a String is its text exactly as stored (JSONExtractRaw
    # would rewrite numbers: 1e+20 as 100000000000000000000).
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_named_tuples_as_objects": 1,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 1,
    "input_format_skip_unknown_fields": 1,
    # A line that does not fit is skipped, as `transform` skips a malformed record.
    "input_format_allow_errors_ratio": 1,
}
