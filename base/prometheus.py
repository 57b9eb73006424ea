"""Prometheus metrics: the counters and gauges every layer adds to. Under `hutch serve` every
process writes to one multiprocess directory (PROMETHEUS_MULTIPROC_DIR) and `GET /metrics`
(web/request_metrics.py) adds them up; alone, a process serves its own."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import Counter, Gauge

REQUESTS = Counter(
    "hutch_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
APPENDED = Counter("hutch_events_appended_total", "Events appended to the log", ["topic"])
REJECTED = Counter(
    "hutch_rejected_inputs_total", "Requests refused as bad input", ["route", "code"]
)
PROJECTED = Counter(
    "hutch_projector_records_total", "Log records applied by projectors", ["projection"]
)
LAG = Gauge(
    "hutch_projector_lag_records",
    "Records appended but not yet applied, per projection",
    ["projection"],
    multiprocess_mode="livemax",
)


class Tally:
    """Hot-path counting in plain integers, added to the Prometheus counters in one go.

    A Prometheus increment takes a lock (and, across gunicorn workers, writes to a shared
    memory map); at tens of thousands of requests a second that is a visible share of a
    worker's time. Requests add to a dict instead, and `flush` — every second, and before
    each scrape — moves the sums into the counters.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[Counter, tuple[str, ...]], int] = {}
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}

    def add(self, counter: Counter, labels: tuple[str, ...], amount: int = 1) -> None:
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0) + amount

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for key, amount in counts.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = key[0].labels(*key[1])
            child.inc(amount)


TALLY = Tally()
FLUSH_EVERY_S = 1.0


async def flush_forever() -> None:
    """Flush the tally every second, for as long as the process serves."""
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        TALLY.flush()


def appended(topic: str, count: int) -> None:
    TALLY.add(APPENDED, (topic,), count)
