"""Job log projector throughput: `job.log.v1` records from the SQLite log into chDB's
job_logs, lines per second (issue 15: at least 200k lines/s).

The log holds batches of `--lines-per-batch` lines, as a runner sends them (`POST
/api/runner/jobs/{uuid}/logs`), for 20 jobs of 5 tenants, with a status event between every
ten batches (the topic carries them; the projection skips them). The ceiling, measured in
the same run on the same rows: chDB inserting the transform's columns ready-made, in the
blocks the projector makes, without the log (no read, no transform, no offsets). The
projector run reads the log from the start with a fresh consumer group, transforms, inserts
with deduplication tokens and markers, and commits, until it has caught up.

    .venv/bin/python -m bench.job_logs [--lines 1000000] [--lines-per-batch 1000] [--rounds 1]

Not measured here: how soon a line shows in `GET /api/jobs/{id}/log` while the job runs
(that needs the runner API in front of the log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import run_until
from hutch.runtime import tune_gc
from projections.job_logs import BATCH_RECORDS, TABLE, JobLogsProjection
from projections.runner import AnalyticsRunner, ensure_tables, group_name
from schemas.envelope import Envelope, new_envelope, uuid7
from schemas.jobs.events import JobLeaseRenewed, encode
from storage.analytics.chdb import ChdbAnalytics
from storage.log import Record
from storage.log.sqlite import SQLiteLog

TENANTS = [uuid7() for _ in range(5)]
JOBS = [(n + 1, uuid7(), TENANTS[n % 5]) for n in range(20)]
TASKS = ["setup", "build", "test", "deploy"]


def batch_envelope(index: int, per_batch: int, seq: dict[str, int]) -> Envelope:
    number, uuid, tenant = JOBS[index % len(JOBS)]
    first = seq.get(uuid, 0)
    seq[uuid] = first + per_batch
    at = time.time_ns()
    task = TASKS[(index // len(JOBS)) % len(TASKS)]
    lines = [
        {
            "task": task,
            "line": f"[{first + i:>8}] compiling src/module_{i % 97}.c -O2 ok",
            "at": at + i,
        }
        for i in range(per_batch)
    ]
    payload = {
        "uuid": uuid,
        "number": number,
        "tenant_id": tenant,
        "lease_id": uuid,
        "first": first,
        "lines": lines,
    }
    return new_envelope("job.log.v1", orjson.dumps(payload), key=uuid)


async def fill(log: SQLiteLog, lines: int, per_batch: int) -> int:
    """Append the log batches (and a status event every ten); the records appended."""
    seq: dict[str, int] = {}
    records = 0
    batches = lines // per_batch
    for start in range(0, batches, 100):
        envelopes: list[Envelope] = []
        for index in range(start, min(start + 100, batches)):
            envelopes.append(batch_envelope(index, per_batch, seq))
            if index % 10 == 9:
                _, uuid, _ = JOBS[index % len(JOBS)]
                renewed = JobLeaseRenewed(uuid, uuid, time.time_ns() // 1000)
                envelopes.append(new_envelope("job.lease_renewed.v1", encode(renewed), key=uuid))
        await log.append("jobs", envelopes)
        records += len(envelopes)
    return records


async def read_everything(log: SQLiteLog) -> list[Record]:
    records: list[Record] = []
    for partition in await log.partitions("jobs"):
        offset = 0
        while got := await log.read("jobs", partition, offset, 1000):
            records.extend(got)
            offset = got[-1].offset + 1
    return records


async def measure(lines: int, per_batch: int, batch: int) -> dict[str, Any]:
    lines -= lines % per_batch
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        log = SQLiteLog(Path(tmp) / "log.db", append_timeout_s=120)
        await log.start()
        records = await fill(log, lines, per_batch)
        analytics = ChdbAnalytics(Path(tmp) / "clickhouse")
        projection = JobLogsProjection(30)
        ensure_tables(analytics, projection)

        # The ceiling: the same rows, transformed beforehand, inserted in the projector's
        # blocks (a poll of `batch` records, cut in two parts as the runner cuts it).
        everything = await read_everything(log)
        started = time.perf_counter()
        blocks = [
            projection.transform(everything[i : i + batch // 2])
            for i in range(0, len(everything), batch // 2)
        ]
        transform_s = time.perf_counter() - started
        analytics.execute(f"CREATE TABLE ceiling AS {TABLE}")
        started = time.perf_counter()
        for block in blocks:
            columns = block[TABLE]
            assert isinstance(columns, dict)  # the transform makes columns, not RowBinary
            analytics.insert("ceiling", columns)
        ceiling_s = time.perf_counter() - started
        del blocks, everything

        tune_gc()  # as Runtime does when it runs projectors
        projector_s = await project(log, analytics, projection, batch, lines)
        analytics.close()
        await log.close()
    projector = lines / projector_s
    ceiling = lines / ceiling_s
    return {
        "lines": lines,
        "lines_per_batch": per_batch,
        "records": records,
        "batch_records": batch,
        "transform_only_lines_per_s": round(lines / transform_s),
        "ceiling_lines_per_s": round(ceiling),
        "projector_lines_per_s": round(projector),
        "ratio": round(projector / ceiling, 3),
    }


async def project(
    log: SQLiteLog, analytics: ChdbAnalytics, projection: JobLogsProjection, batch: int, lines: int
) -> float:
    """Seconds for a runner with a fresh consumer group to put every line in the table."""
    group = f"{group_name(projection)}.bench"
    consumer = log.consumer(group, projection.topics)
    runner = AnalyticsRunner(projection, consumer, analytics, batch=batch, linger_s=0.0)
    # Caught up when the group has committed everything (a commit follows its insert); the
    # SQLite log gives the lag without joining the group.
    watcher = log.consumer(group, projection.topics)

    async def caught_up() -> bool:
        return await watcher.lag() == 0

    elapsed = await run_until(runner.run, caught_up, 0.05)
    rows = int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0])
    if rows != lines:
        raise RuntimeError(f"the projector wrote {rows} rows for {lines} lines")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--lines-per-batch", type=int, default=1000, help="lines per record")
    parser.add_argument(
        "--batch", type=int, default=BATCH_RECORDS, help="records per projector poll, as served"
    )
    parser.add_argument("--rounds", type=int, default=1, help="report each figure's median")
    args = parser.parse_args()
    rounds = [
        asyncio.run(measure(args.lines, args.lines_per_batch, args.batch))
        for _ in range(args.rounds)
    ]
    report: dict[str, Any] = {
        name: statistics.median(r[name] for r in rounds) for name in rounds[0]
    }
    report["rounds"] = [{k: v for k, v in r.items() if k.endswith("_per_s")} for r in rounds]
    report["target_lines_per_s"] = 200_000
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
