"""chDB passes the analytics conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.analytics import Analytics
from storage.analytics.chdb import ChdbAnalytics
from tests.conformance.analytics import AnalyticsConformance


class TestChdbAnalytics(AnalyticsConformance):
    @pytest.fixture
    def analytics(self, tmp_path: Path) -> Iterator[Analytics]:
        store = ChdbAnalytics(tmp_path / "clickhouse")
        yield store
        store.close()
