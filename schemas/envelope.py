"""The event envelope: what every write becomes before it is appended to the log.

`id` is a UUIDv7 in canonical text form. It orders roughly by time, and it is the idempotency
key: projections deduplicate on it, so a record read twice is applied once.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import NamedTuple

from schemas.events import EventType

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


class Envelope(NamedTuple):
    """Immutable. A NamedTuple rather than a frozen dataclass: projectors build hundreds of
    thousands a second, and a frozen dataclass's __init__ costs five times as much."""

    id: str
    type: EventType
    key: str
    """Partition key: the app or aggregate id, so one aggregate's events stay in order."""
    app: str | None
    received_at: int
    """Microseconds since the Unix epoch, UTC, stamped by ingest."""
    content_type: str
    payload: bytes


def now_micros() -> int:
    return time.time_ns() // 1000


def micros_to_datetime(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def datetime_to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_micros(micros: int) -> str:
    """ISO 8601 UTC with millisecond precision and a Z, as BuildHut's documents show."""
    return micros_to_datetime(micros).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _UUIDv7:
    """RFC 9562 UUIDv7 with a 12-bit counter in rand_a (method 1), monotonic per process."""

    _POOL_BYTES = 8192

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._pool = b""
        self._used = 0

    def _random(self, size: int) -> bytes:
        """Random bytes from the OS, fetched 8 KiB at a time: one getrandom() per ~800 ids
        rather than one per id (each releases the GIL, a costly hand-off on the hot path)."""
        if self._used + size > len(self._pool):
            self._pool = os.urandom(self._POOL_BYTES)
            self._used = 0
        chunk = self._pool[self._used : self._used + size]
        self._used += size
        return chunk

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                self._last_ms = ms
                self._counter = int.from_bytes(self._random(2)) & 0x3FF  # room to count
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # counter spent within one ms: borrow the next ms
                    self._last_ms += 1
                    self._counter = 0
                ms = self._last_ms
            counter = self._counter
            rand_b = int.from_bytes(self._random(8)) & 0x3FFF_FFFF_FFFF_FFFF
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


uuid7 = _UUIDv7()


def new_envelope(
    type: EventType,
    payload: bytes,
    *,
    key: str,
    app: str | None = None,
    content_type: str = JSON,
    received_at: int | None = None,
) -> Envelope:
    return Envelope(
        id=uuid7(),
        type=type,
        key=key,
        app=app,
        received_at=now_micros() if received_at is None else received_at,
        content_type=content_type,
        payload=payload,
    )
