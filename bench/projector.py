"""Projector throughput: telemetry events from the SQLite log into chDB, rows per second.

Ceilings, measured in the same run on the same rows, without the log (no read, no offsets):
chDB inserting ready-made columns (the Python transform's output), and chDB running the
projection's engine transform over ready-made JSON lines. The projector runs read the log
from the start with a fresh consumer group, transform, insert with deduplication tokens and
commit, until they have caught up: once as served (the engine path on the SQLite log), and
once keeping to the Python transform (`in_engine=False`), which is the path on Kafka.

    .venv/bin/python -m bench.projector [--events 1000000] [--batch 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from base.settings import OPTIONS
from bench.common import run_until
from hutch.runtime import tune_gc
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

        # Ceilings: the same rows, already transformed, inserted in blocks of `batch`; and,
        # where the log has JSON lines, the engine transform over lines already read.
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
        figures: dict[str, Any] = {"events": events, "batch": batch}
        if isinstance(log, SQLiteLog):
            engine_s = engine_ceiling(log, analytics, projection, events, batch)
            figures["engine_insert_only_rows_per_s"] = round(events / engine_s)

        tune_gc()  # as Runtime does when it runs projectors
        for name, in_engine in (("projector", True), ("python_path", False)):
            if name == "python_path" and not isinstance(log, SQLiteLog):
                continue  # on Kafka the projector is the Python path already
            analytics.execute(f"TRUNCATE TABLE {TABLE}")
            group = f"{group_name(projection)}.{name}"
            projector_s = await project(log, analytics, projection, group, batch, in_engine)
            figures[f"{name}_rows_per_s"] = round(events / projector_s)
        analytics.close()
        await log.close()
    figures["ceiling_rows_per_s"] = round(events / ceiling_s)
    figures["ratio"] = round(figures["projector_rows_per_s"] / figures["ceiling_rows_per_s"], 3)
    figures["log"] = log_url or "sqlite (embedded)"
    return figures


def engine_ceiling(
    log: SQLiteLog,
    analytics: ChdbAnalytics,
    projection: TelemetryProjection,
    events: int,
    batch: int,
) -> float:
    """Seconds for the engine transform to insert every record from JSON lines read before."""
    batches = [log.read_json_sync("telemetry", offset, batch) for offset in range(0, events, batch)]
    analytics.execute(f"CREATE TABLE engine_ceiling AS {TABLE}")
    started = time.perf_counter()
    for json_batch in batches:
        assert json_batch is not None
        (insert,) = projection.engine_inserts(json_batch)
        analytics.insert_json(insert._replace(table="engine_ceiling"), json_batch.lines)
    return time.perf_counter() - started


async def project(
    log: EventLog,
    analytics: ChdbAnalytics,
    projection: TelemetryProjection,
    group: str,
    batch: int,
    in_engine: bool,
) -> float:
    """Seconds for a runner with a fresh consumer group to put the whole log in the table."""
    events = sum([await log.end_offset("telemetry", p) for p in await log.partitions("telemetry")])
    consumer = log.consumer(group, projection.topics)
    runner = AnalyticsRunner(
        projection, consumer, analytics, batch=batch, linger_s=0.0, in_engine=in_engine
    )

    # Caught up when the group has committed everything: a commit follows its insert. The
    # SQLite log gives the lag without joining the group (a count() on chDB every few ms
    # would take the engine's CPU); a Kafka member would, so there the table is counted.
    watcher = log.consumer(group, projection.topics) if isinstance(log, SQLiteLog) else None

    async def caught_up() -> bool:
        if watcher is not None:
            return await watcher.lag() == 0
        return int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0]) >= events

    elapsed = await run_until(runner.run, caught_up, 0.05)
    rows = int(analytics.query(f"SELECT count() FROM {TABLE}").rows[0][0])
    if rows != events:
        raise RuntimeError(f"the projector wrote {rows} rows for {events} events")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--batch", type=int, default=int(OPTIONS["projector_batch"].default), help="as served"
    )
    parser.add_argument("--log", help="a kafka:// URL to project from instead of SQLite")
    parser.add_argument("--rounds", type=int, default=1, help="report each figure's median")
    args = parser.parse_args()
    rounds = [asyncio.run(measure(args.events, args.batch, args.log)) for _ in range(args.rounds)]
    report = {
        name: statistics.median(r[name] for r in rounds)
        if isinstance(value, int | float)
        else value
        for name, value in rounds[0].items()
    }
    report["rounds"] = [{k: v for k, v in r.items() if k.endswith("_per_s")} for r in rounds]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
