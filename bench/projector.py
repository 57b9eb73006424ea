"""Projector throughput: telemetry events from the SQLite log into chDB, rows per second.

The ceiling, measured in the same run on the same rows: chDB inserting ready-made columns
(no log read, no transform). The projector run reads the log from the start with a fresh
consumer group, transforms and inserts with deduplication tokens, and commits, until it has
caught up.

    .venv/bin/python -m bench.projector [--events 1000000] [--batch 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from hutch.runtime import tune_gc_for_batches
from projections.runner import AnalyticsRunner, ensure_tables, group_name
from projections.telemetry import TABLE, TelemetryProjection
from schemas.envelope import new_envelope
from storage.analytics.chdb import ChdbAnalytics
from storage.log import EventLog, Record
from storage.log.sqlite import SQLiteLog

APPS = [f"app-{i}" for i in range(20)]
KINDS = ["error", "warning", "info", "trace", "debug"]


async def fill(log: EventLog, events: int) -> None:
    batch = 10_000
    for start in range(0, events, batch):
        envelopes = [
            new_envelope(
                "telemetry.event.v1",
                orjson.dumps(
                    {
                        "kind": KINDS[i % 5],
                        "version": f"1.{i % 7}.0",
                        "bits": {"event": "app_opened", "n": i},
                    }
                ),
                key=APPS[i % 20],
                app=APPS[i % 20],
            )
            for i in range(start, min(start + batch, events))
        ]
        await log.append("telemetry", envelopes)


async def read_everything(log: EventLog, events: int) -> list[Record]:
    records: list[Record] = []
    for partition in await log.partitions("telemetry"):
        offset = 0
        while True:
            got = await log.read("telemetry", partition, offset, 20_000)
            if not got:
                break
            records.extend(got)
            offset = got[-1].offset + 1
    return records[:events]


async def measure(events: int, batch: int, log_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        if log_url:
            from storage.log.kafka import KafkaLog

            prefix = f"bench{uuid.uuid4().hex[:8]}."
            separator = "&" if "?" in log_url else "?"
            log: EventLog = KafkaLog.from_url(
                f"{log_url}{separator}prefix={prefix}", append_timeout_s=120
            )
        else:
            log = SQLiteLog(Path(tmp) / "log.db", append_timeout_s=120)
        await log.start()
        await fill(log, events)
        analytics = ChdbAnalytics(Path(tmp) / "clickhouse")
        projection = TelemetryProjection(lambda app: 30)
        ensure_tables(analytics, projection)

        # Ceiling: the same rows, already transformed, inserted in blocks of `batch`.
        records = await read_everything(log, events)
        blocks = [
            projection.transform(records[i : i + batch])[TABLE] for i in range(0, events, batch)
        ]
        analytics.execute(f"CREATE TABLE ceiling AS {TABLE}")
        started = time.perf_counter()
        for block in blocks:
            analytics.insert("ceiling", block)
        ceiling_s = time.perf_counter() - started
        del blocks, records

        tune_gc_for_batches()  # as Runtime does when it runs projectors
        stop = asyncio.Event()
        consumer = log.consumer(group_name(projection), projection.topics)
        runner = AnalyticsRunner(projection, consumer, analytics, batch=batch, linger_s=0.0)
        started = time.perf_counter()
        task = asyncio.create_task(runner.run(stop))
        while int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0]) < events:
            await asyncio.sleep(0.02)
        projector_s = time.perf_counter() - started
        stop.set()
        await task
        analytics.close()
        await log.close()
    return {
        "events": events,
        "batch": batch,
        "projector_rows_per_s": round(events / projector_s),
        "ceiling_rows_per_s": round(events / ceiling_s),
        "ratio": round(ceiling_s / projector_s, 3),
        "log": log_url or "sqlite (embedded)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--log", help="a kafka:// URL to project from instead of SQLite")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.events, args.batch, args.log)), indent=1))


if __name__ == "__main__":
    main()
