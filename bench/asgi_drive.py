"""One step of bench/ingest_parts.py driven in-process: the ASGI app called directly,
`--concurrency` requests at a time, with no server, socket or load generator beside it.
Prints the process's CPU µs per request (every thread: the log's writer and syncer too).

Without uvicorn and wrk sharing the two cores, the figure moves a few per cent from run to
run where the same step under wrk moves ±15%: it tells each step's cost, not the ratio.

    .venv/bin/python -m bench.asgi_drive PART [--requests 30000] [--concurrency 64]

PART is `bare` (bench/bare_app.py) or a part of bench/ingest_parts_app.py, which reads its
settings (a data directory with the bench app's secret) from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

BODY = b'{"kind":"info","version":"1.4.2","bits":{"event":"app_opened","screen":"home","ms":182}}'
"""The body of bench/post_event.lua."""
WARM_REQUESTS = 2000


def _scope(secret: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/telemetry",
        "raw_path": b"/api/telemetry",
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"x-secret", secret.encode()),
        ],
    }


async def _lifespan(app: App, event: str) -> None:
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events = iter([{"type": f"lifespan.{event}"}])

    async def receive() -> dict[str, Any]:
        try:
            return next(events)
        except StopIteration:
            await asyncio.Event().wait()  # the app waits for the next event: none comes
            raise

    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, sent.put)
    )
    message = await sent.get()
    task.cancel()
    if message["type"] != f"lifespan.{event}.complete":
        raise RuntimeError(f"lifespan {event} failed: {message}")


async def drive(app: App, secret: str, requests: int, concurrency: int) -> float:
    """CPU µs per request of `requests` POSTs, `concurrency` in flight at a time."""
    scope = _scope(secret)
    statuses: dict[int, int] = {}
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(reply: dict[str, Any]) -> None:
        if reply["type"] == "http.response.start":
            statuses[reply["status"]] = statuses.get(reply["status"], 0) + 1

    async def burst(count: int) -> None:
        for _ in range(count // concurrency):
            await asyncio.gather(*(app(dict(scope), receive, send) for _ in range(concurrency)))

    await _lifespan(app, "startup")
    await burst(WARM_REQUESTS)
    statuses.clear()
    started = time.process_time()
    await burst(requests)
    used = time.process_time() - started
    await _lifespan(app, "shutdown")
    if set(statuses) != {202}:
        raise RuntimeError(f"answers other than 202: {statuses}")
    return used / sum(statuses.values()) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part")
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.part == "bare":
        from bench.bare_app import app
    else:
        os.environ["HUTCH_BENCH_PART"] = args.part
        from bench.ingest_parts_app import app  # type: ignore[assignment]
    secret = os.environ.get("HUTCH_BENCH_SECRET", "")
    cpu = uvloop.run(drive(app, secret, args.requests, args.concurrency))  # type: ignore[arg-type]
    print(json.dumps({"part": args.part, "cpu_us_per_request": round(cpu, 1)}))


if __name__ == "__main__":
    main()
