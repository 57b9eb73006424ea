"""Flags projection: `flag.defined.v1` / `flag.deleted.v1` -> the flags and flag_versions
tables. `flag.evaluations.v1` shares the topic and is skipped without being decoded."""

from __future__ import annotations

import logging

import orjson

from schemas.events import Topic
from schemas.flags.events import FlagDefined, FlagDeleted, decode
from storage.log import Record
from storage.relational import Transaction

log = logging.getLogger(__name__)


class FlagsProjection:
    name = "flags"
    topics: tuple[Topic, ...] = ("flags",)
    tables: tuple[str, ...] = ("flags", "flag_versions")

    def apply(self, tx: Transaction, record: Record) -> None:
        envelope = record.envelope
        if envelope.type not in ("flag.defined.v1", "flag.deleted.v1"):
            return
        try:
            payload = decode(envelope.payload)
            if envelope.type == "flag.defined.v1":
                defined(tx, FlagDefined(**payload), envelope.received_at)
            else:
                deleted(tx, FlagDeleted(**payload))
            app = str(payload["app"])
        except (ValueError, TypeError, KeyError) as exc:
            log.error(
                "skipping malformed flag record",
                extra={"offset": record.offset, "type": envelope.type, "error": str(exc)},
            )
            return
        changed(tx, app, record, envelope.received_at)


def defined(tx: Transaction, e: FlagDefined, at: int) -> None:
    name = e.flag["name"]
    if not isinstance(name, str):
        raise TypeError("the definition has no name")
    tx.execute(
        "INSERT INTO flags (app, name, definition, created_at, updated_at, updated_by) "
        "VALUES (:app, :name, :definition, :at, :at, :by) "
        "ON CONFLICT (app, name) DO UPDATE SET definition = excluded.definition, "
        "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        {
            "app": e.app,
            "name": name,
            "definition": orjson.dumps(e.flag).decode(),
            "at": at,
            "by": e.developer,
        },
    )


def deleted(tx: Transaction, e: FlagDeleted) -> None:
    tx.execute(
        "DELETE FROM flags WHERE app = :app AND name = :name", {"app": e.app, "name": e.name}
    )


def changed(tx: Transaction, app: str, record: Record, at: int) -> None:
    """Remember where the app's definitions last changed: GET /v1/flags's ETag."""
    tx.execute(
        "INSERT INTO flag_versions (app, log_partition, log_offset, changed_at) "
        "VALUES (:app, :partition, :offset, :at) "
        "ON CONFLICT (app) DO UPDATE SET log_partition = excluded.log_partition, "
        "log_offset = excluded.log_offset, changed_at = excluded.changed_at",
        {"app": app, "partition": record.partition, "offset": record.offset, "at": at},
    )
