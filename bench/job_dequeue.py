"""Provisioner dequeues per second through `hutch serve`, many provisioners at once (issue 15:
at least 500 dequeues/s with 16 concurrent provisioners on PostgreSQL, each job handed out
exactly once).

`--jobs` queued jobs are appended to the log before the server starts, as POST /api/jobs
appends them, and the server's relational projector has applied them all before the clock
starts. Then wrk (`bench/dequeue.lua`) keeps `--provisioners` connections polling
`GET /api/provisioner/dequeue` for `--seconds`, each as fast as it is answered:
`dequeues_per_s` is the jobs handed out over those seconds (there must be jobs left at the
end, or the figure is a floor: the output says so). Then this process hands out what is left
(16 at a time) and ends every job as its runner would (`POST /api/runner/jobs/{uuid}/status`,
success; `ends_per_s`). `duplicates` (a job handed out twice) and `missing` (a job never
handed out) must be 0; `cut_off_in_flight` counts the jobs leased to a request wrk dropped
when it stopped (at most one a connection; they are `running`, as a vanished host's are).

`server_cpu_us_per_dequeue` is the CPU the whole `hutch serve` tree spent (ingest workers,
query process, projectors) per job handed out: steadier than the rate on a busy machine.
The reference, same run: `empty_dequeues_per_s`, wrk's answers per second once the queue is
empty (`{"new_job": null}`: the route, its credential check and its lock turn, with nothing
to hand out), the floor of the path. The target is absolute, so there is no ratio.

    .venv/bin/python -m bench.job_dequeue [--store postgres|sqlite] [--jobs 5000]
                                           [--seconds 6] [--provisioners 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from base.settings import Settings
from bench.common import (
    ROOT,
    free_port,
    hutch_cli,
    hutch_env,
    hutch_serve,
    wrk,
    wrk_with_cpu,
)
from bench.job_setup import relational_url, submitted
from hutch.wiring import open_log

SCRIPT = ROOT / "bench" / "dequeue.lua"
PARAMS = {"available_vcpus": "4", "cpu_architecture": "Amd64", "host": "bench-host"}


async def append_jobs(settings: Settings, tenant: str, jobs: int) -> None:
    log = open_log(settings)
    await log.start()
    try:
        for start in range(1, jobs + 1, 1000):
            envelopes = [
                submitted(n, tenant, "bench") for n in range(start, min(start + 1000, jobs + 1))
            ]
            await log.append("jobs", envelopes)
    finally:
        await log.close()


def wait_applied(url: str, number: int, timeout_s: float = 300) -> None:
    """Until the query side reads job `number` (public): the projector has applied it."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=30) as client:
        while client.get(f"/api/jobs/{number}").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"job {number} not applied within {timeout_s} s")
            time.sleep(0.2)


def job_status(url: str, number: int) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        return str(client.get(f"/api/jobs/{number}").json()["status"])


Handed = tuple[int, str, str]
"""(job number, uuid, lease id)"""


async def drain_rest(url: str, token: str, concurrency: int) -> list[Handed]:
    """Dequeue until every client is told there is nothing left."""
    auth = {"Authorization": f"Bearer {token}"}
    got: list[Handed] = []

    async def provisioner(client: httpx.AsyncClient) -> None:
        while True:
            answer = await client.get("/api/provisioner/dequeue", params=PARAMS, headers=auth)
            answer.raise_for_status()
            job = answer.json()["new_job"]
            if job is None:
                return
            got.append((int(job["id"]), job["uuid"], job["lease_id"]))

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(provisioner(client) for _ in range(concurrency)))
    return got


