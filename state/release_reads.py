"""Per-version build facts for release health (query/release_health.py): when each version
was first uploaded and how often its builds were downloaded (state/builds.py counts them)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.relational import Relational


@dataclass(frozen=True, slots=True)
class VersionBuilds:
    version: str
    first_uploaded_at: int
    """Epoch microseconds of the version's first upload."""
    downloads: int
    """Every counted download of the version's builds, all time."""
    downloads_in_range: int
    """Counted downloads on the UTC days from..to (inclusive)."""


def versions_of(db: Relational, app: str, from_day: str, to_day: str) -> list[VersionBuilds]:
    """Every version the app has a build of."""
    totals = db.fetchall(
        "SELECT version, MIN(uploaded_at), SUM(downloads) FROM app_builds WHERE app = :a "
        "GROUP BY version",
        {"a": app},
    )
    in_range = db.fetchall(
        "SELECT b.version, SUM(d.downloads) FROM app_build_downloads d "
        "JOIN app_builds b ON b.id = d.build_id "
        "WHERE b.app = :a AND d.day >= :f AND d.day <= :t GROUP BY b.version",
        {"a": app, "f": from_day, "t": to_day},
    )
    ranged = {str(v): int(n or 0) for v, n in in_range}
    return [
        VersionBuilds(str(v), int(first), int(n or 0), ranged.get(str(v), 0))
        for v, first, n in totals
    ]
