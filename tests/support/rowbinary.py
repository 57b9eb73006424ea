"""Read RowBinary rows back into the columns the Python transforms give; write test rows.

Values come back as the Python transform writes them for JSON input: strings as str,
DateTime64(9) as `seconds.nanoseconds` text, UInt64 as int, Map as dict (in encoded order),
Array as list: the few types the projections encode.
"""

from __future__ import annotations

from typing import Any

from projections.otel_common import datetime64_9
from projections.rowbinary import encode
from storage.analytics.protocol import RowBinary


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def take(self, size: int) -> bytes:
        raw = self.data[self.at : self.at + size]
        if len(raw) != size:
            raise ValueError("RowBinary ends inside a value")
        self.at += size
        return raw

    def fixed(self, size: int, signed: bool) -> int:
        return int.from_bytes(self.take(size), "little", signed=signed)

    def value(self, kind: str) -> Any:
        if kind == "String":
            return self.take(self.varint()).decode()
        if kind == "DateTime64(9)":
            return datetime64_9(self.fixed(8, signed=True))
        if kind == "UInt64":
            return self.fixed(8, signed=False)
        if kind.startswith("Array(") and kind.endswith(")"):
            inner = kind[len("Array(") : -1]
            return [self.value(inner) for _ in range(self.varint())]
        if kind == "Map(String, String)":
            pairs = [(self.value("String"), self.value("String")) for _ in range(self.varint())]
            return dict(pairs)
        raise ValueError(f"type {kind} is not read here")


def read_columns(block: RowBinary) -> dict[str, list[Any]]:
    """The block's rows as column lists."""
    reader = _Reader(block.data)
    values: dict[str, list[Any]] = {name: [] for name in block.columns}
    for _ in range(block.rows):
        for name, kind in zip(block.columns, block.types, strict=True):
            values[name].append(reader.value(kind))
    if reader.at != len(block.data):
        raise ValueError(f"{len(block.data) - reader.at} bytes left after {block.rows} rows")
    return values


def encode_rows(columns: dict[str, str], rows: list[tuple[Any, ...]]) -> RowBinary:
    """`rows` (values in `columns` order; columns maps name -> type) as a RowBinary block."""
    kinds = tuple(columns.values())
    return RowBinary(tuple(columns), kinds, encode(kinds, rows), len(rows))
