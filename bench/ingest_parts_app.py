"""The steps between the bare endpoint and Hutch's durable ingest, one ASGI app each, so
bench/ingest_parts.py can tell where the CPU per request goes. HUTCH_BENCH_PART picks one:

- `shell`: the bare resource inside Hutch's Falcon app (middleware, error handlers, orjson
  media handlers);
- `handler`: Hutch's ingest app whose log acknowledges at once (auth, parsing, envelopes,
  metrics: everything but the log);
- `suspended`: the same, but each append waits for the event loop's next turn, as a durable
  one must (the cost of a request's coroutine being put aside and resumed);
- `unsynced`: Hutch's ingest app with the embedded SQLite log, its fsync left out (the
  insert, the commit and the log's threads, but not the disk);
- `durable`: Hutch's ingest app as served (the embedded SQLite log, fsync'd group commit).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import storage.log.sqlite
from base.jsonlogs import configure_logging
from base.settings import Settings
from bench.bare_app import Bare
from hutch.apps import ingest_app
from hutch.runtime import Runtime, tune_gc
from schemas.envelope import Envelope
from schemas.events import Topic
from storage.log.protocol import Position
from web.factory import new_app


async def _nothing() -> None:
    return None


async def _acknowledged_at_once(topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
    return []


async def _acknowledged_next_turn(topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
    acknowledged = asyncio.get_running_loop().create_future()
    acknowledged.get_loop().call_soon(acknowledged.set_result, [])
    return await acknowledged


def _not_synced(path: Path) -> None:
    return None


def _hutch(part: str) -> object:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    runtime = Runtime(settings)
    if part == "handler":
        runtime.log.append = _acknowledged_at_once  # type: ignore[method-assign]
    elif part == "suspended":
        runtime.log.append = _acknowledged_next_turn  # type: ignore[method-assign]
    elif part == "unsynced":
        storage.log.sqlite._fsync = _not_synced  # type: ignore[attr-defined]
    app = ingest_app(runtime)
    tune_gc()
    return app


PART = os.environ.get("HUTCH_BENCH_PART", "durable")
if PART == "shell":
    app: object = new_app([("/api/telemetry", Bare())], start=_nothing, stop=_nothing)
elif PART in ("handler", "suspended", "unsynced", "durable"):
    app = _hutch(PART)
else:
    raise SystemExit(
        f"HUTCH_BENCH_PART must be shell, handler, suspended, unsynced or durable, not {PART!r}"
    )
