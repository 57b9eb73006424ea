"""Reads of the uploaded-build tables (state/builds.py writes them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from base.client_errors import ConflictError
from schemas.envelope import iso_micros
from storage.errors import Corrupted
from storage.errors import NotFound as MissingObject
from storage.objects import ObjectStore
from storage.relational import Relational, Transaction
from storage.relational.protocol import Row

log = logging.getLogger(__name__)

Reader = Relational | Transaction


@dataclass(frozen=True, slots=True)
class AppBuild:
    id: str
    app: str
    developer: str
    version: str
    file_name: str
    object_key: str
    os: str
    architecture: str
    format: str
    size: int
    sha256: str
    content_type: str
    uploaded_at: int
    downloads: int
    etag: str | None

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}/{self.format}"

    def summary(self) -> dict[str, Any]:
        """The JSON every build listing and upload answer shares."""
        return {
            "id": self.id,
            "app": self.app,
            "version": self.version,
            "fileName": self.file_name,
            "os": self.os,
            "architecture": self.architecture,
            "format": self.format,
            "size": self.size,
            "sha256": self.sha256,
            "s3Key": self.object_key,
            "uploadedAt": iso_micros(self.uploaded_at),
        }


@dataclass(frozen=True, slots=True)
class Icon:
    app: str
    object_key: str
    content_type: str


_BUILD = (
    "SELECT id, app, developer, version, file_name, object_key, os, architecture, format, "
    "size, sha256, content_type, uploaded_at, downloads, etag FROM app_builds"
)
_NEWEST = "ORDER BY uploaded_at DESC, id DESC"


def _build(row: Row) -> AppBuild:
    return AppBuild(
        id=str(row[0]),
        app=str(row[1]),
        developer=str(row[2]),
        version=str(row[3]),
        file_name=str(row[4]),
        object_key=str(row[5]),
        os=str(row[6]),
        architecture=str(row[7]),
        format=str(row[8]),
        size=int(row[9]),
        sha256=str(row[10]),
        content_type=str(row[11]),
        uploaded_at=int(row[12]),
        downloads=int(row[13]),
        etag=None if row[14] is None else str(row[14]),
    )


def build_for_key(db: Reader, object_key: str) -> AppBuild | None:
    row = db.fetchone(f"{_BUILD} WHERE object_key = :k", {"k": object_key})
    return None if row is None else _build(row)


def build_named(db: Reader, app: str, version: str, file_name: str) -> AppBuild | None:
    """The build of (app, version, file name), which identifies it whatever its key."""
    row = db.fetchone(
        f"{_BUILD} WHERE app = :a AND version = :v AND file_name = :f",
        {"a": app, "v": version, "f": file_name},
    )
    return None if row is None else _build(row)


def latest_build(db: Reader, app: str) -> AppBuild | None:
    """The app's most recently uploaded build, whatever its platform."""
    row = db.fetchone(f"{_BUILD} WHERE app = :a {_NEWEST} LIMIT 1", {"a": app})
    return None if row is None else _build(row)


def builds_of_version(db: Reader, app: str, version: str) -> list[AppBuild]:
    """Every file uploaded for one version of the app, newest first."""
    rows = db.fetchall(
        f"{_BUILD} WHERE app = :a AND version = :v {_NEWEST} LIMIT 200", {"a": app, "v": version}
    )
    return [_build(r) for r in rows]


def latest_build_id(db: Reader, app: str) -> str | None:
    """Cheap (index-only): what a cached answer for `app` is checked against."""
    row = db.fetchone(f"SELECT id FROM app_builds WHERE app = :a {_NEWEST} LIMIT 1", {"a": app})
    return None if row is None else str(row[0])


def newest_for_platform(db: Reader, app: str, os: str, fmt: str) -> list[AppBuild]:
    """The newest build of each architecture for one OS and format, newest first."""
    rows = db.fetchall(
        f"{_BUILD} WHERE app = :a AND os = :o AND format = :f {_NEWEST} LIMIT 200",
        {"a": app, "o": os, "f": fmt},
    )
    seen: set[str] = set()
    builds = []
    for build in map(_build, rows):
        if build.architecture not in seen:
            seen.add(build.architecture)
            builds.append(build)
    return builds


def platforms_of(db: Reader, app: str) -> list[str]:
    """Every os/architecture/format the app has a build for, sorted."""
    rows = db.fetchall(
        "SELECT DISTINCT os, architecture, format FROM app_builds WHERE app = :a", {"a": app}
    )
    return sorted(f"{r[0]}/{r[1]}/{r[2]}" for r in rows)


def builds_of(db: Reader, app: str, limit: int, offset: int) -> tuple[int, list[AppBuild]]:
    """(total, one page of the app's builds, newest first)."""
    total_row = db.fetchone("SELECT COUNT(*) FROM app_builds WHERE app = :a", {"a": app})
    rows = db.fetchall(
        f"{_BUILD} WHERE app = :a {_NEWEST} LIMIT :limit OFFSET :offset",
        {"a": app, "limit": limit, "offset": offset},
    )
    return (0 if total_row is None else int(total_row[0])), [_build(r) for r in rows]


def daily_downloads(
    db: Reader, build_ids: Sequence[str], since_day: str
) -> dict[str, list[tuple[str, int]]]:
    """Per build, (UTC day, downloads) for days on or after `since_day`, oldest first."""
    if not build_ids:
        return {}
    names = {f"b{i}": build_id for i, build_id in enumerate(build_ids)}
    rows = db.fetchall(
        "SELECT build_id, day, downloads FROM app_build_downloads "
        f"WHERE build_id IN ({', '.join(':' + n for n in names)}) AND day >= :since "
        "ORDER BY build_id, day",
        {**names, "since": since_day},
    )
    days: dict[str, list[tuple[str, int]]] = {build_id: [] for build_id in build_ids}
    for build_id, day, count in rows:
        days[str(build_id)].append((str(day), int(count)))
    return days


def icon_of(db: Reader, app: str) -> Icon | None:
    row = db.fetchone(
        "SELECT app, object_key, content_type FROM app_icons WHERE app = :a", {"a": app}
    )
    return None if row is None else Icon(str(row[0]), str(row[1]), str(row[2]))


async def check_stored(objects: ObjectStore, build: AppBuild) -> None:
    """409 unless the build's object still holds the bytes its record names."""
    try:
        await objects.verify(build.object_key, build.sha256, etag=build.etag)
    except (Corrupted, MissingObject):
        log.error(
            "a build's stored file does not match its record; not serving it",
            extra={"app": build.app, "build": build.id, "key": build.object_key},
        )
        raise ConflictError(
            f"the stored file of {build.app} {build.version} ({build.file_name}) is missing "
            "or no longer matches its recorded SHA-256; it is not served",
            code="build_corrupted",
        ) from None
