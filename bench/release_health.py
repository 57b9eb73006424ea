"""GET /api/apps/{app}/release-health latency over a large telemetry table, through
`hutch serve`.

The events (50 apps, 30 days, five kinds, a dozen versions, a session id in every event's
bits among 5,000 sessions an app) are written straight into the telemetry table by chDB
before the server starts; the developer owns three of the apps, so one app holds 1/50 of
the events. Then sequential requests of the shapes the portal makes (the default 14 days,
7 and 30 days, a few versions, an explicit window, another app) go through the public port
(ingest worker → Unix socket → query process → chDB). The reference is the endpoint's
SELECT run on chDB directly in this process, before the server starts.

    .venv/bin/python -m bench.release_health [--events 10000000] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import free_port, hutch_serve, percentile
from bench.telemetry_set import APPS, bench_developer, fill
from query.release_health import DAY, PER_VERSION


def load(data: Path, events: int) -> list[float]:
    """Fill the table; return the direct engine times (seconds) of the endpoint's SELECT."""
    analytics = fill(data, events, sessions=5000)
    until = int(time.time() * 1_000_000)
    bound = {
        "app": "app-0",
        "since": until - 14 * DAY,
        "until": until,
        "scan": until - 14 * DAY,
        "last7": until - 7 * DAY,
        "prev7": until - 14 * DAY,
    }
    times = []
    for _ in range(30):
        started = time.perf_counter()
        analytics.query(PER_VERSION, bound)
        times.append(time.perf_counter() - started)
    analytics.close()
    return times


def requests_mix(client: httpx.Client, count: int) -> list[float]:
    now = datetime.now(UTC)
    window = {
        "since": (now - timedelta(days=20)).isoformat(),
        "until": (now - timedelta(days=10)).isoformat(),
    }
    shapes: list[tuple[str, dict[str, str]]] = [
        ("app-0", {}),
        ("app-0", {"days": "7"}),
        ("app-0", {"days": "30"}),
        ("app-0", {"limit": "3"}),
        ("app-0", window),
        ("app-1", {}),
    ]
    times = []
    for i in range(count):
        app, params = shapes[i % len(shapes)]
        started = time.perf_counter()
        answer = client.get(f"/api/apps/{app}/release-health", params=params)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        assert answer.json()["versions"], answer.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
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
            hutch_serve(env, port, Path(tmp)),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as client,
        ):
            for _ in range(30):
                try:
                    if client.get("/api/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            requests_mix(client, 30)  # warm-up
            times = requests_mix(client, args.requests)
    print(
        json.dumps(
            {
                "events": args.events,
                "events_per_app": args.events // APPS,
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
