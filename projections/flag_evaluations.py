"""Flag evaluations projection: `flag.evaluations.v1` records -> the flag_evaluations table.

One record is one `POST /v1/flags/eval` request; each of its reports becomes a row, numbered
by its place in the request (EventIndex). The app version is the context's `appVersion`, else
its `version` (the field telemetry events use), else empty. Definitions share the topic and
are skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from projections.interface import Rows
from projections.telemetry import clickhouse_micros
from schemas.clickhouse import load
from schemas.events import Topic
from schemas.flags.definitions import number_text
from schemas.flags.events import decode
from storage.log import Record

log = logging.getLogger(__name__)

TABLE = "flag_evaluations"
VERSION_KEYS = ("appVersion", "version")


def context_text(value: object) -> str:
    """A context value as text, as evaluation compares it (true -> "true", 12.0 -> "12")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and math.isfinite(value):
        return number_text(value)
    return str(value)


def _rows_of(payload: dict[str, Any]) -> list[tuple[str, bool, str, str, bool, dict[str, str]]]:
    """(flag, enabled, variant, app version, known, context) per report; raises on a bad one,
    so a malformed record is skipped whole rather than half-projected."""
    unknown = set(payload.get("unknown") or ())
    rows = []
    for item in payload["evaluations"]:
        name, enabled = item["flagName"], item["enabled"]
        if not isinstance(name, str) or not isinstance(enabled, bool):
            raise TypeError("flagName must be text and enabled a boolean")
        variant = item.get("variant") or ""
        context = {str(k): context_text(v) for k, v in (item.get("context") or {}).items()}
        version = next((context[k] for k in VERSION_KEYS if context.get(k)), "")
        rows.append((name, enabled, str(variant), version, name not in unknown, context))
    return rows


def transform(records: Sequence[Record], retention_of: Callable[[str], int]) -> Rows:
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "App",
            "FlagName",
            "Timestamp",
            "Enabled",
            "Variant",
            "AppVersion",
            "Known",
            "Context",
            "EventId",
            "EventIndex",
            "RetentionDays",
        )
    }
    for record in records:
        envelope = record.envelope
        if envelope.type != "flag.evaluations.v1" or envelope.app is None:
            continue
        try:
            rows = _rows_of(decode(envelope.payload))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error(
                "skipping malformed flag evaluations record",
                extra={"offset": record.offset, "error": str(exc)},
            )
            continue
        at = clickhouse_micros(envelope.received_at)
        retention = retention_of(envelope.app)
        for index, (name, enabled, variant, version, known, context) in enumerate(rows):
            columns["App"].append(envelope.app)
            columns["FlagName"].append(name)
            columns["Timestamp"].append(at)
            columns["Enabled"].append(enabled)
            columns["Variant"].append(variant)
            columns["AppVersion"].append(version)
            columns["Known"].append(known)
            columns["Context"].append(context)
            columns["EventId"].append(envelope.id)
            columns["EventIndex"].append(index)
            columns["RetentionDays"].append(retention)
    if not columns["App"]:
        return {}
    return {TABLE: columns}


class FlagEvaluationsProjection:
    name = "flag_evaluations"
    topics: tuple[Topic, ...] = ("flags",)
    tables: tuple[str, ...] = (TABLE,)

    def __init__(self, retention_of: Callable[[str], int]) -> None:
        self._retention_of = retention_of

    def ddl(self) -> list[str]:
        return [load(TABLE)]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records, self._retention_of)
