"""What the three OTLP projections share: value conversions as the Collector's ClickHouse
exporter writes them, and ClickHouse-ready time values.

Attribute values become strings by pdata's Value.AsString(): strings as they are, booleans
as true/false, integers in decimal, doubles as Go's encoding/json prints them, bytes as
base64, arrays and maps as compact JSON with sorted keys. Attribute maps are sorted by key,
so equal attribute sets are equal maps (the metrics tables order by Attributes).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from schemas.otlp.decoding import Undecodable, UnsupportedBody
from schemas.otlp.rules import Signal
from storage.log import Record

log = logging.getLogger(__name__)

INT64_MAX = (1 << 63) - 1
UINT32_MAX = (1 << 32) - 1

_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def datetime64_9(nanos: int) -> str:
    """A DateTime64(9) value as ClickHouse's JSON input reads it: seconds.nanoseconds.

    The seconds are zero-padded to ten digits (ClickHouse misreads a short integer part as
    a date), and the value is clamped to what DateTime64(9) holds.
    """
    nanos = datetime64_9_nanos(nanos)
    return f"{nanos // 1_000_000_000:010d}.{nanos % 1_000_000_000:09d}"


def datetime64_9_nanos(nanos: int) -> int:
    """Nanoseconds clamped to what DateTime64(9) holds."""
    return min(max(nanos, 0), INT64_MAX)


def datetime_seconds(nanos: int) -> int:
    """A DateTime value (whole seconds, as toDateTime() truncates), clamped to its range."""
    return min(max(nanos, 0) // 1_000_000_000, UINT32_MAX)


def float64(value: float) -> float | str:
    """A Float64 for JSON input: NaN and infinities as the strings ClickHouse reads."""
    if math.isfinite(value):
        return value
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


def hex_id(raw: bytes, size: int) -> str:
    """A trace (16) or span (8) id as the exporter writes it: hex, or empty when unset.

    An id of another length (which the rules let through only where an id is optional,
    such as a parent span id) is written as unset too.
    """
    return raw.hex() if len(raw) == size and raw.strip(b"\x00") else ""


def padded_hex_id(raw: bytes, size: int) -> str:
    """An exemplar id as the exporter writes it: always `size` bytes of hex (zeros if unset)."""
    return raw.hex() if len(raw) == size else "00" * size


def attributes(key_values: Sequence[Any]) -> dict[str, str]:
    """A KeyValue list as Map(String, String): values by AsString(), keys sorted."""
    flat = {kv.key: value_string(kv.value) for kv in key_values}
    return dict(sorted(flat.items())) if len(flat) > 1 else flat


def value_string(value: Any) -> str:
    """pdata's Value.AsString() for an AnyValue."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        number = value.double_value
        if not math.isfinite(number):
            go = "NaN" if number != number else ("+Inf" if number > 0 else "-Inf")
            return f"json: unsupported value: {go}"
        return go_float(number)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    try:
        return _go_json(raw_value(value))
    except ValueError:  # Go's json.Marshal fails on NaN or Inf, and AsString gives ""
        return ""


def raw_value(value: Any) -> Any:
    """pdata's Value.AsRaw(): plain Python values (kvlists as dicts, the last key wins)."""
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: raw_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [raw_value(item) for item in value.array_value.values]
    return None if kind is None else getattr(value, kind)


def go_float(number: float) -> str:
    """A finite double as Go's encoding/json writes it (like ES6 Number.toString)."""
    text = repr(number)
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # repr already has Go's shortest digits and 'e' layout; Go then drops the exponent's
        # leading zero: 1e-07 -> 1e-7.
        mantissa, _, exponent = text.partition("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    if "e" in text:
        text = format(Decimal(text), "f")
    return text.removesuffix(".0")


def _go_json(raw: Any) -> str:
    if isinstance(raw, str):
        return _go_string(raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError("unsupported value")
        return go_float(raw)
    if isinstance(raw, bytes):
        return _go_string(base64.b64encode(raw).decode("ascii"))
    if isinstance(raw, dict):
        items = ",".join(f"{_go_string(k)}:{_go_json(raw[k])}" for k in sorted(raw))
        return "{" + items + "}"
    if isinstance(raw, list):
        return "[" + ",".join(_go_json(item) for item in raw) + "]"
    return "null"


def _go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    for char, escape in _GO_JSON_ESCAPES.items():
        if char in encoded:
            encoded = encoded.replace(char, escape)
    return encoded


Row = TypeVar("Row")
Request = TypeVar("Request")


def decoded(
    records: Sequence[Record],
    signal: Signal,
    flatten: Callable[[Request, str], list[Row]],
    decode: Callable[[Signal, bytes, str], Request],
) -> list[Row]:
    """flatten(request, app) for each record, in order; a record that cannot be decoded or
    flattened is logged with its position and skipped, never raised.

    Ingest acknowledges only requests that schemas.otlp.decoding.decode_request reads, the
    decoder `decode` uses, so a skip means a record from before that check or a defect:
    tests/test_otlp_acknowledged.py holds every accepted request to its rows."""
    rows: list[Row] = []
    for record in records:
        envelope = record.envelope
        try:
            request = decode(signal, envelope.payload, envelope.content_type)
            rows.extend(flatten(request, envelope.app or ""))
        except (Undecodable, UnsupportedBody) as exc:
            _skip(record, str(exc))
        except Exception as exc:  # a poison record must not stop the projection
            log.exception("skipping OTLP record that cannot be flattened")
            _skip(record, repr(exc))
    return rows


def _skip(record: Record, error: str) -> None:
    log.error(
        "skipping undecodable OTLP record",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "event_id": record.envelope.id,
            "error": error,
        },
    )


def columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows (tuples in `names` order) as the column lists Analytics.insert takes."""
    if not rows:
        return {}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}
