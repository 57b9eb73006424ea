"""Job logs projection: `job.log.v1` records of the `jobs` topic -> the job_logs table.

One record is one batch of lines a runner sent (docs/jobs.md, `POST
/api/runner/jobs/{uuid}/logs`); each line becomes a row numbered `first + i` (Seq), so a
batch the runner sent again carries the same numbers and reads collapse it (job_logs.sql).
The other job events share the topic and are skipped. A record with anything malformed is
skipped whole (and logged), never half-projected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from projections.interface import Rows
from projections.otel_common import datetime64_9
from schemas.clickhouse import load
from schemas.events import Topic
from storage.log import Record

log = logging.getLogger(__name__)

TABLE = "job_logs"
COLUMNS = ("Tenant", "JobNumber", "JobUuid", "Task", "Seq", "Timestamp", "Line")
UINT64_LIMIT = 1 << 64

BATCH_RECORDS = 100
"""Most `jobs` records a projector takes at once: a log record holds up to 10,000 lines (at
most 4 MiB), so HUTCH_PROJECTOR_BATCH, counted in records, could make a batch of hundreds of
millions of lines. 100 records: at most a million lines."""


def _unsigned(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value < UINT64_LIMIT:
        raise TypeError(f"{name} must be an unsigned 64-bit integer")
    return value


def _text(value: object, name: str) -> str:
    if type(value) is not str:
        raise TypeError(f"{name} must be text")
    return value


def _batch(payload: bytes) -> tuple[str, int, str, int, list[tuple[str, str, str]]]:
    """(tenant, job number, job uuid, first seq, [(task, timestamp, line)]) of a JobLog
    payload; raises on anything that does not fit the table."""
    body = orjson.loads(payload)
    if not isinstance(body, dict):
        raise TypeError("the payload is not an object")
    tenant = _text(body["tenant_id"], "tenant_id")
    number = _unsigned(body["number"], "number")
    uuid = _text(body["uuid"], "uuid")
    first = _unsigned(body["first"], "first")
    items = body.get("lines", ())
    if not isinstance(items, list) or first + len(items) > UINT64_LIMIT:
        raise TypeError("lines must be a list numbered within UInt64")
    lines: list[tuple[str, str, str]] = []
    for item in items:
        task, text, at = item["task"], item["line"], item["at"]
        if type(task) is not str or type(text) is not str or type(at) is not int:
            raise TypeError("each line needs a task and a line (text) and at (an integer)")
        lines.append((task, datetime64_9(at), text))
    return tenant, number, uuid, first, lines


def transform(records: Sequence[Record]) -> Rows:
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for record in records:
        envelope = record.envelope
        if envelope.type != "job.log.v1":
            continue
        try:
            tenant, number, uuid, first, lines = _batch(envelope.payload)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.error(
                "skipping malformed job log record",
                extra={"offset": record.offset, "error": str(exc)},
            )
            continue
        count = len(lines)
        columns["Tenant"] += [tenant] * count
        columns["JobNumber"] += [number] * count
        columns["JobUuid"] += [uuid] * count
        columns["Seq"] += range(first, first + count)
        for task, at, text in lines:
            columns["Task"].append(task)
            columns["Timestamp"].append(at)
            columns["Line"].append(text)
    if not columns["Seq"]:
        return {}
    return {TABLE: columns}


class JobLogsProjection:
    name = "job_logs"
    topics: tuple[Topic, ...] = ("jobs",)
    tables: tuple[str, ...] = (TABLE,)

    def __init__(self, retention_days: int) -> None:
        self._retention_days = retention_days

    def ddl(self) -> list[str]:
        return [load(TABLE, retention_days=self._retention_days)]

    def transform(self, records: Sequence[Record]) -> Rows:
        return transform(records)
