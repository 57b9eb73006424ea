"""Job triggers (ingest/job_triggers.py): when a job ends, its webhooks are POSTed and its
e-mails sent, each attempt recorded on the log and listed by GET /api/jobs/{id}/deliveries.

Driven by real events appended to a real log (SQLite, or Kafka with PostgreSQL under
HUTCH_TEST_BACKENDS=production), the jobs projection caught up from it, a real HTTP server
receiving webhooks and a real SMTP server (aiosmtpd) receiving mail."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from base.settings import Settings
from hutch.wiring import open_log, open_relational
from ingest.job_triggers import RetryPolicy, TriggerDispatcher, run_forever
from query.jobs.deliveries import JobDeliveries
from schemas.envelope import new_envelope, uuid7
from schemas.events import EventType
from schemas.jobs.events import (
    JobStatusChanged,
    JobSubmitted,
    JobTaskStatusChanged,
    encode,
)
from state.command_context import JOBS
from state.jobs.document import job_document
from state.jobs.reads import deliveries_of, job_by_uuid
from state.relational import catch_up
from storage.log import EventLog
from storage.relational import Relational
from tests.support.admin import hutch
from tests.support.receivers import HttpReceiver, MailReceiver, http_receiver, smtp_receiver
from tests.support.servers import free_port, uvicorn_thread
from tests.support.settings import make_settings
from tests.support.waiting import eventually_async
from web.auth import Authenticator
from web.factory import new_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = RetryPolicy(attempts=4, first_delay_s=0.2, factor=2.0, timeout_s=5.0)
LOOPBACK = "127.0.0.0/8,::1/128"
_numbers = itertools.count(1)


class Jobs:
    """A log and a relational store on the test's settings, jobs appended as events."""

    def __init__(self, settings: Settings, log: EventLog, db: Relational) -> None:
        self.settings = settings
        self.log = log
        self.db = db

    async def append(self, type_: EventType, payload: object, key: str) -> None:
        envelope = new_envelope(type_, encode(asdict(payload)), key=key)  # type: ignore[call-overload]
        await self.log.append("jobs", [envelope])

    async def submit(
        self,
        triggers: list[dict[str, Any]],
        *,
        tags: tuple[str, ...] = (),
        note: str | None = None,
        read: tuple[str, ...] = ("*",),
        tasks: tuple[str, ...] = ("build", "test"),
    ) -> tuple[str, int]:
        uuid, number = uuid7(), next(_numbers)
        submitted = JobSubmitted(
            uuid=uuid,
            number=number,
            tenant_id=uuid7(),
            owner="alice",
            manifest="image: debian/bookworm\n",
            image="debian/bookworm",
            tasks=tasks,
            note=note,
            tags=tags,
            read_access=tuple(dict.fromkeys(("alice", *read))),
            write_access=("alice",),
            execute=True,
            secrets=False,
            vcpus=1,
            cpu_architecture="Amd64",
            timeout_s=3600,
            triggers=tuple(triggers),
        )
        await self.append("job.submitted.v1", submitted, uuid)
        return uuid, number

    async def run_tasks(self, uuid: str, **statuses: str) -> None:
        for task, status in statuses.items():
            await self.append(
                "job.task_status_changed.v1", JobTaskStatusChanged(uuid, task, "running"), uuid
            )
            await self.append(
                "job.task_status_changed.v1", JobTaskStatusChanged(uuid, task, status), uuid
            )

    async def end(self, uuid: str, status: str) -> None:
        await self.append("job.status_changed.v1", JobStatusChanged(uuid, status), uuid)

    async def deliveries(self, uuid: str) -> list[tuple[str, str, int, bool, str]]:
        await catch_up(self.log, self.db, JOBS)
        rows = await asyncio.to_thread(deliveries_of, self.db, uuid)
        return sorted((r["action"], r["target"], r["attempt"], r["ok"], r["detail"]) for r in rows)

    def dispatching(self, policy: RetryPolicy = FAST) -> Dispatching:
        return Dispatching(self, policy)


