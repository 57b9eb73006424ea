"""What the Kafka log puts on the wire, and the boundary where aiokafka's errors end.

A record's key is the envelope's key (so one aggregate stays in one partition, in order), its
value the payload, its timestamp the producer's send time, and its headers the rest of
the envelope: `id`, `type`, `app` (absent when the envelope has none), `received_at` (8 bytes,
big-endian microseconds) and `content_type`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import ConsumerStoppedError, IllegalOperation, KafkaError

from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES, EventType
from storage.errors import Backpressure, Unavailable

log = logging.getLogger(__name__)

_EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPES)
RECORD_OVERHEAD = 256
"""Bytes a record takes beyond key, value and header values (framing, header names)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    size: int


def encode(envelope: Envelope) -> Outgoing:
    headers = [
        ("id", envelope.id.encode()),
        ("type", envelope.type.encode()),
        ("received_at", envelope.received_at.to_bytes(8, "big", signed=True)),
        ("content_type", envelope.content_type.encode()),
    ]
    if envelope.app is not None:
        headers.append(("app", envelope.app.encode()))
    key = envelope.key.encode()
    size = len(key) + len(envelope.payload) + sum(len(v) for _, v in headers) + RECORD_OVERHEAD
    return Outgoing(key, envelope.payload, headers, size)


def decode(message: Any) -> Envelope | None:
    """The envelope in a consumed record, or None (logged) if the record is not one of ours.

    A foreign or damaged record is skipped rather than stopping every consumer behind it;
    skipping is deterministic, so a replayed batch still has the same first and last offset.
    """
    try:
        headers = {name: bytes(value) for name, value in message.headers}
        type_ = headers["type"].decode()
        if type_ not in _EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        app = headers.get("app")
        return Envelope(
            id=headers["id"].decode(),
            type=_event_type(type_),
            key=bytes(message.key or b"").decode(),
            app=None if app is None else app.decode(),
            received_at=int.from_bytes(headers["received_at"], "big", signed=True),
            content_type=headers["content_type"].decode(),
            payload=bytes(message.value or b""),
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.error(
            "skipping a record that is not a Hutch envelope",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error": str(exc),
            },
        )
        return None


def _event_type(value: str) -> EventType:
    return value  # type: ignore[return-value]  # checked against EVENT_TYPES above


@contextlib.asynccontextmanager
async def kafka_call(what: str, timeout_s: float) -> AsyncIterator[None]:
    """Bound a call to Kafka in time and turn aiokafka's failures into Unavailable."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError:
        raise Unavailable(f"{what}: Kafka did not answer within {timeout_s:g}s") from None
    except (KafkaError, ConsumerStoppedError, IllegalOperation, OSError) as exc:
        raise Unavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


async def stop_client(client: Any, what: str, timeout_s: float, method: str = "stop") -> None:
    """Stop or close an aiokafka client that is being dropped, bounded in time. Its failures
    are logged, not raised; only the cancellation of the calling task goes through."""
    try:
        async with asyncio.timeout(timeout_s):
            await getattr(client, method)()
        return
    except (TimeoutError, KafkaError, OSError) as exc:
        log.warning("kafka client did not close cleanly", extra={"client": what, "error": str(exc)})
        return
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    # aiokafka 0.14's consumer stop cancels each in-flight fetch and awaits it: one cancelled
    # during its retry pause (the broker was away) re-raises CancelledError out of stop(),
    # before the consumer closed its connections. Close them, as stop() would have.
    log.warning("kafka client stopped half-way; closing its connections", extra={"client": what})
    connections = getattr(client, "_client", None)
    if connections is not None:
        await stop_client(connections, f"{what} connections", timeout_s, method="close")


class InFlight:
    """Records and bytes handed to the producer and not yet acknowledged (or failed).

    Reserved before sending and released as each record's delivery settles, not when the
    caller stops waiting: a record whose append timed out still sits in the producer, which
    retries it, so it still counts. When Kafka is down the bound fills up and further appends
    get Backpressure at once instead of queueing without limit.
    """

    def __init__(self, max_records: int, max_bytes: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0

    def reserve(self, records: int, size: int) -> None:
        # One oversized append is let through when nothing else is in flight, so a single
        # large record cannot be refused forever.
        busy = self.records > 0
        if self.records + records > self.max_records or (
            busy and self.bytes + size > self.max_bytes
        ):
            raise Backpressure(
                f"{self.records} records ({self.bytes} bytes) already in flight to Kafka"
            )
        self.records += records
        self.bytes += size

    def release(self, records: int, size: int) -> None:
        self.records -= records
        self.bytes -= size
