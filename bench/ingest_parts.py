"""Where single-event ingest spends its CPU: the bare endpoint, then each step towards
Hutch's durable POST /api/telemetry (bench/ingest_parts_app.py), under the same gunicorn
configuration and wrk load, alternately, in one run. Reports requests/s and server CPU µs
per request (the server's whole process tree, from /proc) for each, and each step's cost.

    .venv/bin/python -m bench.ingest_parts [--seconds 8] [--connections 256] [--rounds 2]
"""

from __future__ import annotations

import itertools
import json
import statistics
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
PARTS = ("bare", "shell", "handler", "durable")


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


def main() -> None:
    parser = load_parser(__doc__, seconds=8, connections=256)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {part: [] for part in PARTS}
    for _ in range(args.rounds):
        for part in PARTS:
            runs[part].append(run_part(part, args.workers, args.seconds, args.connections))
    rps = {part: statistics.median(r["rps"] for r in runs[part]) for part in PARTS}
    cpu = {
        part: statistics.median(r["server_cpu_us_per_request"] for r in runs[part])
        for part in PARTS
    }
    steps = {
        f"{before}->{after}_cpu_us": round(cpu[after] - cpu[before], 1)
        for before, after in itertools.pairwise(PARTS)
    }
    print(
        json.dumps(
            {
                "rps": {part: round(value) for part, value in rps.items()},
                "ratio_to_bare": {part: round(rps[part] / rps["bare"], 3) for part in PARTS},
                "cpu_us_per_request": {part: round(value, 1) for part, value in cpu.items()},
                **steps,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
