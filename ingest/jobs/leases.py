"""Provisioners and runners: dequeue a job under a lease, report on it, keep it or lose it.

A dequeue is a command like any other (state/command_context.py), and the one that must go
fast: many provisioners poll at once. So the dequeues waiting in a process are served
together, one lock turn for all of them (`Dequeuer`): catch up once, requeue the jobs whose
lease lapsed, pick each waiting provisioner its oldest fitting job (never one job twice),
append every lease in one write, let go of the lock. The lock makes that
exactly-once across processes; the batch makes it cheap.

A lease lasts HUTCH_JOB_LEASE seconds and every report from its holder renews it. A job
whose holder went silent is requeued at the next dequeue (after MAX_ATTEMPTS leases it ends
as `timeout`), and a report under a lease that is no longer the job's is a 409: the runner
stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from base.client_errors import ConflictError, NotFound, Unprocessable
from schemas.envelope import Envelope, iso_micros, new_envelope, uuid7
from schemas.jobs import events as e
from state.command_context import JOBS, CommandContext
from state.jobs import reads as q
from web.worker_auth import Worker


@dataclass(frozen=True, slots=True)
class Wanted:
    provisioner: Worker
    vcpus: int
    architecture: e.Architecture
    host: str


@dataclass(frozen=True, slots=True)
class Lease:
    job: q.Job
    lease: e.JobLeased
    manifest: str
    """The job's manifest text, read in the turn (what the runner is handed)."""


