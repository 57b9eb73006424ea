"""A tenant's job count (`total_count` of GET /api/tenants/{id}/jobs) is kept by the jobs
projection as it inserts jobs (schemas/relational/0008): the same as counting the rows,
whatever is applied twice, and again after a rebuild from the log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.envelope import Envelope
from state.command_context import JOBS
from state.jobs import reads as q
from state.relational import apply_batch, rebuild
from storage.log import Record
from storage.log.sqlite import SQLiteLog
from storage.relational.sqlite import SQLiteRelational
from tests.support.job_events import submitted

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteRelational]:
    store = SQLiteRelational(tmp_path / "hutch.db")
    store.migrate()
    yield store
    store.close()


def records(envelopes: list[Envelope]) -> list[Record]:
    return [Record("jobs", 0, offset, env) for offset, env in enumerate(envelopes)]


def count_rows(db: SQLiteRelational, tenant: str) -> int:
    row = db.fetchone("SELECT COUNT(*) FROM jobs WHERE tenant_id = :t", {"t": tenant})
    assert row is not None
    return int(row[0])


def test_the_count_follows_the_rows_and_ignores_a_record_applied_again(
    db: SQLiteRelational,
) -> None:
    made = [submitted(n, "t-a" if n % 3 else "t-b", "ann")[1] for n in range(1, 11)]
    apply_batch(db, JOBS, records(made))
    apply_batch(db, JOBS, records(made))  # delivered again: positions skip it
    # The same submission under a later offset (a retried append): the job exists already.
    again = Record("jobs", 0, len(made), made[0])
    apply_batch(db, JOBS, [again])
    assert q.tenant_job_count(db, "t-a") == count_rows(db, "t-a") == 7
    assert q.tenant_job_count(db, "t-b") == count_rows(db, "t-b") == 3
    assert q.tenant_job_count(db, "t-none") == 0


def test_a_rebuild_counts_again_from_nothing(db: SQLiteRelational, tmp_path: Path) -> None:
    async def run() -> int:
        log = SQLiteLog(tmp_path / "log.db")
        await log.start()
        try:
            await log.append("jobs", [submitted(n, "t-a", "ann")[1] for n in range(1, 6)])
            await rebuild(log, db, JOBS)
            return await rebuild(log, db, JOBS)
        finally:
            await log.close()

    assert asyncio.run(run()) == 5
    assert q.tenant_job_count(db, "t-a") == count_rows(db, "t-a") == 5
