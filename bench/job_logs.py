"""Job log projector throughput: `job.log.v1` records from the SQLite log into chDB's
job_logs, lines per second (issue 15: at least 200k lines/s).

The log holds batches of `--lines-per-batch` lines, as a runner sends them (`POST
/api/runner/jobs/{uuid}/logs`), for 20 jobs of 5 tenants, with a status event between every
ten batches (the topic carries them; the projection skips them). The ceiling, measured in
the same run on the same rows: chDB inserting the transform's columns ready-made, in the
blocks the projector makes, without the log (no read, no transform, no offsets). The
projector run reads the log from the start with a fresh consumer group, transforms, inserts
with deduplication tokens and markers, and commits, until it has caught up.

Freshness, through `hutch serve` (issue 15: a line visible within 1 s p99 while the job
runs): a job is submitted (POST /api/jobs), dequeued and reported running by a provisioner,
as `hutch runner` does. While a second running job streams `--background-lines` lines a
second (batches of 500, as a busy build prints them), a probe POSTs one marked line to
`/api/runner/jobs/{uuid}/logs` every `--interval` seconds and polls
`GET /api/jobs/{id}/tasks/build/log?since=<its number>` every 5 ms until the line is there:
the time from the POST's answer to the first read showing it is the probe's freshness. There
is no ceiling; the background rate is reported beside it.

    .venv/bin/python -m bench.job_logs [--lines 1000000] [--lines-per-batch 1000] [--rounds 1]
                                        [--freshness-seconds 20] [--background-lines 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    free_port,
    hutch_cli,
    hutch_env,
    hutch_serve,
    percentile,
    run_until,
)
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


# --- freshness through `hutch serve` ----------------------------------------------------

MANIFEST = "image: debian/bookworm\ntasks:\n  - build: make\n"


def running_job(client: httpx.Client, developer: str, provisioner: str) -> dict[str, Any]:
    """Submit a job and take it as a runner does: dequeued, reported running."""
    dev = {"Authorization": f"Bearer {developer}"}
    prov = {"Authorization": f"Bearer {provisioner}"}
    submitted = client.post("/api/jobs", json={"manifest": MANIFEST}, headers=dev)
    assert submitted.status_code == 201, submitted.text
    params = {"available_vcpus": "4", "cpu_architecture": "Amd64", "host": "bench"}
    job = client.get("/api/provisioner/dequeue", params=params, headers=prov).json()["new_job"]
    if job is None or job["id"] != submitted.json()["id"]:
        raise SystemExit(f"dequeued {job} instead of the job submitted")
    report = {"lease_id": job["lease_id"], "status": "running"}
    answer = client.post(f"/api/runner/jobs/{job['uuid']}/status", json=report, headers=prov)
    answer.raise_for_status()
    return dict(job)


def stream(
    url: str, provisioner: str, job: dict[str, Any], rate: int, stop: threading.Event
) -> int:
    """Post batches of 500 lines at `rate` lines a second until `stop`; lines posted."""
    prov = {"Authorization": f"Bearer {provisioner}"}
    sent = 0
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30, headers=prov) as client:
        while not stop.is_set():
            lines = [
                {"task": "build", "line": f"[{sent + i:>8}] compiling src/module_{i % 97}.c ok"}
                for i in range(500)
            ]
            body = {"lease_id": job["lease_id"], "first": sent, "lines": lines}
            answer = client.post(f"/api/runner/jobs/{job['uuid']}/logs", json=body)
            assert answer.status_code == 200, answer.text
            sent += len(lines)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                stop.wait(ahead)
    return sent


def freshness(seconds: int, interval: float, background: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        env = {**hutch_env(tmp, port, 2), "HUTCH_JOB_LEASE": "3600"}
        hutch_cli(env, "developer", "create", "bench")
        scopes = ["--scopes", "jobs:read,jobs:write"]
        developer = hutch_cli(env, "token", "create", "--developer", "bench", *scopes)["token"]
        provisioner = hutch_cli(env, "provisioner", "create", "bench-host")["token"]
        with hutch_serve(env, port, tmp):
            url = f"http://127.0.0.1:{port}"
            lags: list[float] = []
            with httpx.Client(base_url=url, timeout=30) as client:
                probed = running_job(client, developer, provisioner)
                busy = running_job(client, developer, provisioner)
                stop = threading.Event()
                streamed: list[int] = []
                streamer = threading.Thread(
                    target=lambda: streamed.append(stream(url, provisioner, busy, background, stop))
                )
                streamer.start()
                time.sleep(2)
                prov = {"Authorization": f"Bearer {provisioner}"}
                dev = {"Authorization": f"Bearer {developer}"}
                logs = f"/api/runner/jobs/{probed['uuid']}/logs"
                read = f"/api/jobs/{probed['id']}/tasks/build/log"
                deadline = time.monotonic() + seconds
                n = 0
                started = time.monotonic()
                while time.monotonic() < deadline:
                    marker = f"probe {n}"
                    line = {"task": "build", "line": marker}
                    body = {"lease_id": probed["lease_id"], "first": n, "lines": [line]}
                    answer = client.post(logs, json=body, headers=prov)
                    assert answer.status_code == 200, answer.text
                    acked = time.perf_counter()
                    while True:
                        text = client.get(read, params={"since": str(n)}, headers=dev).text
                        if marker in text:
                            lags.append(time.perf_counter() - acked)
                            break
                        if time.perf_counter() - acked > 30:
                            raise SystemExit(f"{marker!r} not readable within 30 s")
                        time.sleep(0.005)
                    n += 1
                    time.sleep(interval)
                elapsed = time.monotonic() - started
                stop.set()
                streamer.join()
    return {
        "probes": len(lags),
        "freshness_p50_ms": round(percentile(lags, 50) * 1000, 1),
        "freshness_p99_ms": round(percentile(lags, 99) * 1000, 1),
        "freshness_max_ms": round(max(lags) * 1000, 1),
        "background_lines_per_s": round(sum(streamed) / (elapsed + 2)),
        "target_freshness_p99_ms": 1000,
    }


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
    parser.add_argument(
        "--freshness-seconds", type=int, default=20, help="of probes; 0: no freshness run"
    )
    parser.add_argument("--interval", type=float, default=0.2, help="between probes, seconds")
    parser.add_argument(
        "--background-lines", type=int, default=20_000, help="lines/s another job streams"
    )
    parser.add_argument("--skip-projector", action="store_true", help="only the freshness run")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_projector:
        report.update(projector_figures(args))
    if args.freshness_seconds:
        report["freshness"] = freshness(
            args.freshness_seconds, args.interval, args.background_lines
        )
    print(json.dumps(report, indent=1))


def projector_figures(args: argparse.Namespace) -> dict[str, Any]:
    rounds = [
        asyncio.run(measure(args.lines, args.lines_per_batch, args.batch))
        for _ in range(args.rounds)
    ]
    report: dict[str, Any] = {
        name: statistics.median(r[name] for r in rounds) for name in rounds[0]
    }
    report["rounds"] = [{k: v for k, v in r.items() if k.endswith("_per_s")} for r in rounds]
    report["target_lines_per_s"] = 200_000
    return report


if __name__ == "__main__":
    main()
