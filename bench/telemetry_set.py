"""The benches' large telemetry data set: `events` events of 50 apps over 30 days, five
kinds, a dozen versions (and, if asked, a session id in each event's bits), written straight
into `telemetry_events` by chDB before the server starts; the bench developer owns three of
the apps. bench/query.py, bench/release_health.py and bench/portal_paint.py measure over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import hutch_cli
from projections.telemetry import TelemetryProjection

APPS = 50
OWNED = ["app-0", "app-1", "app-2"]


def fill(data: Path, events: int, *, sessions: int = 0) -> Any:
    """The chDB store of `data`, filled and merged; the caller closes it (after timing its
    queries on it, if it does)."""
    from storage.analytics.chdb import ChdbAnalytics

    analytics = ChdbAnalytics(data / "clickhouse")
    for statement in TelemetryProjection(lambda a: 30).ddl():
        analytics.execute(statement)
    # Closes the event's string, adds the session id, and reopens a string for `"n":`.
    session = f'","sessionId":"s\', toString(number % {sessions}), \'' if sessions else ""
    analytics.execute(
        f"""INSERT INTO telemetry_events
        SELECT concat('app-', toString(number % {APPS})),
               now64(6) - toIntervalMicrosecond(intDiv(number * 2592000000000, {events})),
               generateUUIDv7(number),
               (number % 5) + 1,
               concat('1.', toString(number % 12), '.0'),
               concat('{{"event":"screen_view{session}","n":', toString(number), '}}'),
               30
        FROM numbers({events})"""
    )
    analytics.execute("OPTIMIZE TABLE telemetry_events FINAL")
    return analytics


def bench_developer(env: dict[str, str]) -> str:
    """The developer `bench`, owner of OWNED; their full-access token."""
    hutch_cli(env, "developer", "create", "bench")
    for app in OWNED:
        hutch_cli(env, "app", "create", app, "--developer", "bench")
    token: str = hutch_cli(env, "token", "create", "--developer", "bench")["token"]
    return token
