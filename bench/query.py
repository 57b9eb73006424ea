"""GET /api/telemetry latency at 10 million stored events, through `hutch serve`.

The events (50 apps, 30 days, five kinds, a dozen versions) are written straight into the
telemetry table by chDB before the server starts; the developer owns three of the apps. Then
sequential requests of the kinds a portal makes — the newest page, one app, a kind filter, a
version filter, a time window, the next page by cursor — go through the public port (ingest
worker → Unix socket → query process → chDB). The ceiling is the same SQL run directly
on chDB in this process, before the server starts.

    .venv/bin/python -m bench.query [--events 10000000] [--requests 400]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import free_port, hutch_serve, percentile
from bench.telemetry_set import OWNED, bench_developer, fill
from query.telemetry import build_query


def load(data: Path, events: int) -> list[float]:
    """Fill the table; return the direct engine times (seconds) of representative queries."""
    analytics = fill(data, events)
    times = []
    for _ in range(100):
        sql, params = build_query(OWNED, [], None, None, None, None, 200)
        started = time.perf_counter()
        analytics.query(sql, params, settings={"read_in_order_use_virtual_row": 1})
        times.append(time.perf_counter() - started)
    analytics.close()
    return times


def requests_mix(client: httpx.Client, count: int) -> list[float]:
    cursor = None
    times = []
    shapes = [
        {},
        {"appName": "app-1"},
        {"kind": "error,warning"},
        {"version": "1.3.0"},
        {"since": "2026-11-01T00:00:00Z", "until": "2026-11-10T00:00:00Z"},
        {"limit": "1000"},
        "next",
    ]
    for i in range(count):
        shape = shapes[i % len(shapes)]
        params = (
            {"cursor": cursor} if shape == "next" and cursor else (shape if shape != "next" else {})
        )
        started = time.perf_counter()
        answer = client.get("/api/telemetry", params=params)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        cursor = answer.json()["next"] or cursor
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=420)
    args = parser.parse_args()
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {
            "HUTCH_DATA": str(data),
            "HUTCH_BIND": f"127.0.0.1:{port}",
            "HUTCH_LOG_LEVEL": "WARNING",
        }
        token = bench_developer(env)
        started = time.perf_counter()
        engine = load(data, args.events)
        load_s = time.perf_counter() - started
        with (
            hutch_serve(env, port, tmp),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as client,
        ):
            for _ in range(3):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(1)
            requests_mix(client, 40)  # warm-up
            times = requests_mix(client, args.requests)
    print(
        json.dumps(
            {
                "events": args.events,
                "load_s": round(load_s, 1),
                "requests": len(times),
                "http_p50_ms": round(percentile(times, 50) * 1000, 1),
                "http_p99_ms": round(percentile(times, 99) * 1000, 1),
                "engine_p50_ms": round(percentile(engine, 50) * 1000, 1),
                "engine_p99_ms": round(percentile(engine, 99) * 1000, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
