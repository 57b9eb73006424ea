"""The builds projection without HTTP: download counting (debounce by event time, in log
order, the same on replay), and the app-info cache that a newer upload invalidates."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from query.app_info import CACHE_S, AppInfo
from schemas import build_events as e
from schemas.envelope import new_envelope
from schemas.events import EventType
from state import builds_reads as q
from state.builds import BuildsProjection, counts, utc_day
from state.relational import apply_batch
from storage.log import Record
from storage.objects.filesystem import FilesystemObjectStore
from storage.relational.sqlite import SQLiteRelational

pytestmark = pytest.mark.integration

SECOND = 1_000_000
T0 = 1_800_000_000 * SECOND  # 2027-01-15T08:00:00Z
PROJECTION = BuildsProjection()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteRelational]:
    store = SQLiteRelational(tmp_path / "hutch.db")
    store.migrate()
    yield store
    store.close()


class Log:
    """Records as the log would deliver them, numbered in order."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, type_: EventType, payload: object, at: int, key: str = "app") -> None:
        envelope = new_envelope(type_, e.encode(payload), key=key, received_at=at)
        self.records.append(Record("builds", 0, len(self.records), envelope))


def uploaded(build_id: str, version: str = "1.0.0", app: str = "app") -> e.BuildUploaded:
    return e.BuildUploaded(
        id=build_id,
        app=app,
        developer="dev",
        version=version,
        file_name=f"{app}-{version}.apk",
        object_key=f"apps/{app}/{version}/{app}-{version}.apk",
        os="android",
        architecture="universal",
        format="apk",
        size=3,
        sha256="0" * 64,
        content_type="application/vnd.android.package-archive",
    )


def downloads(db: SQLiteRelational) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in db.fetchall("SELECT id, downloads FROM app_builds")}


def daily(db: SQLiteRelational) -> list[tuple[str, str, int]]:
    rows = db.fetchall("SELECT build_id, day, downloads FROM app_build_downloads ORDER BY 1, 2")
    return [(str(b), str(d), int(n)) for b, d, n in rows]


def test_uploads_keep_the_etag_they_were_hashed_at(db: SQLiteRelational) -> None:
    """The object's ETag rides in the event (downloads check it); records from before it was
    added decode with none."""
    log = Log()
    log.add("build.uploaded.v1", dataclasses.replace(uploaded("b1"), etag='"e-1"'), T0)
    older = dataclasses.asdict(uploaded("b2", "1.0.1"))
    del older["etag"]
    log.add("build.uploaded.v1", older, T0 + SECOND)
    apply_batch(db, PROJECTION, log.records)
    etags = {v: q.build_named(db, "app", v, f"app-{v}.apk") for v in ("1.0.0", "1.0.1")}
    assert {v: b.etag for v, b in etags.items() if b is not None} == {
        "1.0.0": '"e-1"',
        "1.0.1": None,
    }


def test_debounce_rule() -> None:
    assert counts(None, T0)
    assert not counts(T0, T0 + 29 * SECOND)
    assert counts(T0, T0 + 30 * SECOND)
    assert not counts(T0, T0 - 10 * SECOND)  # stamped out of order by another ingest worker


def test_downloads_count_per_client_build_and_day(db: SQLiteRelational) -> None:
    log = Log()
    log.add("build.uploaded.v1", uploaded("b1"), T0)
    log.add("build.uploaded.v1", uploaded("b2", "2.0.0"), T0)
    phone = {"app": "app", "client": "phone"}
    for offset_s in (0, 5, 29.9, 30, 59, 61, 86_400):  # counted at 0, 30, 61 and the next day
        log.add(
            "build.downloaded.v1", e.BuildDownloaded("b1", **phone), T0 + int(offset_s * SECOND)
        )
    log.add("build.downloaded.v1", e.BuildDownloaded("b1", "app", "laptop"), T0 + SECOND)
    log.add("build.downloaded.v1", e.BuildDownloaded("b2", **phone), T0 + SECOND)  # other build
    log.add("build.downloaded.v1", e.BuildDownloaded("gone", **phone), T0)  # unknown: ignored
    apply_batch(db, PROJECTION, log.records)
    assert downloads(db) == {"b1": 5, "b2": 1}
    day0, day1 = utc_day(T0), utc_day(T0 + 86_400 * SECOND)
    assert daily(db) == [("b1", day0, 4), ("b1", day1, 1), ("b2", day0, 1)]


def test_replay_gives_the_same_counts(db: SQLiteRelational, tmp_path: Path) -> None:
    log = Log()
    log.add("build.uploaded.v1", uploaded("b1"), T0)
    for i in range(600):  # past a pruning point (every 512 records)
        client = f"c{i % 7}"
        log.add("build.downloaded.v1", e.BuildDownloaded("b1", "app", client), T0 + i * 7 * SECOND)
    for start in range(0, len(log.records), 100):  # applied in batches, as a projector would
        apply_batch(db, PROJECTION, log.records[start : start + 100])
    other = SQLiteRelational(tmp_path / "replayed.db")
    other.migrate()
    apply_batch(other, PROJECTION, log.records)  # one batch
    assert downloads(db) == downloads(other)
    assert daily(db) == daily(other)
    other.close()


def test_applying_a_record_twice_counts_it_once(db: SQLiteRelational) -> None:
    log = Log()
    log.add("build.uploaded.v1", uploaded("b1"), T0)
    log.add("build.downloaded.v1", e.BuildDownloaded("b1", "app", "x"), T0)
    apply_batch(db, PROJECTION, log.records)
    apply_batch(db, PROJECTION, log.records)
    assert downloads(db) == {"b1": 1}


def test_malformed_records_are_skipped(db: SQLiteRelational) -> None:
    log = Log()
    log.add("build.uploaded.v1", {"id": "broken"}, T0)
    log.records.append(
        Record("builds", 0, 1, new_envelope("build.downloaded.v1", b"{not json", key="app"))
    )
    log.add("build.uploaded.v1", uploaded("b1"), T0)
    assert apply_batch(db, PROJECTION, log.records) == 3
    assert downloads(db) == {"b1": 0}


class Ticks:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_app_info_is_cached_until_a_newer_upload(db: SQLiteRelational, tmp_path: Path) -> None:
    store_clock, cache_clock = Ticks(1_800_000_000.0), Ticks(0.0)
    store = FilesystemObjectStore(
        tmp_path / "objects", public_url="http://h", secret=b"k" * 32, clock=store_clock
    )
    info = AppInfo(db, store, "http://h", clock=cache_clock)
    log = Log()
    log.add("build.uploaded.v1", uploaded("b1", "1.0.0"), T0)
    apply_batch(db, PROJECTION, log.records)

    first = info._lookup("app")
    assert first is not None
    store_clock.now += 100  # a fresh answer would now sign a later expiry
    cache_clock.now += CACHE_S - 1
    assert info._lookup("app") == first  # served from the cache

    log.add("build.uploaded.v1", uploaded("b2", "1.0.1"), T0 + SECOND)
    apply_batch(db, PROJECTION, log.records)
    newer = info._lookup("app")
    assert newer is not None
    assert orjson.loads(newer[1])["version"] == "1.0.1"  # invalidated by the upload at once

    cache_clock.now += CACHE_S
    store_clock.now += 100
    expired = info._lookup("app")
    assert expired is not None
    assert expired != newer  # past five minutes: answered afresh
    assert orjson.loads(expired[1])["version"] == "1.0.1"
    assert info._lookup("nobody") is None
    asyncio.run(store.close())
