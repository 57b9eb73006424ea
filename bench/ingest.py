"""Single-event POST /api/telemetry: Hutch ingest against the bare Falcon ceiling.

Both run under the same gunicorn configuration (hutch/gunicorn_conf.py: uvicorn workers,
HUTCH_WORKERS of them) and take the same wrk load, alternately, in one run. Hutch answers 202
only once the event is durable in the log (SQLite, synchronous=FULL, group commit), so the
ratio is the cost of durability, authentication and the envelope. Each side's CPU time per
request (user + system, the server's whole process tree, read from /proc) is reported too:
with every core busy it moves less from run to run than requests/s do.

    .venv/bin/python -m bench.ingest [--seconds 10] [--connections 64] [--rounds 2]
"""

from __future__ import annotations

import json
import statistics

from bench.common import (
    PYTHON,
    ROOT,
    free_port,
    load_hutch_ingest,
    load_parser,
    load_server,
)

SCRIPT = ROOT / "bench" / "post_event.lua"


def run_bare(workers: int, seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    env = {"HUTCH_BIND": f"127.0.0.1:{port}", "HUTCH_WORKERS": str(workers)}
    argv = [PYTHON, "-m", "gunicorn", "-c", "python:hutch.gunicorn_conf", "bench.bare_app:app"]
    return load_server(argv, env, port, SCRIPT, seconds=seconds, connections=connections)


def run_hutch(
    workers: int, seconds: int, connections: int, log_url: str | None
) -> dict[str, float]:
    return load_hutch_ingest(
        SCRIPT, workers=workers, seconds=seconds, connections=connections, log_url=log_url
    )


def main() -> None:
    parser = load_parser(__doc__, seconds=10, connections=64)
    parser.add_argument("--log", help="HUTCH_LOG for Hutch (default: the embedded SQLite log)")
    args = parser.parse_args()
    bare, hutch = [], []
    for _ in range(args.rounds):
        bare.append(run_bare(args.workers, args.seconds, args.connections))
        hutch.append(run_hutch(args.workers, args.seconds, args.connections, args.log))
    bare_rps = statistics.median(r["rps"] for r in bare)
    hutch_rps = statistics.median(r["rps"] for r in hutch)
    print(
        json.dumps(
            {
                "bare_rps": round(bare_rps),
                "hutch_rps": round(hutch_rps),
                "ratio": round(hutch_rps / bare_rps, 3),
                "bare_cpu_us_per_request": statistics.median(
                    r["server_cpu_us_per_request"] for r in bare
                ),
                "hutch_cpu_us_per_request": statistics.median(
                    r["server_cpu_us_per_request"] for r in hutch
                ),
                "hutch_p50_ms": statistics.median(r.get("p50_ms", 0) for r in hutch),
                "hutch_p99_ms": statistics.median(r.get("p99_ms", 0) for r in hutch),
                "hutch_non2xx": sum(r["non2xx"] for r in hutch),
                "bare_runs": bare,
                "hutch_runs": hutch,
                "log": args.log or "sqlite (embedded)",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
