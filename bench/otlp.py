"""OTLP/HTTP protobuf spans per second: Hutch's ingest against the OpenTelemetry Collector,
and Hutch's otel_traces projector into chDB.

Ingest: the same wrk load (ExportTraceServiceRequests of 100 spans, prebuilt bytes posted by
bench/post_otlp.lua) against the Collector (OTLP receiver + nop exporter, built by
bench/collector/build.sh when Go is present) and against `hutch ingest` (gunicorn, uvicorn
workers, a fresh data directory, a real app secret), alternately, in one run. Hutch counts a
request only once it is durable in the log; spans/s = requests/s x spans per request.

Projector: N export requests appended to a fresh SQLite log, then the otel_traces runner
(poll, decode, flatten, insert with deduplication tokens, commit) until every span is in
chDB; and, as its ceiling, chDB inserting the same rows already flattened (RowBinary from
the compiled transform, or columns from the Python one when it was not built). Each
transform alone is timed too.

    .venv/bin/python -m bench.otlp [--seconds 10] [--connections 64] [--rounds 2]
                                    [--requests 2000] [--batch 500] [--skip-ingest]
                                    [--skip-projector]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.common import (
    ROOT,
    free_port,
    load_hutch_ingest,
    load_parser,
    process,
    run_until,
    wait_port,
    wrk,
)
from hutch.runtime import OTLP_BATCH_RECORDS

SCRIPT = ROOT / "bench" / "post_otlp.lua"
COLLECTOR = ROOT / "bench" / "out" / "otelcol-hutch-bench"
COLLECTOR_CONFIG = ROOT / "bench" / "collector" / "config.yaml"
BUILD = ROOT / "bench" / "collector" / "build.sh"


def export_request(spans: int, attributes: int, start_nanos: int, seed: int) -> bytes:
    """One ExportTraceServiceRequest as an instrumented HTTP service sends it: a resource,
    a scope, `spans` server spans of one trace with `attributes` attributes each."""
    export = ExportTraceServiceRequest()
    resource_spans = export.resource_spans.add()
    for key, value in (("service.name", "bench"), ("host.name", "bench-1")):
        resource_spans.resource.attributes.append(
            KeyValue(key=key, value=AnyValue(string_value=value))
        )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "bench"
    trace_id = seed.to_bytes(8, "big") + os.urandom(8)
    for n in range(spans):
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=os.urandom(8) if n else b"",
            name=f"GET /items/{n % 10}",
            kind=2,
            start_time_unix_nano=start_nanos + n * 1000,
            end_time_unix_nano=start_nanos + 100_000 + n * 1000,
        )
        # One attribute differs from span to span (as a URL with an id does), the rest
        # repeat (as routes, methods and status codes do).
        target = f"/items/{seed}/{n}"
        span.attributes.add(key="http.target", value=AnyValue(string_value=target))
        for a in range(attributes - 2):
            span.attributes.add(key=f"attr.{a}", value=AnyValue(string_value=f"value-{a}"))
        span.attributes.add(key="http.status_code", value=AnyValue(int_value=200))
    return export.SerializeToString()


# --- ingest -----------------------------------------------------------------------------------


def build_collector() -> str | None:
    """Build the Collector peer; None if it could not be (and why is printed)."""
    result = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True)
    if result.returncode == 3:
        print(result.stderr.strip())
        return None
    if result.returncode != 0:
        print(f"building the Collector failed:\n{result.stderr[-2000:]}")
        return None
    return str(COLLECTOR)


def run_collector(body: Path, seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    argv = [str(COLLECTOR), "--config", str(COLLECTOR_CONFIG)]
    with process(argv, {"PORT": str(port)}):
        wait_port(port)
        load = {"HUTCH_BENCH_BODY": str(body)}
        url = f"http://127.0.0.1:{port}/v1/traces"
        wrk(url, SCRIPT, seconds=2, connections=connections, env=load)
        return wrk(url, SCRIPT, seconds=seconds, connections=connections, env=load)


def run_hutch(
    body: Path, workers: int, seconds: int, connections: int, log_url: str | None = None
) -> dict[str, float]:
    return load_hutch_ingest(
        SCRIPT,
        workers=workers,
        seconds=seconds,
        connections=connections,
        log_url=log_url,
        load_env={"HUTCH_BENCH_BODY": str(body)},
        path="/v1/traces",
    )


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    collector = build_collector()
    if collector is None:
        print("the Collector peer is not available: measuring Hutch alone")
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        body = Path(tmp) / "traces.pb"
        body.write_bytes(export_request(args.spans, args.attributes, time.time_ns(), 1))
        peer: list[dict[str, float]] = []
        ours: list[dict[str, float]] = []
        for _ in range(args.rounds):
            if collector is not None:
                peer.append(run_collector(body, args.seconds, args.connections))
            ours.append(run_hutch(body, args.workers, args.seconds, args.connections, args.log))
    hutch_spans = statistics.median(r["rps"] for r in ours) * args.spans
    result: dict[str, Any] = {
        "spans_per_request": args.spans,
        "request_bytes": body_size(args),
        "hutch_spans_per_s": round(hutch_spans),
        "hutch_p50_ms": statistics.median(r.get("p50_ms", 0) for r in ours),
        "hutch_p99_ms": statistics.median(r.get("p99_ms", 0) for r in ours),
        "hutch_non2xx": sum(r["non2xx"] for r in ours),
        "hutch_runs": ours,
    }
    if peer:
        collector_spans = statistics.median(r["rps"] for r in peer) * args.spans
        result |= {
            "collector_spans_per_s": round(collector_spans),
            "ratio": round(hutch_spans / collector_spans, 3),
            "collector_non2xx": sum(r["non2xx"] for r in peer),
            "collector_runs": peer,
        }
    return result


def body_size(args: argparse.Namespace) -> int:
    return len(export_request(args.spans, args.attributes, 0, 1))


# --- projector --------------------------------------------------------------------------------


async def project(args: argparse.Namespace) -> dict[str, Any]:
    from projections.otel_traces import COMPILED, OtelTracesProjection
    from storage.analytics.chdb import ChdbAnalytics
    from storage.log.sqlite import SQLiteLog

    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        log = SQLiteLog(Path(tmp) / "log.db", append_timeout_s=120)
        await log.start()
        await _append_requests(log, args)
        analytics = ChdbAnalytics(Path(tmp) / "clickhouse")
        records = log.read_sync("otlp.traces", 0, args.requests)
        spans = args.requests * args.spans
        transform_s = {}
        for name, compiled in (("python", False), ("compiled", True)):
            if compiled and not COMPILED:
                continue
            transform = OtelTracesProjection(30, compiled=compiled).transform
            started = time.perf_counter()
            for i in range(0, len(records), args.batch):
                transform(records[i : i + args.batch])
            transform_s[name] = time.perf_counter() - started
        rounds = [
            await _project_round(log, analytics, records, args, n) for n in range(args.rounds)
        ]
        analytics.close()
        await log.close()
    projector = statistics.median(r["projector_s"] for r in rounds)
    ceiling = statistics.median(r["ceiling_s"] for r in rounds)
    return {
        "transform": "compiled" if COMPILED else "python (the compiled one was not built)",
        "requests": args.requests,
        "spans": spans,
        "batch_records": args.batch,
        "projector_spans_per_s": round(spans / projector),
        "rounds_spans_per_s": [round(spans / r["projector_s"]) for r in rounds],
        "transform_only_spans_per_s": {k: round(spans / v) for k, v in transform_s.items()},
        "insert_only_spans_per_s": round(spans / ceiling),
        "ratio_to_insert_only": round(ceiling / projector, 3),
        "rows_differing_from_insert_only": sum(r["differing"] for r in rounds),
    }


async def _append_requests(log: Any, args: argparse.Namespace) -> None:
    from schemas.envelope import PROTOBUF, new_envelope

    now = time.time_ns()
    for start in range(0, args.requests, 500):
        envelopes = [
            new_envelope(
                "otlp.traces.v1",
                export_request(args.spans, args.attributes, now + n * 10**6, n),
                key=f"app-{n % 4}",
                app=f"app-{n % 4}",
                content_type=PROTOBUF,
            )
            for n in range(start, min(start + 500, args.requests))
        ]
        await log.append("otlp.traces", envelopes)


async def _project_round(
    log: Any, analytics: Any, records: list[Any], args: argparse.Namespace, n: int
) -> dict[str, Any]:
    """Fresh tables; the ceiling (the engine inserting the rows ready-made, the parts of a
    batch at once as the runner inserts them, into copies of the tables), then the runner
    from the start of the log under a consumer group of its own."""
    from projections.otel_traces import TRACES, OtelTracesProjection
    from projections.runner import PARTS, AnalyticsRunner, ensure_tables, parts, write_rows

    projection = OtelTracesProjection(30)
    for table in projection.tables:
        for name in (table, f"ceiling_{table}"):
            analytics.execute(f"DROP TABLE IF EXISTS {name}")
    ensure_tables(analytics, projection)
    for table in projection.tables:
        analytics.execute(f"CREATE TABLE ceiling_{table} AS {table}")
    ceiling = _Renamed(projection)
    batches = [
        [(part, projection.transform(part)) for part in parts(records[i : i + args.batch])]
        for i in range(0, len(records), args.batch)
    ]

    def insert(part: list[Any], rows: dict[str, Any]) -> None:
        write_rows(analytics, ceiling, part, {f"ceiling_{t}": b for t, b in rows.items()})

    await _settle(analytics)
    started = time.perf_counter()
    with ThreadPoolExecutor(PARTS) as pool:
        for batch in batches:
            list(pool.map(lambda piece: insert(*piece), batch))
    ceiling_s = time.perf_counter() - started
    del batches

    consumer = log.consumer(f"bench.otel_traces.{n}", projection.topics)
    runner = AnalyticsRunner(projection, consumer, analytics, batch=args.batch, linger_s=0.0)
    spans = len(records) * args.spans

    async def caught_up() -> bool:
        return int(analytics.query(f"SELECT count() FROM {TRACES}").rows[0][0]) >= spans

    await _settle(analytics)
    projector_s = await run_until(runner.run, caught_up, 0.02)
    except_ceiling = f"SELECT * FROM {TRACES} EXCEPT SELECT * FROM ceiling_{TRACES}"
    differing = int(analytics.query(f"SELECT count() FROM ({except_ceiling})").rows[0][0])
    return {"projector_s": projector_s, "ceiling_s": ceiling_s, "differing": differing}


async def _settle(analytics: Any, timeout_s: float = 60.0) -> None:
    """Wait until the engine merges nothing, so that a measurement does not pay for the merges
    of the one before it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if int(analytics.query("SELECT count() FROM system.merges").rows[0][0]) == 0:
            return
        await asyncio.sleep(0.1)


class _Renamed:
    """The projection writing into the ceiling_ copies of its tables."""

    def __init__(self, projection: Any) -> None:
        self.name = projection.name
        self.tables = tuple(f"ceiling_{table}" for table in projection.tables)


def main() -> None:
    parser = load_parser(__doc__, seconds=10, connections=64)
    parser.add_argument("--spans", type=int, default=100, help="spans per export request")
    parser.add_argument("--attributes", type=int, default=10, help="attributes per span")
    parser.add_argument("--requests", type=int, default=2000, help="export requests projected")
    parser.add_argument(
        "--batch",
        type=int,
        default=OTLP_BATCH_RECORDS,
        help="log records per projector batch (default: as served)",
    )
    parser.add_argument("--log", help="HUTCH_LOG for Hutch's ingest (default: embedded SQLite)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-projector", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if not args.skip_ingest:
        result["ingest"] = ingest(args)
    if not args.skip_projector:
        result["projector"] = asyncio.run(project(args))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
