"""OTLP/HTTP protobuf spans per second: Hutch's ingest against the OpenTelemetry Collector,
and Hutch's otel_traces projector into chDB.

Ingest: the same wrk load (ExportTraceServiceRequests of 100 spans, prebuilt bytes posted by
bench/post_otlp.lua) against the Collector (OTLP receiver + nop exporter, built by
bench/collector/build.sh when Go is present) and against `hutch ingest` (gunicorn, uvicorn
workers, a fresh data directory, a real app secret), alternately, in one run. Hutch counts a
request only once it is durable in the log; spans/s = requests/s x spans per request.

Projector: N export requests appended to a fresh SQLite log, then the otel_traces runner
(poll, decode, flatten, insert with deduplication tokens, commit) until every span is in
chDB; and, as its ceiling, chDB inserting the same rows already flattened.

    .venv/bin/python -m bench.otlp [--seconds 10] [--connections 64] [--rounds 2]
                                    [--requests 2000] [--batch 200] [--skip-ingest]
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
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.common import (
    PYTHON,
    ROOT,
    bench_app_secret,
    free_port,
    fresh_topics,
    process,
    run_until,
    wait_port,
    wrk,
)

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
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        env = {
            "HUTCH_DATA": str(Path(tmp) / "data"),
            "HUTCH_BIND": f"127.0.0.1:{port}",
            "HUTCH_WORKERS": str(workers),
            "HUTCH_LOG_LEVEL": "WARNING",
        }
        if log_url:
            env["HUTCH_LOG"] = fresh_topics(log_url)
        secret = bench_app_secret(env)
        with process([PYTHON, "-m", "hutch", "ingest"], env, log=Path(tmp) / "ingest.log"):
            wait_port(port)
            load = {"HUTCH_BENCH_BODY": str(body), "HUTCH_BENCH_SECRET": secret}
            url = f"http://127.0.0.1:{port}/v1/traces"
            wrk(url, SCRIPT, seconds=2, connections=connections, env=load)
            return wrk(url, SCRIPT, seconds=seconds, connections=connections, env=load)


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
    from projections.otel_traces import TRACES, OtelTracesProjection
    from projections.runner import AnalyticsRunner, ensure_tables, group_name
    from schemas.envelope import PROTOBUF, new_envelope
    from storage.analytics.chdb import ChdbAnalytics
    from storage.log.sqlite import SQLiteLog

    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        log = SQLiteLog(Path(tmp) / "log.db", append_timeout_s=120)
        await log.start()
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
        spans = args.requests * args.spans
        analytics = ChdbAnalytics(Path(tmp) / "clickhouse")
        projection = OtelTracesProjection(30)
        ensure_tables(analytics, projection)

        records = log.read_sync("otlp.traces", 0, args.requests)
        started = time.perf_counter()
        blocks = [
            projection.transform(records[i : i + args.batch])
            for i in range(0, len(records), args.batch)
        ]
        transform_s = time.perf_counter() - started
        analytics.execute(f"CREATE TABLE ceiling AS {TRACES}")
        started = time.perf_counter()
        for block in blocks:
            analytics.insert("ceiling", block[TRACES])
        ceiling_s = time.perf_counter() - started
        del blocks, records

        consumer = log.consumer(group_name(projection), projection.topics)
        runner = AnalyticsRunner(projection, consumer, analytics, batch=args.batch, linger_s=0.0)

        async def caught_up() -> bool:
            return int(analytics.query(f"SELECT count() FROM {TRACES}").rows[0][0]) >= spans

        projector_s = await run_until(runner.run, caught_up, 0.02)
        records = log.read_sync("otlp.traces", 0, args.requests)
        sql_path = measure_sql_path(analytics, records, args, Path(tmp) / "spool.bin")
        analytics.close()
        await log.close()
    return {
        "sql_path_prototype": sql_path,
        "requests": args.requests,
        "spans": spans,
        "batch_records": args.batch,
        "projector_spans_per_s": round(spans / projector_s),
        "transform_only_spans_per_s": round(spans / transform_s),
        "insert_only_spans_per_s": round(spans / ceiling_s),
        "ratio_to_insert_only": round(ceiling_s / projector_s, 3),
    }


def measure_sql_path(
    analytics: Any, records: list[Any], args: argparse.Namespace, spool: Path
) -> dict[str, Any]:
    """bench/otlp_sql_path.py on the same records, into copies of the two tables; and
    whether its rows equal the Python projection's."""
    from bench import otlp_sql_path

    spans_table, lookup_table = "sql_otel_traces", "sql_otel_traces_trace_id_ts"
    analytics.execute(f"CREATE TABLE {spans_table} AS otel_traces")
    analytics.execute(f"CREATE TABLE {lookup_table} AS otel_traces_trace_id_ts")
    # chDB caches a schema given as text in __cache__/ under the working directory.
    here = Path.cwd()
    os.chdir(spool.parent)
    started = time.perf_counter()
    framing_s = 0.0
    for i in range(0, len(records), args.batch):
        framed = time.perf_counter()
        chunk = records[i : i + args.batch]
        spool.write_bytes(otlp_sql_path.frame(chunk))
        framing_s += time.perf_counter() - framed
        for n, (sql, params) in enumerate(
            otlp_sql_path.statements(str(spool), (spans_table, lookup_table))
        ):
            token = f"sql:{n}:{chunk[0].offset}-{chunk[-1].offset}"
            settings = {**otlp_sql_path.SETTINGS, "insert_deduplication_token": token}
            analytics.query(sql, params, settings=settings)
    total_s = time.perf_counter() - started
    os.chdir(here)
    spans = len(records) * args.spans

    def differing(a: str, b: str) -> int:
        sql = f"SELECT count() FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b})"
        return int(analytics.query(sql).rows[0][0])

    return {
        "spans_per_s": round(spans / total_s),
        "python_framing_spans_per_s": round(spans / framing_s),
        "rows": int(analytics.query(f"SELECT count() FROM {spans_table}").rows[0][0]),
        "rows_differing_from_python_projection": differing(spans_table, "otel_traces")
        + differing("otel_traces", spans_table),
        "lookup_rows_differing": differing(lookup_table, "otel_traces_trace_id_ts")
        + differing("otel_traces_trace_id_ts", lookup_table),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spans", type=int, default=100, help="spans per export request")
    parser.add_argument("--attributes", type=int, default=10, help="attributes per span")
    parser.add_argument("--requests", type=int, default=2000, help="export requests projected")
    parser.add_argument("--batch", type=int, default=200, help="log records per projector batch")
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
