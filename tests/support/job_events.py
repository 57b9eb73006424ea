"""CI job events written straight to a test server's log, as its commands and the runner API
would write them: a submitted job, and batches of log lines (`job.log.v1`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from base.settings import Settings
from schemas.envelope import Envelope, new_envelope, uuid7
from schemas.events import EventType
from schemas.jobs.events import JobLog, JobSubmitted, LogLine, encode


def append(settings: Settings, envelopes: Sequence[Envelope]) -> None:
    """Append to the `jobs` topic through a log of the test's own (the server's log lives on
    the server's event loop); returns once the append is durable."""
    from hutch.wiring import open_log

    async def run() -> None:
        log = open_log(settings)
        await log.start()
        try:
            await log.append("jobs", envelopes)
        finally:
            await log.close()

    asyncio.run(run())


def _event(type_: EventType, key: str, payload: object) -> Envelope:
    return new_envelope(type_, encode(payload), key=key)


def submitted(
    number: int,
    tenant: str,
    owner: str,
    *,
    tasks: Sequence[str] = ("build", "test"),
    read: Sequence[str] = ("*",),
) -> tuple[str, Envelope]:
    """A job queued by `owner` in `tenant`, readable by `read` (and the owner): (uuid, event)."""
    uuid = uuid7()
    job = JobSubmitted(
        uuid=uuid,
        number=number,
        tenant_id=tenant,
        owner=owner,
        manifest="image: debian/bookworm\ntasks:\n"
        + "".join(f"  - {t}: echo {t}\n" for t in tasks),
        image="debian/bookworm",
        tasks=tuple(tasks),
        note=None,
        tags=(),
        read_access=tuple(dict.fromkeys((owner, *read))),
        write_access=(owner,),
        execute=True,
        secrets=False,
        vcpus=1,
        cpu_architecture="Amd64",
        timeout_s=3600,
    )
    return uuid, _event("job.submitted.v1", uuid, job)


def log_batch(
    uuid: str, number: int, tenant: str, first: int, lines: Sequence[tuple[str, str]]
) -> Envelope:
    """A runner's batch of (task, line), numbered from `first` within the job."""
    at = time.time_ns()
    batch = JobLog(
        uuid=uuid,
        number=number,
        tenant_id=tenant,
        lease_id=uuid7(),
        first=first,
        lines=tuple(LogLine(task, text, at + first + i) for i, (task, text) in enumerate(lines)),
    )
    return _event("job.log.v1", uuid, batch)
