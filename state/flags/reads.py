"""Reads of the flag tables (state/flags/projection.py writes them)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from schemas.envelope import iso_micros
from schemas.flags.definitions import FlagDefinition, JsonValue, flag_to_json, parse_flag
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row

ETAG_FORMAT = "f1"
"""Bumped when the JSON served for the same definitions changes, so cached copies expire."""


@dataclass(frozen=True, slots=True)
class StoredFlag:
    app: str
    definition: FlagDefinition
    created_at: int
    updated_at: int
    updated_by: str

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True, slots=True)
class FlagsVersion:
    """Where in the log the app's last flag change is: its partition and offset."""

    partition: int
    offset: int
    changed_at: int


def etag(version: FlagsVersion | None) -> str:
    """The opaque entity tag (unquoted) for an app's definitions at this version."""
    if version is None:
        return f"{ETAG_FORMAT}-none"
    return f"{ETAG_FORMAT}-{version.partition}-{version.offset}"


_FLAG = "SELECT app, definition, created_at, updated_at, updated_by FROM flags"


def _flag(row: Row) -> StoredFlag:
    # Definitions were validated by the command that appended them; parsing rebuilds them.
    return StoredFlag(
        app=str(row[0]),
        definition=parse_flag(orjson.loads(row[1])),
        created_at=int(row[2]),
        updated_at=int(row[3]),
        updated_by=str(row[4]),
    )


def flags_of(db: Relational | Transaction, app: str) -> list[StoredFlag]:
    rows = db.fetchall(f"{_FLAG} WHERE app = :a ORDER BY name", {"a": app})
    return [_flag(r) for r in rows]


def flag_named(db: Relational | Transaction, app: str, name: str) -> StoredFlag | None:
    row = db.fetchone(f"{_FLAG} WHERE app = :a AND name = :n", {"a": app, "n": name})
    return None if row is None else _flag(row)


def flag_count(db: Relational | Transaction, app: str) -> int:
    row = db.fetchone("SELECT COUNT(*) FROM flags WHERE app = :a", {"a": app})
    return 0 if row is None else int(row[0])


def version_of(db: Relational | Transaction, app: str) -> FlagsVersion | None:
    row = db.fetchone(
        "SELECT log_partition, log_offset, changed_at FROM flag_versions WHERE app = :a",
        {"a": app},
    )
    return None if row is None else FlagsVersion(int(row[0]), int(row[1]), int(row[2]))


def snapshot(db: Relational, app: str) -> tuple[FlagsVersion | None, list[StoredFlag]]:
    """The app's version and definitions, consistent with each other: the version is read
    before and after the definitions, and the read is repeated if a change landed between."""
    while True:
        before = version_of(db, app)
        flags = flags_of(db, app)
        if version_of(db, app) == before:
            return before, flags


def flag_json(stored: StoredFlag) -> dict[str, JsonValue]:
    """A stored flag as the developer API shows it: the definition beside its history."""
    return {
        "flag": flag_to_json(stored.definition),
        "createdAt": iso_micros(stored.created_at),
        "updatedAt": iso_micros(stored.updated_at),
        "updatedBy": stored.updated_by,
    }
