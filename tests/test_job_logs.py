"""CI job logs: `job.log.v1` batches -> job_logs (projections/job_logs.py) -> the log routes
(query/jobs/logs.py) and POST /api/sql, scoped by tenant.

The transform is tested alone; the rest through a real server whose log the test appends
job events to, as the job commands and the runner API write them."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from projections.job_logs import TABLE, JobLogsProjection, transform
from schemas.envelope import new_envelope
from state import identity_reads as qi
from storage.log import Record
from tests.support.admin import developer_with_app, hutch
from tests.support.job_events import append, log_batch, submitted
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.waiting import eventually

TEXT = "text/plain; charset=utf-8"


def record(offset: int, type_: Any, payload: object) -> Record:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return Record("jobs", 0, offset, new_envelope(type_, body, key="k"))


def batch(**changes: Any) -> dict[str, Any]:
    lines = [{"task": "build", "line": "make", "at": 1_700_000_000_123_456_789}]
    return {
        "uuid": "j-1",
        "number": 7,
        "tenant_id": "t-1",
        "lease_id": "l",
        "first": 40,
        "lines": [*lines, {"task": "build", "line": "ok ✓", "at": 5}],
        **changes,
    }


def test_a_batch_becomes_rows_numbered_from_its_first_line() -> None:
    rows = transform([record(0, "job.log.v1", batch())])[TABLE]
    assert rows == {
        "Tenant": ["t-1", "t-1"],
        "JobNumber": [7, 7],
        "JobUuid": ["j-1", "j-1"],
        "Task": ["build", "build"],
        "Seq": [40, 41],
        "Timestamp": ["1700000000.123456789", "0000000000.000000005"],
        "Line": ["make", "ok ✓"],
    }


def test_other_job_events_make_no_rows() -> None:
    status = {"uuid": "j-1", "status": "success"}
    assert transform([record(0, "job.status_changed.v1", status)]) == {}
    empty = transform([record(0, "job.log.v1", batch(lines=[]))])
    assert empty == {}


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        orjson.dumps({k: v for k, v in batch().items() if k != "tenant_id"}),
        orjson.dumps(batch(first=-1)),
        orjson.dumps(batch(first=2**64 - 1)),  # its second line would be past UInt64
        orjson.dumps(batch(number=True)),
        orjson.dumps(batch(uuid=5)),
        orjson.dumps(batch(lines="make")),
        orjson.dumps(batch(lines=[{"task": "build", "line": "x", "at": 1}, "y"])),
        orjson.dumps(batch(lines=[{"task": "build", "line": 3, "at": 1}])),
        orjson.dumps(batch(lines=[{"task": "build", "line": "x", "at": 1.5}])),
        orjson.dumps(batch(lines=[{"task": None, "line": "x", "at": 1}])),
        orjson.dumps(batch(lines=[{"line": "x", "at": 1}])),
    ],
)
def test_a_malformed_batch_is_skipped_whole(payload: bytes) -> None:
    good = record(1, "job.log.v1", batch(uuid="j-2", first=0))
    rows = transform([record(0, "job.log.v1", payload), good])[TABLE]
    assert isinstance(rows, dict)
    assert rows["JobUuid"] == ["j-2", "j-2"]
    assert rows["Seq"] == [0, 1]


def test_the_table_keeps_lines_for_the_retention_setting() -> None:
    (ddl,) = JobLogsProjection(12).ddl()
    assert "toIntervalDay(12)" in ddl
    assert "ORDER BY (Tenant, JobUuid, Seq)" in ddl


# Through a server ------------------------------------------------------------------------


def token_with_scopes(server: Server, developer: str, scopes: str) -> str:
    code, created = hutch(
        server.settings, "token", "create", "--developer", developer, "--scopes", scopes
    )
    assert code == 0, created
    return str(created["token"])


def get(server: Server, path: str, token: str | None = None, **params: str) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with server.client(**headers) as c:
        return c.get(path, params=params)


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    settings = server.settings
    _, alice = developer_with_app(settings, "alice", "alice-app")
    _, bob = developer_with_app(settings, "bob", "bob-app")
    _, carol = developer_with_app(settings, "carol", "carol-app")
    db = server.runtime.db  # type: ignore[attr-defined]
    tenants = {}
    for name in ("alice", "bob", "carol"):
        tenant = qi.personal_tenant(db, name)
        assert tenant is not None
        tenants[name] = tenant.id
    alice_t, bob_t = tenants["alice"], tenants["bob"]
    private, private_submitted = submitted(1, alice_t, "alice", read=("carol",))
    public, public_submitted = submitted(2, alice_t, "alice", read=("*",))
    bobs, bobs_submitted = submitted(3, bob_t, "bob", read=())
    retried = log_batch(private, 1, alice_t, 2, [("build", "b0"), ("build", "b1"), ("build", "b2")])
    append(
        settings,
        [
            private_submitted,
            public_submitted,
            bobs_submitted,
            log_batch(private, 1, alice_t, 0, [("setup", "s0"), ("setup", "s1")]),
            # The runner sent the setup lines again (its answer was lost): the same numbers.
            log_batch(private, 1, alice_t, 0, [("setup", "s0"), ("setup", "s1")]),
            # A later batch projected before an earlier one: reads follow the numbers.
            log_batch(private, 1, alice_t, 5, [("test", "t0")]),
            retried,
            log_batch(public, 2, alice_t, 0, [("build", "public line")]),
            log_batch(bobs, 3, bob_t, 0, [("build", "bob-only-line")]),
        ],
    )
    eventually(
        lambda: (
            get(server, "/api/jobs/1/tasks/build/log", alice).text == "b0\nb1\nb2\n"
            and get(server, "/api/jobs/3/tasks/build/log", bob).text == "bob-only-line\n"
        )
    )
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "tenants": tenants,
        "private": private,
        "retried": retried,
        "bob_read": token_with_scopes(server, "bob", "jobs:read"),
        "bob_write": token_with_scopes(server, "bob", "jobs:write"),
    }


def test_lines_come_back_in_order_one_per_line(server: Server, world: dict[str, Any]) -> None:
    for path, text in (
        ("/api/jobs/1/log", "s0\ns1\n"),
        ("/api/jobs/1/tasks/build/log", "b0\nb1\nb2\n"),
        ("/api/jobs/1/tasks/test/log", "t0\n"),
    ):
        answer = get(server, path, world["alice"])
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == TEXT
        assert answer.text == text


def test_a_retried_batch_shows_once(server: Server, world: dict[str, Any]) -> None:
    """The runner sent the build lines again (same numbers, a new event): once the batch
    after the retry is readable, the retry has been projected too (one job, one partition)."""
    uuid, tenant = world["private"], world["tenants"]["alice"]
    again = new_envelope("job.log.v1", world["retried"].payload, key=uuid)
    append(server.settings, [again, log_batch(uuid, 1, tenant, 6, [("test", "t1")])])
    eventually(lambda: get(server, "/api/jobs/1/tasks/test/log", world["alice"]).text == "t0\nt1\n")
    assert get(server, "/api/jobs/1/tasks/build/log", world["alice"]).text == "b0\nb1\nb2\n"


def test_another_developer_cannot_read_a_private_job(server: Server, world: dict[str, Any]) -> None:
    for path in ("/api/jobs/1/log", "/api/jobs/1/tasks/build/log"):
        for token in (world["bob"], world["bob_read"], None):
            answer = get(server, path, token)
            assert answer.status_code == 404, answer.text
            assert error_of(answer)["code"] == "no_job"
            assert "b0" not in answer.text
            assert "s0" not in answer.text
        named = get(server, path, world["carol"])  # carol is in its access:read
        assert named.status_code == 200, named.text
    assert get(server, "/api/jobs/3/tasks/build/log", world["alice"]).status_code == 404


def test_anyone_can_read_a_public_job(server: Server, world: dict[str, Any]) -> None:
    for token in (world["bob"], world["bob_read"], None):
        answer = get(server, "/api/jobs/2/tasks/build/log", token)
        assert answer.status_code == 200, answer.text
        assert answer.text == "public line\n"
    assert get(server, "/api/jobs/2/log", None).text == ""


def test_a_credential_given_is_checked_and_needs_jobs_read(
    server: Server, world: dict[str, Any]
) -> None:
    refused = get(server, "/api/jobs/2/tasks/build/log", world["bob_write"])
    assert refused.status_code == 403, refused.text
    assert error_of(refused)["code"] == "missing_scope"
    assert "jobs:read" in error_of(refused)["message"]
    unknown = get(server, "/api/jobs/2/tasks/build/log", "bh_" + "0" * 64)
    assert unknown.status_code == 401, unknown.text


def test_unknown_jobs_and_tasks_are_404(server: Server, world: dict[str, Any]) -> None:
    for path, code in (
        ("/api/jobs/1/tasks/nope/log", "no_task"),
        ("/api/jobs/1/tasks/setup/log", "no_task"),  # the setup log is /api/jobs/1/log
        ("/api/jobs/999/log", "no_job"),
        ("/api/jobs/abc/log", "no_job"),
        ("/api/jobs/²/log", "no_job"),  # a digit to str.isdigit, not to int()
        ("/api/jobs/999/tasks/build/log", "no_job"),
    ):
        answer = get(server, path, world["alice"])
        assert answer.status_code == 404, (path, answer.text)
        assert error_of(answer)["code"] == code, path


def test_since_follows_a_running_job(server: Server, world: dict[str, Any]) -> None:
    path, alice = "/api/jobs/1/tasks/build/log", world["alice"]
    whole = get(server, path, alice)
    assert whole.headers["hutch-log-next"] == "5"  # build holds lines 2, 3 and 4
    tail = get(server, path, alice, since="3")
    assert (tail.text, tail.headers["hutch-log-next"]) == ("b1\nb2\n", "5")
    nothing_yet = get(server, path, alice, since="5")
    assert (nothing_yet.text, nothing_yet.headers["hutch-log-next"]) == ("", "5")
    for bad in ("-1", "x", "1.5", "²", "٣", " 1", str(2**64)):
        answer = get(server, path, alice, since=bad)
        assert answer.status_code == 400, answer.text
        assert error_of(answer)["field"] == "since"


def sql(server: Server, token: str, text: str) -> httpx.Response:
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.post("/api/sql", json={"sql": text})


def test_sql_sees_only_the_callers_tenants_job_logs(server: Server, world: dict[str, Any]) -> None:
    tenants = world["tenants"]
    query = "SELECT DISTINCT Tenant, JobNumber, Line FROM job_logs ORDER BY JobNumber, Line"
    mine = sql(server, world["alice"], query)
    assert mine.status_code == 200, mine.text
    rows = mine.json()["rows"]
    assert {row[0] for row in rows} == {tenants["alice"]}
    assert {"s0", "b0", "t0", "public line"} <= {row[2] for row in rows}
    assert "bob-only-line" not in mine.text
    assert tenants["bob"] not in mine.text
    theirs = sql(server, world["bob"], query)
    assert theirs.json()["rows"] == [[tenants["bob"], "3", "bob-only-line"]], theirs.text
    # carol may read alice's private job through its route, but is no member of her tenant.
    assert sql(server, world["carol"], "SELECT count() FROM job_logs").json()["rows"] == [["0"]]
    # A batch sent twice is there twice until a merge, but SQL reads each line once.
    once = sql(
        server, world["alice"], "SELECT count(), uniqExact(Seq) FROM job_logs WHERE JobNumber = 1"
    )
    counted, distinct = once.json()["rows"][0]
    assert counted == distinct, once.text
    named = sql(
        server, world["bob"], f"SELECT count() FROM job_logs WHERE Tenant = '{tenants['alice']}'"
    )
    assert named.json()["rows"] == [["0"]], named.text
