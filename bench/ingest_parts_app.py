"""The steps between the bare endpoint and Hutch's durable ingest, one ASGI app each, so
bench/ingest_parts.py can tell where the CPU per request goes. HUTCH_BENCH_PART picks one:

- `shell`: the bare resource inside Hutch's Falcon app (middleware, error handlers, orjson
  media handlers);
- `handler`: Hutch's ingest app whose log acknowledges at once (auth, parsing, envelopes,
  metrics: everything but the log);
- `durable`: Hutch's ingest app as served (the embedded SQLite log, fsync'd group commit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from bench.bare_app import Bare
from hutch.logs import configure_logging
from hutch.runtime import Runtime, tune_gc
from hutch.settings import Settings
from hutch.web import new_app
from ingest.app import create_app
from schemas.envelope import Envelope
from schemas.events import Topic
from storage.log.protocol import Position


async def _nothing() -> None:
    return None


async def _acknowledged_at_once(topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
    return []


def _hutch(acknowledge_at_once: bool) -> object:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    runtime = Runtime(settings)
    if acknowledge_at_once:
        runtime.log.append = _acknowledged_at_once  # type: ignore[method-assign]
    app = create_app(runtime)
    tune_gc()
    return app


PART = os.environ.get("HUTCH_BENCH_PART", "durable")
if PART == "shell":
    app: object = new_app([("/api/telemetry", Bare())], start=_nothing, stop=_nothing)
elif PART in ("handler", "durable"):
    app = _hutch(acknowledge_at_once=PART == "handler")
else:
    raise SystemExit(f"HUTCH_BENCH_PART must be shell, handler or durable, not {PART!r}")
