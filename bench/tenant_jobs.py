"""GET /api/tenants/{id}/jobs latency at a million jobs, through `hutch serve` (issue 15: p99
under 50 ms).

Seeding a million jobs through POST /api/jobs would take hours here, so the relational store
is filled the way the server's own projector fills it, only faster: `job.submitted.v1` events
are made in memory and applied in batches by the jobs projection's own code
(state/relational.py `apply_batch`, state/jobs/projection.py) through the store adapter.
`--jobs` go to the bench developer's tenant, `--other-jobs` to other tenants beside it. The
events are not in the log (the projection's position is reset afterwards), so the rows are
not rebuildable: they are a bench's.

Then sequential requests through the public port (ingest worker → Unix socket → query
process → store) cycle through the shapes a Builtiful client asks for: the first page
(limit 10), a full page (limit 100), pages deep in the listing by `starting_after` (jobs
about a third, two thirds and all the way down), and pages by `ending_before`. Each answer's
`total_count` is checked. The reference, same run, before the server starts: the first page's
SQL (page, tasks and count) run on the store directly in this process, and beside it the
`COUNT(*)` of the tenant's jobs that `total_count` cost before the count was kept.

    .venv/bin/python -m bench.tenant_jobs [--store sqlite|postgres] [--jobs 1000000]
                                           [--requests 400]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from base.settings import Settings
from bench.common import (
    free_port,
    hutch_cli,
    hutch_env,
    hutch_serve,
    percentile,
)
from bench.job_setup import relational_url, submitted
from hutch.wiring import open_relational
from schemas.envelope import uuid7
from state.command_context import JOBS
from state.jobs import reads as q
from state.relational import apply_batch
from storage.log import Record
from storage.relational import Relational

BATCH = 10_000


def seed(db: Relational, tenant: str, jobs: int, other_jobs: int) -> list[str]:
    """Apply the submissions (the bench tenant's interleaved with others'); the bench
    tenant's job uuids, oldest first."""
    others = [uuid7() for _ in range(9)]
    total = jobs + other_jobs
    mine: list[str] = []
    offset = 0
    number = 0
    while number < total:
        records = []
        for _ in range(min(BATCH, total - number)):
            number += 1
            # Spread the other tenants' jobs evenly between the bench tenant's.
            theirs = other_jobs and number % (total // other_jobs + 1) == 0
            owner_tenant = others[number % len(others)] if theirs else tenant
            envelope = submitted(number, owner_tenant, "bench" if not theirs else "other")
            if not theirs:
                mine.append(envelope.key)
            records.append(Record("jobs", 0, offset, envelope))
            offset += 1
        apply_batch(db, JOBS, records)
    with db.transaction() as tx:
        # Nothing of this is in the log: the projector starts on the (empty) topic afresh.
        tx.execute("DELETE FROM projection_positions WHERE projection = :p", {"p": JOBS.name})
    return mine


def direct(db: Relational, tenant: str, rounds: int = 100) -> list[float]:
    """Seconds for the first page's reads on the store itself: the page, its tasks, the
    count."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        page = q.jobs_of_tenant(db, tenant, None, None, 10)
        for job in page:
            q.tasks_of(db, job.uuid)
        q.tenant_job_count(db, tenant)
        times.append(time.perf_counter() - started)
    return times


def count_star(db: Relational, tenant: str, rounds: int = 5) -> list[float]:
    """Seconds for the COUNT(*) of the tenant's jobs (what total_count cost before
    tenant_job_counts kept it)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        db.fetchone("SELECT COUNT(*) FROM jobs WHERE tenant_id = :t", {"t": tenant})
        times.append(time.perf_counter() - started)
    return times


def shapes(uuids: list[str]) -> list[tuple[str, dict[str, str]]]:
    n = len(uuids)
    deep = [uuids[n // 3], uuids[2 * n // 3], uuids[min(n - 1, 101)]]
    return [
        ("first", {}),
        ("first_100", {"limit": "100"}),
        *[("starting_after", {"starting_after": u, "limit": "25"}) for u in deep],
        *[("ending_before", {"ending_before": u, "limit": "25"}) for u in deep],
    ]


def measure(client: httpx.Client, path: str, uuids: list[str], count: int) -> dict[str, Any]:
    asked = shapes(uuids)
    times: dict[str, list[float]] = {name: [] for name, _ in asked}
    for i in range(count):
        name, params = asked[i % len(asked)]
        started = time.perf_counter()
        answer = client.get(path, params=params)
        times[name].append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total_count"] == len(uuids), body["total_count"]
        assert body["jobs"], f"an empty page for {params}"
    every = [t for shape in times.values() for t in shape]
    return {
        "requests": len(every),
        "http_p50_ms": round(percentile(every, 50) * 1000, 1),
        "http_p99_ms": round(percentile(every, 99) * 1000, 1),
        "by_shape_p99_ms": {
            name: round(percentile(shape, 99) * 1000, 1) for name, shape in times.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="in the bench tenant")
    parser.add_argument("--other-jobs", type=int, default=100_000, help="in 9 other tenants")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        with relational_url(args.store, tmp) as db_url:
            env = {**hutch_env(tmp, port, 2), "HUTCH_DB": db_url}
            tenant = str(hutch_cli(env, "developer", "create", "bench")["tenant"])
            args_token = ["token", "create", "--developer", "bench", "--scopes", "jobs:read"]
            token = str(hutch_cli(env, *args_token)["token"])
            db = open_relational(Settings.from_env(env))
            started = time.perf_counter()
            uuids = seed(db, tenant, args.jobs, args.other_jobs)
            seed_s = time.perf_counter() - started
            engine = direct(db, tenant)
            counting = count_star(db, tenant)
            db.close()
            with (
                hutch_serve(env, port, tmp),
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                ) as client,
            ):
                path = f"/api/tenants/{tenant}/jobs"
                measure(client, path, uuids, 40)  # warm-up
                report = measure(client, path, uuids, args.requests)
    report = {
        "store": args.store,
        "jobs": args.jobs,
        "other_jobs": args.other_jobs,
        "seed_s": round(seed_s, 1),
        **report,
        "direct_first_page_p50_ms": round(percentile(engine, 50) * 1000, 2),
        "direct_first_page_p99_ms": round(percentile(engine, 99) * 1000, 2),
        "direct_count_star_p50_ms": round(percentile(counting, 50) * 1000, 1),
        "target_p99_ms": 50,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
