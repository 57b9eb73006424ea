"""Which OTLP items Hutch rejects, and why: one rule for ingest and for the projectors.

Ingest counts the items these rules reject (and reports them as a partial success); the
projectors drop exactly the same items, so the rows in ClickHouse match what the client was
told. Each rule takes plain values, not messages, so it applies alike to the lite messages
ingest parses and the full ones the projectors decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ZERO_TRACE_ID = bytes(16)
ZERO_SPAN_ID = bytes(8)


def span_problem(trace_id: bytes, span_id: bytes) -> str | None:
    """Why a span is rejected, or None. Both ids are required and must not be all zero."""
    if len(trace_id) != 16 or trace_id == ZERO_TRACE_ID:
        return "span trace_id must be 16 bytes and not all zero"
    if len(span_id) != 8 or span_id == ZERO_SPAN_ID:
        return "span span_id must be 8 bytes and not all zero"
    return None


def log_problem(trace_id: bytes, span_id: bytes) -> str | None:
    """Why a log record is rejected, or None. Its ids are optional but must be well formed."""
    if len(trace_id) not in (0, 16):
        return "log record trace_id must be empty or 16 bytes"
    if len(span_id) not in (0, 8):
        return "log record span_id must be empty or 8 bytes"
    return None


NO_METRIC_DATA = "metric has no data (gauge, sum, histogram, exponential_histogram or summary)"
"""A metric without a known data field carries no point; it counts as one rejected point.

Data points themselves are not checked: like the Collector, Hutch stores what it is sent
(a histogram whose bucket_counts do not match its bounds included)."""


Signal = Literal["traces", "metrics", "logs"]

ITEM_NOUN: dict[Signal, str] = {"traces": "spans", "metrics": "data points", "logs": "log records"}


@dataclass(frozen=True, slots=True)
class Checked:
    """What validation found in one export request."""

    items: int
    """Spans, metric data points or log records in the request (a metric without data: 1)."""
    rejected: int = 0
    reason: str = ""
    """Why the first rejected item was rejected; empty when none was."""

    @property
    def accepted(self) -> int:
        return self.items - self.rejected


class Tally:
    """Counts items and rejections while a validator walks a request."""

    __slots__ = ("items", "reason", "rejected")

    def __init__(self) -> None:
        self.items = 0
        self.rejected = 0
        self.reason = ""

    def reject(self, problem: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = problem

    def result(self) -> Checked:
        return Checked(self.items, self.rejected, self.reason)
