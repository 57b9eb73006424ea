"""The job trigger dispatcher: when a job ends, its manifest's triggers are delivered and
every attempt is recorded on the log (`job.trigger_delivered.v1`), whence the jobs projection
lists them (`GET /api/jobs/{id}/deliveries`).

A consumer of the `jobs` topic in a group of its own (`job-triggers`). For each
`job.status_changed.v1` that ends a job, the jobs projection is caught up and the job read
from it (its triggers, tasks and statuses: the state the webhook sends), then each trigger
whose condition holds is delivered, the job's triggers at once, one attempt after another
for each (`RetryPolicy`: exponential backoff, a bounded number of attempts, a timeout each).
The poll's offsets are committed once all of them are done.

Conditions as builds.sr.ht has them: `always`; `success` for a job that succeeded; `failure`
for one that failed, timed out or was cancelled (also one cancelled before it ran: every end
fires its triggers).

Delivery is at least once, deduplicated by the recorded outcome: before delivering, the
attempts already on the log for (job, action, target) are read, and a target with an `ok`
one is not sent to again, so a restart or a replay of the group sends nothing twice that was
recorded as delivered; one left half-way goes on from its next attempt number, and one whose
attempts are spent is left alone. What can still be sent twice is an attempt whose outcome
was lost with the process (the receiver had it; the record did not land). Two triggers with
the same action and target make one delivery. A target is the webhook's URL, or an e-mail's
`to` list as written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import orjson

from base.mail import Outcome, mail_server, send_mail, sender
from base.net_guard import parse_allowed_networks
from base.settings import Settings
from ingest.job_trigger_sends import JobMail, message, post_webhook, recipients
from schemas.envelope import new_envelope
from schemas.jobs.events import ENDED, SETUP, JobTriggerDelivered, encode
from state.command_context import JOBS
from state.jobs.document import job_document, job_url
from state.jobs.reads import Job, deliveries_of, job_by_uuid, tasks_of
from state.relational import catch_up
from storage.log import EventLog, Record, spans_of
from storage.relational import Relational

log = logging.getLogger(__name__)

GROUP = "job-triggers"
POLL_RECORDS = 1000
CONCURRENT = 16
"""Deliveries in flight at once, over every job of a poll."""
FAILURE = frozenset({"failed", "timeout", "cancelled"})
Action = Literal["webhook", "email"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 2.0
    factor: float = 2.0
    timeout_s: float = 10.0
    """For each attempt: a webhook's whole request, or each step of an SMTP conversation."""

    def delay_s(self, attempt: int) -> float:
        """The wait after attempt `attempt` (1-based) failed: 2, 4, 8, 16 s by default, so a
        target gets five tries within half a minute of waiting."""
        return self.first_delay_s * self.factor ** (attempt - 1)


def fires(condition: object, status: str) -> bool:
    if condition == "always":
        return True
    if condition == "success":
        return status == "success"
    return condition == "failure" and status in FAILURE


@dataclass(frozen=True, slots=True)
class Delivery:
    job: Job
    action: Action
    target: str
    trigger: Mapping[str, Any]
    first_attempt: int
    ended_at: int


