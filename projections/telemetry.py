"""Telemetry projection: `telemetry.event.v1` records -> the telemetry_events table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson

from projections.interface import JSON_LINES_SETTINGS, Rows, json_lines_structure
from schemas.clickhouse import load
from schemas.events import TELEMETRY_KINDS, Topic
from storage.analytics.protocol import EngineInsert
from storage.log import Record
from storage.log.protocol import JsonBatch

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
            event_bits = event["bits"]
            if kind not in TELEMETRY_KINDS or not isinstance(version, str):
                raise TypeError(f"not a telemetry event: kind {kind!r}")
            if not isinstance(event_bits, dict):
                raise TypeError("bits is not an object")
            bits_json = orjson.dumps(event_bits).decode()
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


COLUMNS = ("app", "received_at", "id", "kind", "version", "bits", "retention_days")

# transform() in the engine, over the log's JSON lines. bits is the object's stored text:
# ingest stores payloads as orjson writes them, so it equals orjson.dumps(bits).
ENGINE_SELECT = f"""
SELECT assumeNotNull(app), fromUnixTimestamp64Micro(received_at, 'UTC'), toUUID(id),
       assumeNotNull(payload.kind), assumeNotNull(payload.version), assumeNotNull(payload.bits),
       transform(assumeNotNull(app), {{apps:Array(String)}}, {{days:Array(UInt16)}}, 0::UInt16)
FROM {{input}}
WHERE type = 'telemetry.event.v1' AND app IS NOT NULL
  AND payload.kind IN {tuple(TELEMETRY_KINDS)!r}
  AND payload.version IS NOT NULL AND isValidUTF8(payload.version)
  AND startsWith(payload.bits, '{{') AND isValidUTF8(payload.bits)
"""
ENGINE_PAYLOAD = "Tuple(kind Nullable(String), version Nullable(String), bits Nullable(String))"


def engine_insert(batch: JsonBatch, retention_of: Callable[[str], int]) -> EngineInsert:
    """transform() as an insert the engine runs over `batch` (the same rows)."""
    return EngineInsert(
        table=TABLE,
        columns=COLUMNS,
        select=ENGINE_SELECT,
        structure=json_lines_structure(ENGINE_PAYLOAD),
        params={
            "apps": batch.apps,
            "days": [retention_of(app) for app in batch.apps],
        },
        settings=JSON_LINES_SETTINGS,
    )


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

    def engine_inserts(self, batch: JsonBatch) -> list[EngineInsert]:
        return [engine_insert(batch, self._retention_of)]
