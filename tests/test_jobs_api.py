"""CI jobs over HTTP as builds.sr.ht and Builtiful clients use them: submit, read, start,
cancel, list (per developer and per tenant), and the provisioners' side: dequeue exactly once,
leases, reports, logs and artifacts (docs/jobs.md)."""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.admin import hutch
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MANIFEST = """\
image: debian/bookworm
packages:
  - curl
sources:
  - https://example.com/repo.git
environment:
  GREETING: hello
tasks:
  - build: |
      echo building
  - test: |
      echo testing
artifacts:
  - out/app.tar.gz
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("jobs") / "data", HUTCH_JOB_LEASE="5")


def token(server: Server, developer: str, *scopes: str) -> str:
    hutch(server.settings, "developer", "create", developer)
    args = ["token", "create", "--developer", developer, "--name", "-".join(scopes) or "full"]
    if scopes:
        args += ["--scopes", ",".join(scopes)]
    code, made = hutch(server.settings, *args)
    assert code == 0, made
    return str(made["token"])


def provisioner(server: Server, name: str = "host-1") -> str:
    code, made = hutch(server.settings, "provisioner", "create", name)
    assert code == 0, made
    assert made["token"].startswith("hp_")
    return str(made["token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def submit(server: Server, tok: str, **fields: Any) -> httpx.Response:
    with server.client(**bearer(tok)) as c:
        return c.post("/api/jobs", json={"manifest": MANIFEST, **fields})


LEASED: list[tuple[Server, str, dict[str, Any]]] = []
"""Jobs tests dequeued: ended after each test, so that no lease lapses into the next one
(the lease is 5 s here, and a lapsed job is handed out again, oldest first)."""


def dequeue(server: Server, prov: str, vcpus: int = 4, arch: str = "Amd64") -> Any:
    params = {"available_vcpus": str(vcpus), "cpu_architecture": arch, "host": "h1"}
    with server.client(**bearer(prov)) as c:
        answer = c.get("/api/provisioner/dequeue", params=params)
    assert answer.status_code == 200, answer.text
    job = answer.json()["new_job"]
    if job is not None:
        LEASED.append((server, prov, job))
    return job


@pytest.fixture(autouse=True)
def _end_leased_jobs() -> Iterator[None]:
    yield
    while LEASED:
        server, prov, job = LEASED.pop()
        with server.client(**bearer(prov)) as c:  # a 409 when it ended or moved on: fine
            c.post(
                f"/api/runner/jobs/{job['uuid']}/status",
                json={"lease_id": job["lease_id"], "status": "failed"},
            )


@pytest.fixture(scope="module")
def ann(server: Server) -> str:
    return token(server, "ann", "jobs:read", "jobs:write")


def test_a_submitted_job_reads_back_as_builds_sr_ht_shows_it(server: Server, ann: str) -> None:
    answer = submit(server, ann, note="first", tags=["ci", "v1.0"], execute=False)
    assert answer.status_code == 201, answer.text
    number = answer.json()["id"]
    assert isinstance(number, int)
    with server.client(**bearer(ann)) as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert (job["id"], job["status"], job["owner"], job["note"]) == (
            number,
            "pending",
            "ann",
            "first",
        )
        assert job["tags"] == ["ci", "v1.0"]
        assert [(t["name"], t["status"]) for t in job["tasks"]] == [
            ("build", "pending"),
            ("test", "pending"),
        ]
        assert job["setup_log"].endswith(f"/api/jobs/{number}/log")
        assert job["tasks"][0]["log"].endswith(f"/api/jobs/{number}/tasks/build/log")
        manifest = c.get(f"/api/jobs/{number}/manifest")
        assert manifest.headers["content-type"].startswith("text/plain")
        assert manifest.text == MANIFEST
        assert c.post(f"/api/jobs/{number}/start").json() == {}
        assert c.get(f"/api/jobs/{number}").json()["status"] == "queued"
        again = c.post(f"/api/jobs/{number}/start")
        assert again.status_code == 400
        assert "queued" in error_of(again)["message"]


def test_job_numbers_increase(server: Server, ann: str) -> None:
    first = submit(server, ann, execute=False).json()["id"]
    second = submit(server, ann, execute=False).json()["id"]
    assert second == first + 1


BOMB = "image: debian/bookworm\ntasks:\n  - a: x\n" + "".join(
    f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" if n else "l0: &l0 [lol]\n"
    for n in range(10)
)
"""Billion laughs: ten levels of nine aliases each."""


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"manifest": "image: [unclosed"}, 422, "manifest"),
        ({"manifest": "image: debian/bookworm\n"}, 422, "manifest.tasks"),
        ({"manifest": MANIFEST, "tags": ["Bad Tag"]}, 422, "tags"),
        ({"manifest": MANIFEST, "tags": "ci"}, 400, "tags"),
        ({"manifest": MANIFEST, "execute": "yes"}, 400, "execute"),
        ({"manifest": MANIFEST, "access:write": ["*"]}, 422, "access:write"),
        ({"manifest": MANIFEST, "note": "a\x00b"}, 422, "note"),  # PostgreSQL text has no NUL
        ({"manifest": 7}, 400, "manifest"),
        ({}, 400, "manifest"),
        ({"manifest": MANIFEST + "secrets:\n  - not-a-uuid\n"}, 422, "manifest.secrets[0]"),
        (
            {"manifest": "image: debian/bookworm\ntasks:\n  - a: x\n  - a: y\n"},
            422,
            "manifest.tasks[1]",
        ),
        (
            {
                "manifest": "image: debian/bookworm\ntasks:\n  - a: x\ntriggers:\n  - {action: irc, condition: always}\n"
            },
            422,
            "manifest.triggers[0].action",
        ),
        ({"manifest": BOMB}, 422, "manifest"),
        ({"manifest": MANIFEST + "#" + "x" * 70_000 + "\n"}, 422, "manifest"),
        (
            {"manifest": MANIFEST + "secrets:\n  - 0190c0de-0000-7000-8000-000000000000\n"},
            422,
            "manifest.secrets[0]",
        ),
    ],
)
def test_bad_submissions_are_refused_clearly(
    server: Server, ann: str, body: dict[str, Any], status: int, field: str
) -> None:
    with server.client(**bearer(ann)) as c:
        before = c.get("/api/jobs").json()["results"]
        answer = c.post("/api/jobs", json=body)
        assert answer.status_code == status, answer.text
        assert error_of(answer)["field"] == field
        assert c.get("/api/jobs").json()["results"] == before  # nothing half-created


def test_a_broken_manifest_names_its_line(server: Server, ann: str) -> None:
    text = "image: debian/bookworm\ntasks:\n  - Bad Name: echo\n"
    with server.client(**bearer(ann)) as c:
        message = error_of(c.post("/api/jobs", json={"manifest": text}))["message"]
    assert "line 3" in message


def test_scopes_decide(server: Server) -> None:
    reader = token(server, "rita", "jobs:read")
    answer = submit(server, reader)
    assert answer.status_code == 403
    assert "jobs:write" in error_of(answer)["message"]
    full = token(server, "rita")
    assert submit(server, full).status_code == 201
    with server.client(**bearer(reader)) as c:
        refused = c.get("/api/apps")
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "missing_scope"


def test_scoped_tokens_over_http(server: Server) -> None:
    full = token(server, "sam")
    with server.client(**bearer(full)) as c:
        made = c.post("/api/tokens", json={"name": "ci", "scopes": ["jobs:read", "jobs:write"]})
        assert made.status_code == 201, made.text
        assert made.json()["scopes"] == ["jobs:read", "jobs:write"]
        bad = c.post("/api/tokens", json={"name": "x", "scopes": ["jobs:admin"]})
        assert (bad.status_code, error_of(bad)["field"]) == (422, "scopes")
        assert "jobs:admin" in error_of(bad)["message"]
        wrong = c.post("/api/tokens", json={"name": "y", "scopes": "jobs:read"})
        assert (wrong.status_code, error_of(wrong)["code"]) == (400, "bad_type")
    scoped = made.json()["token"]
    assert submit(server, scoped).status_code == 201
    with server.client(**bearer(scoped)) as c:
        refused = c.post("/api/tokens", json={"name": "z"})  # a CI token mints no tokens
        assert (refused.status_code, error_of(refused)["code"]) == (403, "missing_scope")


def test_access_lists(server: Server, ann: str) -> None:
    bob = token(server, "bob", "jobs:read", "jobs:write")
    private = submit(server, ann, execute=False, **{"access:read": []}).json()["id"]
    public = submit(server, ann, execute=False).json()["id"]
    shared = submit(server, ann, execute=False, **{"access:write": ["bob"]}).json()["id"]
    with server.client(**bearer(bob)) as c:
        assert c.get(f"/api/jobs/{private}").status_code == 404
        assert c.get(f"/api/jobs/{private}/manifest").status_code == 404
        assert c.post(f"/api/jobs/{private}/start").status_code == 404
        assert c.get(f"/api/jobs/{public}").status_code == 200
        assert c.post(f"/api/jobs/{public}/start").status_code == 404  # read, not write
        assert c.post(f"/api/jobs/{shared}/start").json() == {}
    with server.client() as anonymous:
        assert anonymous.get(f"/api/jobs/{public}").status_code == 200
        assert anonymous.get(f"/api/jobs/{private}").status_code == 404
        assert anonymous.post("/api/jobs", json={"manifest": MANIFEST}).status_code == 401


def test_cancel(server: Server, ann: str) -> None:
    pending = submit(server, ann, execute=False).json()["id"]
    with server.client(**bearer(ann)) as c:
        assert c.post(f"/api/jobs/{pending}/cancel").json() == {}
        assert c.get(f"/api/jobs/{pending}").json()["status"] == "cancelled"
        again = c.post(f"/api/jobs/{pending}/cancel")
        assert again.status_code == 409
        assert "cancelled" in error_of(again)["message"]
        assert c.post(f"/api/jobs/{pending}/start").status_code == 400


def test_the_developers_listing_pages_newest_first(server: Server) -> None:
    cleo = token(server, "cleo", "jobs:read", "jobs:write")
    numbers = [submit(server, cleo, execute=False).json()["id"] for _ in range(5)]
    with server.client(**bearer(cleo)) as c:
        first = c.get("/api/jobs", params={"limit": "2"}).json()
        assert [j["id"] for j in first["results"]] == numbers[::-1][:2]
        rest = c.get("/api/jobs", params={"limit": "10", "cursor": first["next"]}).json()
        assert [j["id"] for j in rest["results"]] == numbers[::-1][2:]
        assert rest["next"] is None
        assert c.get("/api/jobs", params={"cursor": "garbage"}).status_code == 400


def test_a_tenants_jobs_page_with_uuid_cursors(server: Server) -> None:
    code, made = hutch(server.settings, "developer", "create", "dora")
    assert code == 0, made
    tenant = made["tenant"]
    dora = token(server, "dora", "jobs:read", "jobs:write")
    numbers = [submit(server, dora, execute=False).json()["id"] for _ in range(5)]
    with server.client(**bearer(dora)) as c:
        page = c.get(f"/api/tenants/{tenant}/jobs", params={"limit": "2"}).json()
        assert page["total_count"] == 5
        assert [j["id"] for j in page["jobs"]] == numbers[::-1][:2]
        after = page["jobs"][-1]["uuid"]
        older = c.get(f"/api/tenants/{tenant}/jobs", params={"limit": "2", "starting_after": after})
        assert [j["id"] for j in older.json()["jobs"]] == numbers[::-1][2:4]
        before = older.json()["jobs"][0]["uuid"]
        newer = c.get(f"/api/tenants/{tenant}/jobs", params={"limit": "2", "ending_before": before})
        assert [j["id"] for j in newer.json()["jobs"]] == numbers[::-1][:2]
        both = c.get(
            f"/api/tenants/{tenant}/jobs", params={"starting_after": after, "ending_before": after}
        )
        assert both.status_code == 400
        assert error_of(both)["code"] == "bad_cursor"
        assert c.get(f"/api/tenants/{tenant}/jobs", params={"limit": "101"}).status_code == 400
    eve = token(server, "eve", "jobs:read")
    with server.client(**bearer(eve)) as c:
        assert c.get(f"/api/tenants/{tenant}/jobs").status_code == 404


def test_dequeue_hands_each_job_to_exactly_one_of_many_hosts(server: Server) -> None:
    fay = token(server, "fay", "jobs:read", "jobs:write")
    prov = provisioner(server, "many")
    while dequeue(server, prov) is not None:  # what other tests left queued
        pass
    numbers = {submit(server, fay).json()["id"] for _ in range(24)}
    got: list[tuple[int, float, float]] = []
    """(job, when it was handed out, when its lease ends): wall-clock seconds."""
    lock = threading.Lock()

    def host() -> None:
        # Each job ends as soon as it is handed out. On a loaded machine the end may still
        # come after the lease (5 s here), and the lapsed job is rightly handed out again;
        # a duplicate is a second hand-out while the first lease is live.
        while (job := dequeue(server, prov)) is not None:
            until = datetime.fromisoformat(job["lease_expires_at"].replace("Z", "+00:00"))
            with lock:
                got.append((job["id"], time.time(), until.timestamp()))
            report = {"lease_id": job["lease_id"], "status": "success"}
            with server.client(**bearer(prov)) as c:
                c.post(f"/api/runner/jobs/{job['uuid']}/status", json=report)

    threads = [threading.Thread(target=host) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    mine = sorted(g for g in got if g[0] in numbers)
    assert {g[0] for g in mine} == numbers  # every job handed out
    for (first, _, lease_end), (again, handed, _) in itertools.pairwise(mine):
        if again == first:  # handed out twice: only once the first lease had run out
            assert handed >= lease_end, (first, handed, lease_end)


def test_the_dequeued_job_carries_what_a_runner_needs(server: Server) -> None:
    gus = token(server, "gus", "jobs:read", "jobs:write")
    prov = provisioner(server, "shape")
    while dequeue(server, prov) is not None:
        pass
    big = MANIFEST + "vcpus: 8\n"
    arm = MANIFEST + "arch: aarch64\n"
    with server.client(**bearer(gus)) as c:
        big_id = c.post("/api/jobs", json={"manifest": big}).json()["id"]
        arm_id = c.post("/api/jobs", json={"manifest": arm}).json()["id"]
    assert dequeue(server, prov, vcpus=4) is None  # the 8-vCPU job does not fit, arm64 neither
    job = dequeue(server, prov, vcpus=8)
    assert job["id"] == big_id
    assert (job["image"], job["vcpus"], job["cpu_architecture"]) == ("debian/bookworm", 8, "Amd64")
    assert [t["name"] for t in job["tasks"]] == ["build", "test"]
    assert job["environment"] == {"GREETING": "hello"}
    assert job["sources"] == ["https://example.com/repo.git"]
    assert job["artifacts"] == ["out/app.tar.gz"]
    assert job["secrets"] == []
    assert dequeue(server, prov, arch="Arm64")["id"] == arm_id


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cpu_architecture": "Amd64", "host": "h"}, "available_vcpus"),
        ({"available_vcpus": "0", "cpu_architecture": "Amd64", "host": "h"}, "available_vcpus"),
        ({"available_vcpus": "2", "cpu_architecture": "x86", "host": "h"}, "cpu_architecture"),
        ({"available_vcpus": "2", "cpu_architecture": "Amd64"}, "host"),
    ],
)
def test_bad_dequeues(server: Server, params: dict[str, str], field: str) -> None:
    prov = provisioner(server, f"bad-{field}")
    with server.client(**bearer(prov)) as c:
        answer = c.get("/api/provisioner/dequeue", params=params)
    assert (answer.status_code, error_of(answer)["field"]) == (400, field)


def test_only_provisioners_dequeue(server: Server, ann: str) -> None:
    params = {"available_vcpus": "2", "cpu_architecture": "Amd64", "host": "h"}
    with server.client(**bearer(ann)) as c:
        assert c.get("/api/provisioner/dequeue", params=params).status_code == 403
    with server.client(**bearer("hp_" + "0" * 64)) as c:
        assert c.get("/api/provisioner/dequeue", params=params).status_code == 401


def test_a_runner_reports_a_job_through_to_success(server: Server) -> None:
    hal = token(server, "hal", "jobs:read", "jobs:write")
    prov = provisioner(server, "reporter")
    while dequeue(server, prov) is not None:
        pass
    number = submit(server, hal).json()["id"]
    job = dequeue(server, prov)
    assert job["id"] == number
    lease = {"lease_id": job["lease_id"]}
    base = f"/api/runner/jobs/{job['uuid']}"
    with server.client(**bearer(prov)) as c:
        running = c.post(f"{base}/status", json={**lease, "status": "running"}).json()
        assert running["cancel_requested"] is False
        for task in ("setup", "build", "test"):
            assert (
                c.post(
                    f"{base}/tasks/{task}/status", json={**lease, "status": "running"}
                ).status_code
                == 200
            )
            assert (
                c.post(
                    f"{base}/tasks/{task}/status", json={**lease, "status": "success"}
                ).status_code
                == 200
            )
        backwards = c.post(f"{base}/tasks/build/status", json={**lease, "status": "running"})
        assert backwards.status_code == 409
        lines = [{"task": "build", "line": f"line {n}"} for n in range(3)]
        logged = c.post(f"{base}/logs", json={**lease, "first": 0, "lines": lines})
        assert logged.json() == {"accepted": 3}
        bad = c.post(f"{base}/logs", json={**lease, "lines": [{"task": "nope", "line": "x"}]})
        assert bad.status_code == 422
        put = c.put(
            f"{base}/artifacts", params={**lease, "path": "out/app.tar.gz"}, content=b"tarball"
        )
        assert put.status_code == 201, put.text
        other = c.put(f"{base}/artifacts", params={**lease, "path": "etc/passwd"}, content=b"x")
        assert other.status_code == 422
        done = c.post(f"{base}/status", json={**lease, "status": "success"})
        assert done.status_code == 200
        late = c.post(f"{base}/status", json={**lease, "status": "running"})
        assert late.status_code == 409
    with server.client(**bearer(hal)) as c:
        shown = c.get(f"/api/jobs/{number}").json()
    assert shown["status"] == "success"
    assert [t["status"] for t in shown["tasks"]] == ["success", "success"]
    assert shown["artifacts"][0]["path"] == "out/app.tar.gz"
    assert shown["artifacts"][0]["size"] == 7
    assert httpx.get(shown["artifacts"][0]["url"]).content == b"tarball"


def test_a_silent_host_loses_the_job_and_another_takes_it(server: Server) -> None:
    ida = token(server, "ida", "jobs:read", "jobs:write")
    quiet, other = provisioner(server, "quiet"), provisioner(server, "other")
    while dequeue(server, other) is not None:
        pass
    number = submit(server, ida).json()["id"]
    first = dequeue(server, quiet)
    assert first["id"] == number
    second = eventually(lambda: dequeue(server, other), timeout_s=20, interval_s=0.3)
    assert second["id"] == number
    assert second["lease_id"] != first["lease_id"]
    with server.client(**bearer(quiet)) as c:
        stale = c.post(
            f"/api/runner/jobs/{first['uuid']}/status",
            json={"lease_id": first["lease_id"], "status": "running"},
        )
    assert stale.status_code == 409
    assert error_of(stale)["code"] == "lease_lost"


def test_cancelling_a_running_job_tells_its_runner(server: Server) -> None:
    jo = token(server, "jo", "jobs:read", "jobs:write")
    prov = provisioner(server, "cancel")
    while dequeue(server, prov) is not None:
        pass
    number = submit(server, jo).json()["id"]
    job = dequeue(server, prov)
    base = f"/api/runner/jobs/{job['uuid']}"
    with server.client(**bearer(jo)) as c:
        assert c.post(f"/api/jobs/{number}/cancel").json() == {}
    with server.client(**bearer(prov)) as c:
        answer = c.post(f"{base}/status", json={"lease_id": job["lease_id"], "status": "running"})
        assert answer.json()["cancel_requested"] is True
        c.post(f"{base}/status", json={"lease_id": job["lease_id"], "status": "cancelled"})
    with server.client(**bearer(jo)) as c:
        assert c.get(f"/api/jobs/{number}").json()["status"] == "cancelled"


def test_a_developer_gets_a_personal_tenant(server: Server) -> None:
    code, made = hutch(server.settings, "developer", "create", "kim")
    assert code == 0
    assert made["developer"] == "kim"
    assert uuid.UUID(made["tenant"]).version == 7


def test_a_job_whose_secret_is_gone_fails_at_dequeue(server: Server) -> None:
    full = token(server, "una")
    with server.client(**bearer(full)) as c:
        secret = c.post(
            "/api/secrets",
            json={"name": "k", "type": "ssh_key", "data": base64.b64encode(b"key").decode()},
        ).json()["id"]
        number = c.post(
            "/api/jobs", json={"manifest": MANIFEST + f"secrets:\n  - {secret}\n"}
        ).json()["id"]
        assert c.delete(f"/api/secrets/{secret}").status_code == 200
    prov = provisioner(server, "gone")
    eventually(lambda: dequeue(server, prov) is None, timeout_s=10)  # it is not handed out
    with server.client(**bearer(full)) as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert job["status"] == "failed"
        assert [t["status"] for t in job["tasks"]] == ["skipped", "skipped"]
        log = eventually(lambda: (t := c.get(job["setup_log"]).text) and secret in t and t)
    assert "cannot be handed to a runner" in log
