"""Ingest-to-query freshness under load, through `hutch serve`.

wrk keeps POST /api/telemetry busy (single events, `--connections` at once, as fast as the
server answers) while a probe sends a marked event every `--interval` seconds and polls
GET /api/telemetry until the event is listed: the time from the 202 to the first listing
is its freshness. Everything runs on this machine: ingest workers, the projectors, chDB, wrk.

    .venv/bin/python -m bench.freshness [--seconds 30] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    bench_app_secret,
    free_port,
    hutch_cli,
    hutch_serve,
    percentile,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        port = free_port()
        env = {
            "HUTCH_DATA": str(Path(tmp) / "data"),
            "HUTCH_BIND": f"127.0.0.1:{port}",
            "HUTCH_LOG_LEVEL": "WARNING",
        }

        secret = bench_app_secret(env)
        token = hutch_cli(env, "token", "create", "--developer", "bench")["token"]
        with hutch_serve(env, port, tmp):
            url = f"http://127.0.0.1:{port}"
            time.sleep(2)
            load: dict[str, float] = {}
            loader = threading.Thread(
                target=lambda: load.update(
                    wrk(
                        f"{url}/api/telemetry",
                        ROOT / "bench" / "post_event.lua",
                        seconds=args.seconds,
                        connections=args.connections,
                        env={"HUTCH_BENCH_SECRET": secret},
                    )
                )
            )
            loader.start()
            time.sleep(2)
            lags: list[float] = []
            with httpx.Client(base_url=url, timeout=30) as client:
                deadline = time.monotonic() + args.seconds - 4
                n = 0
                while time.monotonic() < deadline:
                    n += 1
                    marker = f"probe-{n}"
                    answer = client.post(
                        "/api/telemetry",
                        headers={"X-Secret": secret},
                        json={"kind": "trace", "version": marker, "bits": {}},
                    )
                    assert answer.status_code == 202
                    acked = time.perf_counter()
                    while True:
                        page = client.get(
                            "/api/telemetry",
                            params={"version": marker},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        if page.json()["events"]:
                            lags.append(time.perf_counter() - acked)
                            break
                        if time.perf_counter() - acked > 30:
                            raise SystemExit(f"{marker} not listed within 30 s")
                        time.sleep(0.005)
                    time.sleep(args.interval)
            loader.join()
    print(
        json.dumps(
            {
                "probes": len(lags),
                "freshness_p50_ms": round(percentile(lags, 50) * 1000, 1),
                "freshness_p99_ms": round(percentile(lags, 99) * 1000, 1),
                "background_rps": round(load.get("rps", 0)),
                "background_non2xx": load.get("non2xx", 0),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
