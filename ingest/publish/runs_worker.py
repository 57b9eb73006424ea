"""The publish runner: a consumer of the `publish` topic in a group of its own
(`publish-runs`, started by hutch/runtime.py beside the job triggers; under `hutch serve` only
the process that runs the projectors runs it). For each `publish.requested.v1` the run is read
from the publish projection and, unless it has ended, attempted (ingest/publish/runs_attempt.py)
until it succeeds, fails for good, or has used its attempts.

Every transition is an event: `publish.attempt_started.v1`, each step's `publish.step.v1`,
`publish.retrying.v1` after a transient failure (a connection refused, timed out, hung up;
the wait doubles from HUTCH_PUBLISH_RETRY_DELAY), `publish.finished.v1` at the end. A crash
or a stop leaves a run unfinished in the projection; the next runner resumes it from its next
attempt, and it never pushes twice, because each attempt looks for its own commit on the
remote branch before committing (the commit message names the run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from base.git_remote import GitRemote
from ingest.publish.runs_attempt import attempt
from ingest.publish.runs_git import PublishFailure, fingerprints, sweep, workdirs
from schemas.envelope import new_envelope, now_micros
from schemas.events import EventType
from schemas.publish.runs import (
    ENDED,
    PublishAttemptStarted,
    PublishFinished,
    PublishHostKeyStored,
    PublishRetrying,
    PublishStep,
    RunStatus,
    StepStatus,
    encode,
)
from state.command_context import PUBLISH, CommandContext
from state.publish import reads
from state.publish.reads import Run
from storage.log import Record, spans_of

log = logging.getLogger(__name__)

GROUP = "publish-runs"
POLL_RECORDS = 100
CONCURRENT = 4
"""Runs in flight at once."""
RESUME_EVERY_S = 60.0
"""How often unfinished runs without a task are started again (one whose task stopped on an
error of the log's)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    first_delay_s: float = 5.0

    def delay_s(self, attempt: int) -> float:
        """The wait after attempt `attempt` (1-based) failed: 5, 10 s by default."""
        return float(self.first_delay_s * 2 ** (attempt - 1))


class RunRecorder:
    """Appends one run's events (the Recorder of runs_attempt.py)."""

    def __init__(self, ctx: CommandContext, run: Run, attempt: int) -> None:
        self._ctx = ctx
        self.run = run
        self.attempt = attempt

    async def emit(self, type_: EventType, payload: Any, key: str | None = None) -> None:
        envelope = new_envelope(type_, encode(asdict(payload)), key=key or self.run.id)
        await self._ctx.log.append("publish", [envelope])

    async def step(self, name: str, status: StepStatus, started_at: int, log_: str) -> None:
        event = PublishStep(self.run.id, self.attempt, name, status, started_at, now_micros(), log_)
        await self.emit("publish.step.v1", event)

    async def trusted_keys(
        self, run: Run, remote: GitRemote, scan: Callable[[], Awaitable[str]]
    ) -> str:
        port = remote.port or 22
        # Under the developer's lock: two runs at once scan and store the host's keys once.
        async with self._ctx.command(f"developer:{run.developer}", PUBLISH):
            stored = await asyncio.to_thread(
                reads.known_hosts_of, self._ctx.db, run.developer, remote.host, port
            )
            if stored is not None:
                return stored.known_hosts
            scanned = await scan()
            if not scanned:
                return ""
            event = PublishHostKeyStored(
                run.developer, remote.host, port, scanned, fingerprints(scanned)
            )
            await self.emit("publish.host_key_stored.v1", event, key=run.developer)
            await self._ctx.catch_up(PUBLISH)
            return scanned


class PublishRunner:
    def __init__(self, ctx: CommandContext, policy: RetryPolicy) -> None:
        self._ctx = ctx
        self._policy = policy
        self._slots = asyncio.Semaphore(CONCURRENT)
        self._running: dict[str, asyncio.Task[bool]] = {}

    async def resume(self, stop: asyncio.Event) -> None:
        """Start every run that has not ended: those a stopped or crashed runner left."""
        await self._ctx.catch_up(PUBLISH)
        for run_id in await asyncio.to_thread(reads.unfinished_runs, self._ctx.db):
            self._launch(run_id, stop)

    async def launch(self, records: Sequence[Record], stop: asyncio.Event) -> None:
        """Start the runs these records request (each once, however often it is seen)."""
        ids = [r.envelope.key for r in records if r.envelope.type == "publish.requested.v1"]
        if ids:
            await self._ctx.catch_up(PUBLISH)
        for run_id in ids:
            self._launch(run_id, stop)

    def _launch(self, run_id: str, stop: asyncio.Event) -> None:
        if run_id in self._running:
            return
        task = asyncio.create_task(self.run(run_id, stop), name=f"publish-run:{run_id}")
        self._running[run_id] = task
        task.add_done_callback(lambda done: self._ended(run_id, done))

    def _ended(self, run_id: str, task: asyncio.Task[bool]) -> None:
        self._running.pop(run_id, None)
        if not task.cancelled() and task.exception() is not None:
            # The log refused an event (it is down): the next `resume` starts the run again.
            log.error("publish run stopped", extra={"run": run_id, "error": str(task.exception())})

    async def close(self) -> None:
        """Stop the runs in flight (their git is killed, their directories removed); they go
        on from their next attempt when a runner starts again."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, run_id: str, stop: asyncio.Event) -> bool:
        """Drive one run to its end; False if `stop` came during a wait (it goes on from its
        next attempt when the consumer starts again)."""
        async with self._slots:
            run = await asyncio.to_thread(reads.run_by_id, self._ctx.db, run_id)
            if run is None:
                log.error("a requested publish run is not in the table", extra={"run": run_id})
                return True
            if run.status in ENDED:
                return True
            number = run.attempt
            while True:
                number += 1
                recorder = RunRecorder(self._ctx, run, number)
                await recorder.emit(
                    "publish.attempt_started.v1", PublishAttemptStarted(run_id, number)
                )
                try:
                    outcome = await attempt(self._ctx, run, recorder)
                except PublishFailure as exc:
                    if not exc.transient or number >= self._policy.attempts:
                        tried = f" (after {number} attempts)" if exc.transient else ""
                        await self._finish(recorder, "failed", None, exc.message + tried)
                        return True
                    delay = self._policy.delay_s(number)
                    retry = PublishRetrying(run_id, number, exc.message, delay)
                    await recorder.emit("publish.retrying.v1", retry)
                    log.warning("publish run retrying", extra={"run": run_id, "error": exc.message})
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        return False
                    except TimeoutError:
                        continue
                except Exception:
                    log.exception("publish run failed unexpectedly", extra={"run": run_id})
                    await self._finish(
                        recorder, "failed", None, "an internal error stopped the run"
                    )
                    return True
                await self._finish(recorder, "succeeded", outcome.commit, None, outcome.message)
                return True

    async def _finish(
        self,
        recorder: RunRecorder,
        status: RunStatus,
        commit: str | None,
        error: str | None,
        message: str = "",
    ) -> None:
        event = PublishFinished(recorder.run.id, status, commit, message or (error or ""), error)
        await recorder.emit("publish.finished.v1", event)
        await self._ctx.catch_up(PUBLISH)
        log.info("publish run finished", extra={"run": event.run_id, "status": status})


async def run_forever(
    ctx: CommandContext, *, stop: asyncio.Event, policy: RetryPolicy | None = None
) -> None:
    """Run publish runs until `stop`.

    Each requested run is started as a task of its own and its record committed at once: a
    slow remote holds up no other run. What a crash leaves unfinished is found in the publish
    projection when the runner starts again (`resume`), whether or not its record was
    committed; so is one whose task stopped on an error, every RESUME_EVERY_S."""
    runner = PublishRunner(
        ctx, policy or RetryPolicy(first_delay_s=ctx.settings.publish_retry_delay_s)
    )
    swept = await asyncio.to_thread(sweep, workdirs(ctx.settings.data))
    if swept:
        log.warning("removed what stopped publish attempts left", extra={"directories": swept})
    consumer = ctx.log.consumer(GROUP, ("publish",))
    await consumer.start()
    try:
        await runner.resume(stop)
        resumed = time.monotonic()
        while not stop.is_set():
            records = await consumer.poll(POLL_RECORDS, 1.0)
            if records:
                await runner.launch(records, stop)
                await consumer.commit(spans_of(records))
            if time.monotonic() - resumed > RESUME_EVERY_S:
                await runner.resume(stop)
                resumed = time.monotonic()
    finally:
        await runner.close()
        await consumer.close()
