"""Where single-event ingest spends its CPU: the bare endpoint, then each step towards
Hutch's durable POST /api/telemetry (bench/ingest_parts_app.py), under the same gunicorn
configuration and wrk load, alternately, in one run. Reports requests/s and server CPU µs
per request (the server's whole process tree, from /proc) for each, and each step's cost.

With --in-process, each step's ASGI app is called directly instead (bench/asgi_drive.py):
no HTTP, so the figures are smaller, but steadier, and each step's cost is what it adds.

    .venv/bin/python -m bench.ingest_parts [--seconds 8] [--connections 256] [--rounds 2]
    .venv/bin/python -m bench.ingest_parts --in-process [--requests 30000] [--rounds 3]
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    bench_app_secret,
    free_port,
    hutch_env,
    load_parser,
    load_server,
)

SCRIPT = ROOT / "bench" / "post_event.lua"
PARTS = ("bare", "shell", "handler", "suspended", "unsynced", "durable")


def run_part(part: str, workers: int, seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        env = {**hutch_env(Path(tmp), port, workers), "HUTCH_BENCH_PART": part}
        module = "bench.bare_app:app" if part == "bare" else "bench.ingest_parts_app:app"
        argv = [PYTHON, "-m", "gunicorn", "-c", "python:hutch.gunicorn_conf", module]
        return load_server(
            argv,
            env,
            port,
            SCRIPT,
            seconds=seconds,
            connections=connections,
            load_env={"HUTCH_BENCH_SECRET": bench_app_secret(env)},
        )


def drive_part(part: str, requests: int, concurrency: int) -> dict[str, float]:
    """The step's app called in-process (bench/asgi_drive.py) on a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        env = hutch_env(Path(tmp), port=0, workers=1)  # nothing listens: no port needed
        env["HUTCH_BENCH_SECRET"] = "" if part == "bare" else bench_app_secret(env)
        argv = [PYTHON, "-m", "bench.asgi_drive", part, "--requests", str(requests)]
        out = subprocess.run(
            [*argv, "--concurrency", str(concurrency)],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {"server_cpu_us_per_request": json.loads(out.splitlines()[-1])["cpu_us_per_request"]}


def main() -> None:
    parser = load_parser(__doc__, seconds=8, connections=256)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call each step's ASGI app directly (no HTTP server, no wrk): CPU per request only",
    )
    parser.add_argument("--requests", type=int, default=30_000, help="per step, with --in-process")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight, with --in-process"
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {part: [] for part in PARTS}
    for _ in range(args.rounds):
        for part in PARTS:
            if args.in_process:
                runs[part].append(drive_part(part, args.requests, args.concurrency))
            else:
                runs[part].append(run_part(part, args.workers, args.seconds, args.connections))
    cpu = {
        part: statistics.median(r["server_cpu_us_per_request"] for r in runs[part])
        for part in PARTS
    }
    report: dict[str, object] = {}
    if not args.in_process:
        rps = {part: statistics.median(r["rps"] for r in runs[part]) for part in PARTS}
        report["rps"] = {part: round(value) for part, value in rps.items()}
        report["ratio_to_bare"] = {part: round(rps[part] / rps["bare"], 3) for part in PARTS}
    report["cpu_us_per_request"] = {part: round(value, 1) for part, value in cpu.items()}
    report.update(
        {
            f"{before}->{after}_cpu_us": round(cpu[after] - cpu[before], 1)
            for before, after in itertools.pairwise(PARTS)
        }
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