class Dequeuer:
    """The dequeues of one process, served a lock turn at a time."""

    def __init__(self, ctx: CommandContext) -> None:
        self._ctx = ctx
        self._waiting: list[tuple[Wanted, asyncio.Future[Lease | None]]] = []
        self._serving = False

    async def dequeue(self, wanted: Wanted) -> Lease | None:
        future: asyncio.Future[Lease | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((wanted, future))
        if not self._serving:
            self._serving = True
            asyncio.create_task(self._serve(), name="job-dequeue")  # noqa: RUF006 (ends itself)
        return await future

    async def _serve(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    leases = await self._turn([wanted for wanted, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), lease in zip(batch, leases, strict=True):
                    if not future.done():
                        future.set_result(lease)
        finally:
            self._serving = False

    async def _turn(self, batch: Sequence[Wanted]) -> list[Lease | None]:
        ctx = self._ctx
        async with ctx.command("jobs:queue", JOBS):
            now = ctx.clock()
            # The batch's reads in one thread hop: every waiting provisioner waits for them.
            events, picks, manifests = await asyncio.to_thread(_decide, ctx, batch, now)
            leases: list[Lease | None] = []
            for wanted, job in zip(batch, picks, strict=True):
                if job is None:
                    leases.append(None)
                    continue
                leased = e.JobLeased(
                    uuid=job.uuid,
                    lease_id=uuid7(),
                    provisioner=wanted.provisioner.id,
                    host=wanted.host,
                    lease_until=now + lease_s(ctx) * 1_000_000,
                    attempt=job.attempt + 1,
                )
                events.append(_event("job.leased.v1", job.uuid, leased))
                leases.append(Lease(job, leased, manifests[job.uuid]))
            if events:
                # Not caught up here: the next turn (in any process) catches up before it
                # decides, as does the background projector; a runner's first report
                # catches up under its job's lock, and `holder` before refusing a lease.
                await ctx.log.append("jobs", events)
        return leases


def _decide(
    ctx: CommandContext, batch: Sequence[Wanted], now: int
) -> tuple[list[Envelope], list[q.Job | None], dict[str, str]]:
    """The requeues due now, each waiting provisioner's pick (its oldest fitting job, never
    one another in the batch took), and the manifests of the picks."""
    events = _lapsed_events(ctx, now)
    # One read per kind of host in the batch (usually one), as many jobs as the batch has
    # provisioners: however many of them the others take, each finds one left if any fits.
    limit = len(batch)
    candidates = {
        (arch, vcpus): q.queued(ctx.db, arch, vcpus, limit)
        for arch, vcpus in {(w.architecture, w.vcpus) for w in batch}
    }
    taken: set[str] = set()
    picks: list[q.Job | None] = []
    for wanted in batch:
        fits = candidates[wanted.architecture, wanted.vcpus]
        job = next((j for j in fits if j.uuid not in taken), None)
        if job is not None:
            taken.add(job.uuid)
        picks.append(job)
    manifests = q.manifests_of(ctx.db, [job.uuid for job in picks if job is not None])
    return events, picks, manifests


def lease_s(ctx: CommandContext) -> int:
    return ctx.settings.job_lease_s


def _event(type_: Any, key: str, payload: object) -> Envelope:
    return new_envelope(type_, e.encode(payload), key=key)


def _lapsed_events(ctx: CommandContext, now: int) -> list[Envelope]:
    """Requeue (or time out) the running jobs whose holder stopped reporting."""
    events: list[Envelope] = []
    for job in q.lapsed(ctx.db, now, 100):
        assert job.lease_id is not None
        if job.attempt >= e.MAX_ATTEMPTS:
            reason = f"its runners went silent {job.attempt} times; giving up on it"
            ended = e.JobStatusChanged(job.uuid, "timeout", reason=reason)
            events.append(_event("job.status_changed.v1", job.uuid, ended))
        else:
            reason = f"host {job.host} did not report before its lease ran out"
            again = e.JobRequeued(job.uuid, job.lease_id, reason)
            events.append(_event("job.requeued.v1", job.uuid, again))
    return events


# --- the lease holder's reports ---------------------------------------------------------


async def _held(ctx: CommandContext, runner: Worker, uuid: str, lease_id: object) -> q.Job:
    """The job, if `lease_id` is its live lease and `runner` holds it; 409 otherwise."""
    job = await asyncio.to_thread(q.job_by_uuid, ctx.db, uuid)
    if job is None:
        raise NotFound(f"no job {uuid}", code="no_job")
    if not isinstance(lease_id, str) or job.lease_id != lease_id or job.provisioner != runner.id:
        raise ConflictError(
            f"job {job.number} is not held under this lease (it is {job.status}); stop it",
            field="lease_id",
            code="lease_lost",
        )
    if job.status != "running":
        raise ConflictError(f"job {job.number} is {job.status}; stop it", code="lease_lost")
    return job


def answer(ctx: CommandContext, job: q.Job, until: int | None) -> dict[str, Any]:
    return {
        "lease_expires_at": None if until is None else iso_micros(until),
        "cancel_requested": job.cancel_requested,
        "status": job.status,
    }


async def report(
    ctx: CommandContext, runner: Worker, uuid: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /api/runner/jobs/{uuid}/status: `running` renews the lease; an end ends it."""
    status = body.get("status")
    if status not in e.JOB_STATUSES or status in ("pending", "queued"):
        raise Unprocessable(
            "status must be running, success, failed, cancelled or timeout", field="status"
        )
    async with ctx.command(f"job:{uuid}", JOBS):
        job = await _held(ctx, runner, uuid, body.get("lease_id"))
        assert job.lease_id is not None
        until: int | None = ctx.clock() + lease_s(ctx) * 1_000_000
        if status == "running":
            assert until is not None
            renewed = e.JobLeaseRenewed(uuid, job.lease_id, until)
            event = _event("job.lease_renewed.v1", uuid, renewed)
        else:
            ended = e.JobStatusChanged(uuid, status, lease_id=job.lease_id)
            event = _event("job.status_changed.v1", uuid, ended)
            until = None
        await ctx.append("jobs", [event], JOBS)
        after = await asyncio.to_thread(q.job_by_uuid, ctx.db, uuid)
    assert after is not None
    return answer(ctx, after, until)


async def report_task(
    ctx: CommandContext, runner: Worker, uuid: str, task: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST /api/runner/jobs/{uuid}/tasks/{task}/status: a task moves on (forward only); the
    lease is renewed with it."""
    status = body.get("status")
    if status not in e.TASK_STATUSES:
        raise Unprocessable(
            "status must be pending, running, success, failed or skipped", field="status"
        )
    async with ctx.command(f"job:{uuid}", JOBS):
        job = await _held(ctx, runner, uuid, body.get("lease_id"))
        assert job.lease_id is not None
        tasks = {t.name: t for t in await asyncio.to_thread(q.tasks_of, ctx.db, uuid)}
        current = tasks.get(task)
        if current is None:
            raise NotFound(f"job {job.number} has no task {task!r}", field="task")
        if status not in e.TASK_MOVES[current.status]:  # type: ignore[index]
            raise ConflictError(
                f"task {task} is {current.status}: it cannot become {status}", code="bad_move"
            )
        until = ctx.clock() + lease_s(ctx) * 1_000_000
        changed = e.JobTaskStatusChanged(uuid, task, status, lease_id=job.lease_id)
        renewed = e.JobLeaseRenewed(uuid, job.lease_id, until)
        events = [
            _event("job.task_status_changed.v1", uuid, changed),
            _event("job.lease_renewed.v1", uuid, renewed),
        ]
        await ctx.append("jobs", events, JOBS)
        after = await asyncio.to_thread(q.job_by_uuid, ctx.db, uuid)
    assert after is not None
    return answer(ctx, after, until)


async def holder(ctx: CommandContext, runner: Worker, uuid: str, lease_id: object) -> q.Job:
    """The job for a log or artifact write: held under `lease_id` (read without the lock: a
    write racing the lease's end is harmless, the lines still belong to the job). A lease
    the store does not show yet may be one a dequeue has just appended: caught up, then
    decided."""
    try:
        return await _held(ctx, runner, uuid, lease_id)
    except ConflictError:
        await ctx.catch_up(JOBS)
        return await _held(ctx, runner, uuid, lease_id)


async def fail_at_dequeue(ctx: CommandContext, lease: Lease, why: str) -> None:
    """End a job just leased that cannot be handed out (a secret it names was deleted or
    cannot be opened since it was submitted): its setup fails with `why` in its setup log,
    its tasks are skipped, and the job is failed, rather than requeued again and again."""
    job, lease_id = lease.job, lease.lease.lease_id
    uuid = job.uuid
    line = e.LogLine(
        e.SETUP, f"[hutch] the job cannot be handed to a runner: {why}", ctx.clock() * 1000
    )
    running = e.JobTaskStatusChanged(uuid, e.SETUP, "running", lease_id=lease_id)
    failed = e.JobTaskStatusChanged(uuid, e.SETUP, "failed", lease_id=lease_id)
    events = [
        # numbered after any line an earlier attempt sent: the clock, in microseconds
        _event(
            "job.log.v1",
            uuid,
            e.JobLog(uuid, job.number, job.tenant_id, lease_id, ctx.clock(), (line,)),
        ),
        _event("job.task_status_changed.v1", uuid, running),
        _event("job.task_status_changed.v1", uuid, failed),
    ]
    async with ctx.command(f"job:{uuid}", JOBS):
        for task in await asyncio.to_thread(q.tasks_of, ctx.db, uuid):
            if task.name != e.SETUP and task.status == "pending":
                skipped = e.JobTaskStatusChanged(uuid, task.name, "skipped", lease_id=lease_id)
                events.append(_event("job.task_status_changed.v1", uuid, skipped))
        ended = e.JobStatusChanged(uuid, "failed", lease_id=lease_id, reason=why)
        events.append(_event("job.status_changed.v1", uuid, ended))
        await ctx.append("jobs", events, JOBS)