class Dispatching:
    """The dispatcher running as a task, as the runtime runs it, until the block ends."""

    def __init__(self, jobs: Jobs, policy: RetryPolicy) -> None:
        self.jobs = jobs
        self.policy = policy
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Dispatching:
        j = self.jobs
        self.task = asyncio.create_task(
            run_forever(j.log, j.db, j.settings, stop=self.stop, policy=self.policy)
        )
        return self

    async def crash(self) -> None:
        """Cancel it wherever it is (nothing after that point happens: no record, no commit)."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        self.task = None

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.stop.set()
            await asyncio.wait_for(self.task, 30)


def settings_in(data: Path, **env: str) -> Settings:
    return make_settings(data, HUTCH_PUBLIC_URL="https://hutch.example.org", **env)


@contextlib.asynccontextmanager
async def open_jobs(settings: Settings) -> AsyncIterator[Jobs]:
    log, db = open_log(settings), open_relational(settings)
    db.migrate()
    await log.start()
    try:
        yield Jobs(settings, log, db)
    finally:
        await log.close()
        db.close()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as found:
        yield found


@pytest.fixture
def mailbox() -> Iterator[MailReceiver]:
    with smtp_receiver() as found:
        yield found


@pytest.fixture
async def jobs(tmp_path: Path, mailbox: MailReceiver) -> AsyncIterator[Jobs]:
    env = {
        "HUTCH_WEBHOOK_ALLOW_NETWORKS": LOOPBACK,
        "HUTCH_SMTP_URL": mailbox.url,
        "HUTCH_SMTP_FROM": "Hutch CI <ci@hutch.example.org>",
    }
    async with open_jobs(settings_in(tmp_path / "data", **env)) as found:
        yield found


def webhook(url: str, condition: str = "always") -> dict[str, Any]:
    return {"action": "webhook", "condition": condition, "url": url}


async def until(probe: Callable[[], Any], timeout_s: float = 30) -> Any:
    return await eventually_async(probe, timeout_s, interval_s=0.05)


async def test_a_failing_webhook_is_retried_with_backoff_and_every_attempt_recorded(
    jobs: Jobs, receiver: HttpReceiver
) -> None:
    receiver.answers["/flaky"] = [503, 500]
    uuid, number = await jobs.submit([webhook(f"{receiver.url}/flaky")], tags=("web",), note="n")
    await jobs.run_tasks(uuid, build="success", test="success")
    await jobs.end(uuid, "success")
    async with jobs.dispatching():
        await until(lambda: len(receiver.to("/flaky")) >= 3)
        target = f"{receiver.url}/flaky"
        expected = [
            ("webhook", target, 1, False, "HTTP 503"),
            ("webhook", target, 2, False, "HTTP 500"),
            ("webhook", target, 3, True, "HTTP 200"),
        ]
        assert await until(lambda: _equal(jobs.deliveries(uuid), expected)) == expected

    posts = receiver.to("/flaky")
    assert len(posts) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
    assert gaps[0] >= FAST.delay_s(1) * 0.9, gaps
    assert gaps[1] >= FAST.delay_s(2) * 0.9, gaps  # twice the first: exponential
    assert {p.headers["content-type"] for p in posts} == {"application/json"}
    sent = orjson.loads(posts[-1].body)
    job = job_by_uuid(jobs.db, uuid)
    assert job is not None
    assert sent == job_document(jobs.db, job, jobs.settings.public_url)
    assert (sent["id"], sent["status"], sent["note"], sent["tags"]) == (
        number,
        "success",
        "n",
        ["web"],
    )
    assert sent["setup_log"] == f"https://hutch.example.org/api/jobs/{number}/log"
    assert sent["tasks"] == [
        {
            "name": n,
            "status": "success",
            "log": f"https://hutch.example.org/api/jobs/{number}/tasks/{n}/log",
        }
        for n in ("build", "test")
    ]


async def _equal(got: Awaitable[Any], expected: Any) -> Any:
    value = await got
    return value if value == expected else None


async def test_attempts_stop_at_the_policy_and_a_refusal_is_not_retried(
    jobs: Jobs, receiver: HttpReceiver
) -> None:
    receiver.answers["/down"] = [503] * 10
    receiver.answers["/gone"] = [404] * 10
    uuid, _ = await jobs.submit([webhook(f"{receiver.url}/down"), webhook(f"{receiver.url}/gone")])
    await jobs.end(uuid, "failed")
    async with jobs.dispatching():
        down = [("webhook", f"{receiver.url}/down", n, False, "HTTP 503") for n in (1, 2, 3, 4)]
        gone = [("webhook", f"{receiver.url}/gone", 1, False, "HTTP 404")]
        await until(lambda: _equal(jobs.deliveries(uuid), sorted(down + gone)))
        await asyncio.sleep(FAST.delay_s(4) * 2)  # nothing more comes
    assert (len(receiver.to("/down")), len(receiver.to("/gone"))) == (4, 1)


@pytest.mark.parametrize(
    ("status", "fired"),
    [
        ("success", {"always", "success"}),
        ("failed", {"always", "failure"}),
        ("timeout", {"always", "failure"}),
        ("cancelled", {"always", "failure"}),
    ],
)
async def test_conditions_as_builds_sr_ht_has_them(
    jobs: Jobs, receiver: HttpReceiver, status: str, fired: set[str]
) -> None:
    conditions = ("always", "success", "failure")
    uuid, _ = await jobs.submit([webhook(f"{receiver.url}/{c}", c) for c in conditions])
    unended, _ = await jobs.submit([webhook(f"{receiver.url}/unended")])
    await jobs.end(uuid, status)
    async with jobs.dispatching():
        await until(lambda: _count(jobs.deliveries(uuid), len(fired)))
        await asyncio.sleep(0.5)
    assert {r.path.strip("/") for r in receiver.received} == fired
    assert await jobs.deliveries(unended) == []


async def _count(got: Awaitable[list[Any]], n: int) -> bool:
    return len(await got) >= n


async def test_an_email_reaches_the_mail_server_with_the_triggers_headers(
    jobs: Jobs, mailbox: MailReceiver
) -> None:
    trigger = {
        "action": "email",
        "condition": "failure",
        "to": ["Alice Liddell <alice@example.org>", "bob@example.org"],
        "cc": ["carol@example.org"],
        "in_reply_to": "<patch-1@lists.example.org>",
    }
    uuid, number = await jobs.submit([trigger], tags=("hutch", "ci"), note="Fix the build")
    await jobs.run_tasks(uuid, build="success", test="failed")
    await jobs.end(uuid, "failed")
    async with jobs.dispatching():
        await until(lambda: mailbox.mail)
        target = "Alice Liddell <alice@example.org>, bob@example.org"
        expected = [("email", target, 1, True, "sent to 3 recipient(s)")]
        await until(lambda: _equal(jobs.deliveries(uuid), expected))

    [mail] = mailbox.mail
    assert mail.sender == "ci@hutch.example.org"
    assert mail.recipients == ["alice@example.org", "bob@example.org", "carol@example.org"]
    msg = mail.message
    assert msg["Subject"] == "[hutch/ci] build failed"
    assert msg["From"] == "Hutch CI <ci@hutch.example.org>"
    assert msg["To"] == "Alice Liddell <alice@example.org>, bob@example.org"
    assert msg["Cc"] == "carol@example.org"
    assert msg["In-Reply-To"] == "<patch-1@lists.example.org>"
    assert msg["Message-ID"].endswith("@hutch.example.org>")
    body = msg.get_content().replace("\r\n", "\n")  # as sent: CRLF lines
    assert body.startswith(f"hutch/ci #{number}: FAILED in ")
    assert "\n\nFix the build\n\n" in body
    assert f"https://hutch.example.org/api/jobs/{number}\n" in body
    assert "✓ build ✗ test" in body


async def test_a_temporary_smtp_refusal_is_retried_and_a_permanent_one_is_not(
    jobs: Jobs, mailbox: MailReceiver
) -> None:
    mailbox.refuse["later@example.org"] = ["451 4.3.0 try again later"]
    mailbox.refuse["nobody@example.org"] = ["550 5.1.1 no such user"] * 10
    triggers = [
        {"action": "email", "condition": "always", "to": address}
        for address in ("later@example.org", "nobody@example.org")
    ]
    uuid, _ = await jobs.submit(triggers)
    await jobs.end(uuid, "success")
    expected = [
        ("email", "later@example.org", 1, False, "SMTP: every recipient refused ([451])"),
        ("email", "later@example.org", 2, True, "sent to 1 recipient(s)"),
        ("email", "nobody@example.org", 1, False, "SMTP: every recipient refused ([550])"),
    ]
    async with jobs.dispatching():
        await until(lambda: _equal(jobs.deliveries(uuid), expected))
        await asyncio.sleep(FAST.delay_s(2) * 2)
    assert await jobs.deliveries(uuid) == expected
    assert [m.recipients for m in mailbox.mail] == [["later@example.org"]]


async def test_without_a_mail_server_an_email_is_recorded_as_not_sent(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """No HUTCH_SMTP_URL: the e-mail fails once, with a detail saying why, and the webhook
    beside it still goes out (the dispatcher does not stop)."""
    env = {"HUTCH_WEBHOOK_ALLOW_NETWORKS": LOOPBACK}
    async with open_jobs(settings_in(tmp_path / "data", **env)) as jobs:
        mail = {"action": "email", "condition": "always", "to": "alice@example.org"}
        uuid, _ = await jobs.submit([mail, webhook(f"{receiver.url}/hook")])
        await jobs.end(uuid, "success")
        detail = "no mail server is configured (HUTCH_SMTP_URL); nothing was sent"
        expected = [
            ("email", "alice@example.org", 1, False, detail),
            ("webhook", f"{receiver.url}/hook", 1, True, "HTTP 200"),
        ]
        async with jobs.dispatching():
            await until(lambda: _equal(jobs.deliveries(uuid), expected))
            await asyncio.sleep(FAST.delay_s(1) * 2)
        assert await jobs.deliveries(uuid) == expected


async def test_a_restart_after_a_crash_sends_no_delivered_trigger_twice(
    jobs: Jobs, receiver: HttpReceiver
) -> None:
    """The dispatcher dies while one of a job's webhooks is still in flight (its poll is not
    committed): the restarted one sends that one again, not the one recorded as delivered."""
    receiver.holding.add("/slow")
    uuid, _ = await jobs.submit([webhook(f"{receiver.url}/fast"), webhook(f"{receiver.url}/slow")])
    await jobs.end(uuid, "success")
    fast = ("webhook", f"{receiver.url}/fast", 1, True, "HTTP 200")
    slow = ("webhook", f"{receiver.url}/slow", 1, True, "HTTP 200")
    running = await jobs.dispatching().__aenter__()
    await until(lambda: _equal(jobs.deliveries(uuid), [fast]))
    await until(lambda: receiver.to("/slow"))
    await running.crash()
    receiver.release()

    async with jobs.dispatching():
        await until(lambda: _equal(jobs.deliveries(uuid), [fast, slow]))
        await asyncio.sleep(0.5)
    assert (len(receiver.to("/fast")), len(receiver.to("/slow"))) == (1, 2)


async def test_a_replay_of_the_log_sends_nothing_again(jobs: Jobs, receiver: HttpReceiver) -> None:
    uuid, _ = await jobs.submit([webhook(f"{receiver.url}/once")])
    await jobs.end(uuid, "success")
    async with jobs.dispatching():
        await until(lambda: receiver.to("/once"))
        await until(lambda: _count(jobs.deliveries(uuid), 1))

    records = [
        record
        for partition in await jobs.log.partitions("jobs")
        for record in await jobs.log.read("jobs", partition, 0, 10_000)
    ]
    assert any(r.envelope.type == "job.status_changed.v1" for r in records)
    dispatcher = TriggerDispatcher(jobs.log, jobs.db, jobs.settings, FAST)
    assert await dispatcher.handle(records, asyncio.Event())
    assert len(receiver.to("/once")) == 1
    assert await jobs.deliveries(uuid) == [("webhook", f"{receiver.url}/once", 1, True, "HTTP 200")]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
async def test_a_webhook_to_a_private_address_is_refused_and_recorded(
    tmp_path: Path, receiver: HttpReceiver, host: str
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://{host}:{port}/internal"
    async with open_jobs(settings_in(tmp_path / "data")) as jobs:  # only public addresses
        uuid, _ = await jobs.submit([webhook(url)])
        await jobs.end(uuid, "success")
        async with jobs.dispatching():
            [row] = await until(lambda: jobs.deliveries(uuid))
            await asyncio.sleep(FAST.delay_s(1) * 2)
        assert await jobs.deliveries(uuid) == [row]  # not retried
        action, target, attempt, ok, detail = row
        assert (action, target, attempt, ok) == ("webhook", url, 1, False)
        assert detail.startswith("refused: "), detail
        assert "not public" in detail, detail
    assert receiver.received == []


# GET /api/jobs/{id}/deliveries -------------------------------------------------------------


def _token(settings: Settings, developer: str, *scopes: str) -> str:
    hutch(settings, "developer", "create", developer)
    args = ["token", "create", "--developer", developer, "--name", "-".join(scopes) or "full"]
    code, made = hutch(settings, *args, *(["--scopes", ",".join(scopes)] if scopes else []))
    assert code == 0, made
    return str(made["token"])


def test_deliveries_are_listed_to_those_who_may_read_the_job(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")

    async def setup() -> tuple[int, int]:
        async with open_jobs(settings) as jobs:
            public, public_n = await jobs.submit([webhook("http://10.0.0.1/hook")])
            private, private_n = await jobs.submit([webhook("http://10.0.0.2/hook")], read=())
            for uuid in (public, private):
                await jobs.end(uuid, "success")
            async with jobs.dispatching():
                for uuid in (public, private):
                    await until(lambda uuid=uuid: _count(jobs.deliveries(uuid), 1))
            return public_n, private_n

    public_n, private_n = asyncio.run(setup())
    alice = _token(settings, "alice", "jobs:read")
    alice_writer = _token(settings, "alice", "jobs:write")
    bob = _token(settings, "bob", "jobs:read")

    async def nothing() -> None:
        pass

    db = open_relational(settings)
    resource = JobDeliveries(db, None, Authenticator(db), settings.public_url)  # type: ignore[arg-type]  # no artifacts here
    app = new_app([("/api/jobs/{id}/deliveries", resource)], start=nothing, stop=nothing)
    port = free_port()
    try:
        with uvicorn_thread(app, port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:

            def get(number: int | str, tok: str | None = None) -> httpx.Response:
                headers = {} if tok is None else {"Authorization": f"Bearer {tok}"}
                return c.get(f"/api/jobs/{number}/deliveries", headers=headers)

            answer = get(public_n)
            assert answer.status_code == 200, answer.text
            [row] = answer.json()["deliveries"]
            assert {k: row[k] for k in ("action", "target", "attempt", "ok")} == {
                "action": "webhook",
                "target": "http://10.0.0.1/hook",
                "attempt": 1,
                "ok": False,
            }
            assert row["detail"].startswith("refused: ")
            assert row["at"].endswith("Z")

            assert get(private_n, alice).json()["deliveries"][0]["target"] == "http://10.0.0.2/hook"
            for who in (None, bob):
                answer = get(private_n, who)
                assert answer.status_code == 404, answer.text
                assert answer.json()["error"]["code"] == "no_job"
            answer = get(private_n, alice_writer)
            assert answer.status_code == 403, answer.text
            assert "jobs:read" in answer.json()["error"]["message"]
            assert get("nope").status_code == 404
            assert get(10**6).status_code == 404
    finally:
        db.close()
