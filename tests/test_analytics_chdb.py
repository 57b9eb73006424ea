"""chDB passes the analytics conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.analytics import Analytics
from storage.analytics.chdb import ChdbAnalytics
from storage.errors import Unavailable
from tests.conformance.analytics import AnalyticsConformance, create, engine_insert, lines

pytestmark = pytest.mark.integration


class TestChdbAnalytics(AnalyticsConformance):
    @pytest.fixture
    def analytics(self, tmp_path: Path) -> Iterator[Analytics]:
        store = ChdbAnalytics(tmp_path / "clickhouse")
        yield store
        store.close()


def test_a_spool_file_that_cannot_be_written_is_retryable(tmp_path: Path) -> None:
    store = ChdbAnalytics(tmp_path / "clickhouse")
    try:
        create(store, "t")
        spool = tmp_path / "clickhouse" / "spool"
        spool.rmdir()
        spool.write_text("not a directory")  # as a full or broken disk would, writes fail
        with pytest.raises(Unavailable):
            store.insert_json(engine_insert("t"), lines({"i": 1, "app": "a", "doc": {}}))
        spool.unlink()
        spool.mkdir()
        assert store.insert_json(engine_insert("t"), lines({"i": 1, "app": "a", "doc": {}})) == 1
    finally:
        store.close()


def test_spool_files_left_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    ChdbAnalytics(tmp_path / "clickhouse").close()
    spool = tmp_path / "clickhouse" / "spool"
    (spool / "0123.spool").write_bytes(b'{"i": 1}')
    (spool / "4567.jsonl").write_bytes(b'{"i": 1}')  # named as versions before 2026-12 did
    ChdbAnalytics(tmp_path / "clickhouse").close()
    assert list(spool.iterdir()) == []
