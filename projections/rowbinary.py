"""ClickHouse's RowBinary format written from Python values.

For the rare export requests the compiled otel_traces transform leaves to the Python one
(projections/otel_traces.py), whose rows must join the same RowBinary block, and for tests.
Types are the few the projections encode: String, UInt64, DateTime64(p) (an int of
ticks: nanoseconds for p = 9), Map(String, String) (a dict), Array(T) (a list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

Encoder = Callable[[bytearray, Any], None]


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _string(out: bytearray, value: str) -> None:
    raw = value.encode()
    _varint(out, len(raw))
    out += raw


def _int64(out: bytearray, value: int) -> None:
    out += value.to_bytes(8, "little", signed=True)


def _uint64(out: bytearray, value: int) -> None:
    out += value.to_bytes(8, "little")


def _map(out: bytearray, value: dict[str, str]) -> None:
    _varint(out, len(value))
    for key, item in value.items():
        _string(out, key)
        _string(out, item)


def encoder(kind: str) -> Encoder:
    """The function that writes one value of ClickHouse type `kind`."""
    if kind == "String":
        return _string
    if kind == "UInt64":
        return _uint64
    if kind.startswith("DateTime64("):
        return _int64
    if kind == "Map(String, String)":
        return _map
    if kind.startswith("Array(") and kind.endswith(")"):
        item = encoder(kind[len("Array(") : -1])

        def array(out: bytearray, values: Sequence[Any]) -> None:
            _varint(out, len(values))
            for value in values:
                item(out, value)

        return array
    raise ValueError(f"type {kind} is not written here")


def encode(types: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """The rows (values in `types` order) in RowBinary, one after another."""
    encoders = [encoder(kind) for kind in types]
    out = bytearray()
    for row in rows:
        for write, value in zip(encoders, row, strict=True):
            write(out, value)
    return bytes(out)
