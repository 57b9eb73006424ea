"""The SQLite relational store passes the relational conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.relational.sqlite import SQLiteRelational
from tests.conformance.relational import RelationalConformance, StoreFactory

pytestmark = pytest.mark.integration


class TestSQLiteRelational(RelationalConformance):
    @pytest.fixture
    def new_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: SQLiteRelational(tmp_path / "hutch.db")
