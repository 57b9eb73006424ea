"""Telemetry projection: `telemetry.event.v1` records -> the telemetry_events table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson

from projections.base import Rows
from schemas.clickhouse import load
from schemas.events import TELEMETRY_KINDS, Topic
from storage.log import Record

log = logging.getLogger(__name__)

TABLE = "telemetry_events"


def clickhouse_micros(micros: int) -> str:
    """A DateTime64(6) value as ClickHouse's JSON input reads it: seconds (ten digits, or
    the engine refuses it) and a fraction. A bare integer would be read as seconds."""
    return f"{micros // 1_000_000:010d}.{micros % 1_000_000:06d}"


def transform(records: Sequence[Record], retention_of: Callable[[str], int]) -> Rows:
    apps: list[str] = []
    received: list[str] = []
    ids: list[str] = []
    kinds: list[str] = []
    versions: list[str] = []
    bits: list[str] = []
    retention: list[int] = []
    for record in records:
        envelope = record.envelope
        if envelope.type != "telemetry.event.v1" or envelope.app is None:
            continue
        try:
            event = orjson.loads(envelope.payload)
            kind, version = event["kind"], event["version"]
            bits_json = orjson.dumps(event["bits"]).decode()
            if kind not in TELEMETRY_KINDS or not isinstance(version, str):
                raise TypeError(f"not a telemetry event: kind {kind!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.error(
                "skipping malformed telemetry record",
                extra={"offset": record.offset, "error": str(exc)},
            )
            continue
        apps.append(envelope.app)
        received.append(clickhouse_micros(envelope.received_at))
        ids.append(envelope.id)
        kinds.append(kind)
        versions.append(version)
        bits.append(bits_json)
        retention.append(retention_of(envelope.app))
    if not ids:
        return {}
    return {
        TABLE: {
            "app": apps,
            "received_at": received,
            "id": ids,
            "kind": kinds,
            "version": versions,
            "bits": bits,
            "retention_days": retention,
        }
    }


class TelemetryProjection:
    name = "telemetry"
    topics: tuple[Topic, ...] = ("telemetry",)
    tables: tuple[str, ...] = (TABLE,)

    def __init__(self, retention_of: Callable[[str], int]) -> None:
        self._retention_of = retention_of

    def ddl(self) -> list[str]:
        return [load(TABLE)]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records, self._retention_of)