async def end_all(url: str, token: str, handed: list[Handed], concurrency: int) -> float:
    """Report every job a success, `concurrency` at once; seconds taken."""
    auth = {"Authorization": f"Bearer {token}"}
    left = list(handed)
    failed: Counter[int] = Counter()

    async def runner(client: httpx.AsyncClient) -> None:
        while left:
            _, uuid, lease_id = left.pop()
            report = {"lease_id": lease_id, "status": "success"}
            answer = await client.post(f"/api/runner/jobs/{uuid}/status", json=report, headers=auth)
            if answer.status_code != 200:
                failed[answer.status_code] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(runner(client) for _ in range(concurrency)))
    if failed:
        raise SystemExit(f"ending the jobs failed: {dict(failed)}")
    return time.perf_counter() - started


def measure(
    server: int, url: str, token: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    wait_applied(url, args.jobs)
    out = tmp / "handed.txt"
    load = wrk_with_cpu(
        server,
        f"{url}/api/provisioner/dequeue",
        SCRIPT,
        seconds=args.seconds,
        connections=args.provisioners,
        env={"HUTCH_BENCH_TOKEN": token, "HUTCH_BENCH_OUT": str(out)},
    )
    by_wrk = [line.split() for line in out.read_text().splitlines() if line]
    handed: list[Handed] = [(int(n), u, lease) for n, u, lease in by_wrk]
    rest = asyncio.run(drain_rest(url, token, args.provisioners))
    empty = wrk(
        f"{url}/api/provisioner/dequeue",
        SCRIPT,
        seconds=min(args.seconds, 4),
        connections=args.provisioners,
        env={"HUTCH_BENCH_TOKEN": token, "HUTCH_BENCH_OUT": str(out)},
    )
    every = handed + rest
    ends_s = asyncio.run(end_all(url, token, every, args.provisioners))
    counts = Counter(number for number, _, _ in every)
    unseen = set(range(1, args.jobs + 1)) - set(counts)
    # wrk stops with a request in flight on each connection: a job leased then, whose answer
    # wrk dropped, is running (leased), not missing; a silent host's lease lapses so.
    cut_off = {n for n in unseen if job_status(url, n) == "running"}
    return {
        "jobs": args.jobs,
        "provisioners": args.provisioners,
        "seconds": args.seconds,
        "dequeues_per_s": round(len(handed) / args.seconds),
        "dequeue_p50_ms": load.get("p50_ms"),
        "dequeue_p99_ms": load.get("p99_ms"),
        "server_cpu_us_per_dequeue": round(
            load["server_cpu_us_per_request"] * load["requests"] / max(len(handed), 1)
        ),
        "non2xx": load["non2xx"],
        "left_for_the_drain": len(rest),
        "floor_only": not rest,
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "cut_off_in_flight": len(cut_off),
        "missing": len(unseen - cut_off),
        "ends_per_s": round(len(every) / ends_s),
        "empty_dequeues_per_s": round(empty["rps"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=6, help="of wrk's dequeues")
    parser.add_argument("--provisioners", type=int, default=16, help="connections at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn ingest workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        with relational_url(args.store, tmp) as db_url:
            # Leases outlast the run: a job handed out twice is then a duplicate, never a
            # lapsed lease requeued.
            env = {
                **hutch_env(tmp, port, args.workers),
                "HUTCH_DB": db_url,
                "HUTCH_JOB_LEASE": "3600",
            }
            tenant = str(hutch_cli(env, "developer", "create", "bench")["tenant"])
            token = str(hutch_cli(env, "provisioner", "create", "bench-hosts")["token"])
            asyncio.run(append_jobs(Settings.from_env(env), tenant, args.jobs))
            with hutch_serve(env, port, tmp) as server:
                try:
                    report = measure(server.pid, f"http://127.0.0.1:{port}", token, args, tmp)
                except BaseException:
                    tail = (tmp / "serve.log").read_text(errors="replace").splitlines()[-30:]
                    print("\n".join(["the server's log ends:", *tail]), file=sys.stderr)
                    raise
    report["store"] = args.store
    report["workers"] = args.workers
    report["target_dequeues_per_s"] = 500
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