def _addresses(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()


def _target(trigger: Mapping[str, Any]) -> tuple[Action, str] | None:
    if trigger.get("action") == "webhook" and isinstance(trigger.get("url"), str):
        return "webhook", str(trigger["url"])
    if trigger.get("action") == "email" and _addresses(trigger.get("to")):
        return "email", ", ".join(_addresses(trigger.get("to")))
    return None


def plan(
    job: Job, status: str, ended_at: int, recorded: Sequence[Mapping[str, Any]], attempts: int
) -> list[Delivery]:
    """The deliveries still to make for a job that ended with `status`."""
    tried: dict[tuple[str, str], int] = {}
    delivered: set[tuple[str, str]] = set()
    for row in recorded:
        key = (str(row["action"]), str(row["target"]))
        tried[key] = max(tried.get(key, 0), int(row["attempt"]))
        if row["ok"]:
            delivered.add(key)
    out: dict[tuple[str, str], Delivery] = {}
    for trigger in job.triggers:
        target = _target(trigger)
        if target is None or target in out or not fires(trigger.get("condition"), status):
            continue
        done = tried.get(target, 0)
        if target in delivered or done >= attempts:
            continue
        out[target] = Delivery(job, target[0], target[1], trigger, done + 1, ended_at)
    return list(out.values())


def _end(record: Record) -> tuple[str, str, int] | None:
    """(job uuid, status, when) of a record that ends a job."""
    envelope = record.envelope
    if envelope.type != "job.status_changed.v1":
        return None
    try:
        payload = orjson.loads(envelope.payload)
        uuid, status = str(payload["uuid"]), str(payload["status"])
    except (orjson.JSONDecodeError, TypeError, KeyError):
        log.error("skipping a malformed job status record", extra={"offset": record.offset})
        return None
    return (uuid, status, envelope.received_at) if status in ENDED else None


class TriggerDispatcher:
    def __init__(
        self, log_: EventLog, db: Relational, settings: Settings, policy: RetryPolicy
    ) -> None:
        self._log = log_
        self._db = db
        self._settings = settings
        self._policy = policy
        self._allowed = parse_allowed_networks(settings.webhook_allow_networks)
        self._mail = mail_server(settings)
        self._sender = sender(settings)
        self._slots = asyncio.Semaphore(CONCURRENT)

    async def handle(self, records: Sequence[Record], stop: asyncio.Event) -> bool:
        """Deliver the triggers of the jobs these records end; False if `stop` came first
        (some were left for the next run)."""
        ends = [end for r in records if (end := _end(r)) is not None]
        if not ends:
            return True
        await catch_up(self._log, self._db, JOBS)
        todo = [d for end in ends for d in await asyncio.to_thread(self._plan, *end)]
        done = await asyncio.gather(*(self._deliver(d, stop) for d in todo))
        return all(done)

    def _plan(self, uuid: str, status: str, ended_at: int) -> list[Delivery]:
        job = job_by_uuid(self._db, uuid)
        if job is None:
            log.error("an ended job is not in the jobs table", extra={"job": uuid})
            return []
        recorded = deliveries_of(self._db, uuid)
        return plan(job, status, ended_at, recorded, self._policy.attempts)

    async def _deliver(self, delivery: Delivery, stop: asyncio.Event) -> bool:
        async with self._slots:
            attempt = delivery.first_attempt
            while True:
                outcome = await self._attempt(delivery)
                await self._record(delivery, attempt, outcome)
                if outcome.ok or not outcome.retry or attempt >= self._policy.attempts:
                    return True
                try:
                    await asyncio.wait_for(stop.wait(), self._policy.delay_s(attempt))
                    return False
                except TimeoutError:
                    attempt += 1

    async def _attempt(self, delivery: Delivery) -> Outcome:
        job, timeout_s = delivery.job, self._policy.timeout_s
        if delivery.action == "webhook":
            document = await asyncio.to_thread(
                job_document, self._db, job, self._settings.public_url
            )
            body = orjson.dumps(document)
            return await post_webhook(delivery.target, body, self._allowed, timeout_s)
        trigger = delivery.trigger
        to, cc = _addresses(trigger.get("to")), _addresses(trigger.get("cc"))
        reply = trigger.get("in_reply_to")
        try:
            msg = message(
                await asyncio.to_thread(self._mail_of, job, delivery.ended_at),
                self._sender,
                to,
                cc,
                reply if isinstance(reply, str) else None,
            )
        except ValueError as exc:
            return Outcome(False, f"the message cannot be written: {exc}")
        return await send_mail(self._mail, msg, recipients(to, cc), timeout_s)

    def _mail_of(self, job: Job, ended_at: int) -> JobMail:
        tasks = [(t.name, t.status) for t in tasks_of(self._db, job.uuid) if t.name != SETUP]
        return JobMail(
            number=job.number,
            status=job.status,
            tags=job.tags,
            note=job.note,
            link=job_url(self._settings.public_url, job.number),
            duration_s=max(0, (ended_at - job.created_at) // 1_000_000),
            tasks=tasks,
        )

    async def _record(self, delivery: Delivery, attempt: int, outcome: Outcome) -> None:
        event = JobTriggerDelivered(
            delivery.job.uuid, delivery.action, delivery.target, attempt, outcome.ok, outcome.detail
        )
        envelope = new_envelope(
            "job.trigger_delivered.v1", encode(asdict(event)), key=delivery.job.uuid
        )
        await self._log.append("jobs", [envelope])
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "job trigger delivered" if outcome.ok else "job trigger not delivered",
            extra={
                "job": delivery.job.number,
                "action": delivery.action,
                "attempt": attempt,
                "detail": outcome.detail,
            },
        )


async def run_forever(
    log_: EventLog,
    db: Relational,
    settings: Settings,
    *,
    stop: asyncio.Event,
    policy: RetryPolicy | None = None,
) -> None:
    """Deliver job triggers until `stop`. Offsets are committed once a poll's deliveries are
    all done, so a crash redelivers the poll and `plan` skips what was delivered."""
    dispatcher = TriggerDispatcher(log_, db, settings, policy or RetryPolicy())
    consumer = log_.consumer(GROUP, ("jobs",))
    await consumer.start()
    try:
        while not stop.is_set():
            records = await consumer.poll(POLL_RECORDS, 1.0)
            if records and await dispatcher.handle(records, stop):
                await consumer.commit(spans_of(records))
    finally:
        await consumer.close()
