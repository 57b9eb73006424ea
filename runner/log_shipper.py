"""A job's log lines, from the processes that print them to Hutch: kept in order as they come
(`sink(task)` is a LineSink), sent in batches every FLUSH_S or once BATCH_LINES are waiting,
each batch numbered from where the last ended (`first`), so that a batch sent again after a
network error is stored once (projections/job_logs.py collapses repeated numbers).

A line longer than the protocol's 64 KiB is cut there (with a mark saying so)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from runner.client import HutchRunnerClient, LeaseLost
from runner.process import LineSink, LogLine

FLUSH_S = 0.2
BATCH_LINES = 5000
BATCH_BYTES = 3 << 20
MAX_LINE_BYTES = 64 * 1024
CUT = " [hutch: line cut at 64 KiB]"


def clip(text: str) -> str:
    data = text.encode()
    if len(data) <= MAX_LINE_BYTES:
        return text
    keep = MAX_LINE_BYTES - len(CUT.encode())
    return data[:keep].decode(errors="ignore") + CUT


class LogShipper:
    def __init__(
        self, client: HutchRunnerClient, uuid: str, lease_id: str, lost: asyncio.Event
    ) -> None:
        self._client = client
        self._uuid = uuid
        self._lease = lease_id
        self._lost = lost
        self._pending: deque[dict[str, object]] = deque()
        self._bytes = 0
        self._next = 0
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()

    def sink(self, task: str) -> LineSink:
        def take(line: LogLine) -> None:
            text = clip(line.text)
            self._pending.append({"task": task, "line": text, "at": line.at_ns})
            self._bytes += len(text) + 64
            if len(self._pending) >= BATCH_LINES or self._bytes >= BATCH_BYTES:
                self._wake.set()

        return take

    async def run(self) -> None:
        """Send what comes, until cancelled (then `flush` sends the rest)."""
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            try:
                await self.flush()
            except LeaseLost:
                self._lost.set()
                return

    async def flush(self) -> None:
        async with self._sending:
            while self._pending and not self._lost.is_set():
                batch = self._take()
                try:
                    await self._client.logs(self._uuid, self._lease, self._next, batch)
                except BaseException:
                    self._pending.extendleft(reversed(batch))  # sent again, same numbers
                    raise
                self._next += len(batch)

    def _take(self) -> list[dict[str, object]]:
        taken: list[dict[str, object]] = []
        size = 0
        while self._pending and len(taken) < BATCH_LINES and size < BATCH_BYTES:
            line = self._pending.popleft()
            size += len(str(line["line"])) + 64
            taken.append(line)
        self._bytes = max(0, self._bytes - size)
        return taken
