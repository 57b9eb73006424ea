"""GitHub's webhooks over real HTTP, sent by the GitHub stand-in (tests/support/github_standin.py)
as GitHub sends them, to a Hutch server configured for it: signatures, replays, ping,
installations and their repositories, pushes that make jobs from the repository's manifests
(listed on the tenant's jobs by a member who signed in with GitHub), and a replay of the log
rebuilding the same tenants, installations, deliveries and jobs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from base.settings import Settings
from ingest.github_push import job_uuid
from ingest.github_webhooks import MAX_BODY
from schemas.jobs.events import JobSubmitted
from tests.support import job_events
from tests.support.admin import hutch, log_ends
from tests.support.github_standin import GitHubStandIn
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

BUILD = """\
image: debian/bookworm
sources:
  - {url}
  - https://example.com/other/lib.git#v1
tasks:
  - build: |
      make
"""
LINUX = "image: alpine/edge\ntasks:\n  - test: make check\n"
BROKEN = "image: debian/bookworm\ntasks:\n  - test: make check\nartifact:\n  - out\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("webhooks") / "data", **github.env)


def hook(server: Server) -> str:
    return f"{server.url}/api/github/webhook"


def ends(settings: Settings) -> tuple[dict[int, int], dict[int, int]]:
    return log_ends(settings, "apps"), log_ends(settings, "jobs")


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def browser(server: Server, github: GitHubStandIn, login: str) -> httpx.Client:
    """A browser signed in to Hutch with GitHub as `login` (cookies kept across redirects)."""
    github.sign_in(login)
    client = httpx.Client(base_url=server.url, follow_redirects=True, timeout=30)
    answer = client.get("/api/auth/github/login", params={"redirect_uri": "/api/user"})
    assert answer.status_code == 200, answer.text
    return client


def org(github: GitHubStandIn, server: Server, name: str, files: dict[str, str]) -> dict[str, Any]:
    """An organisation `name` with a member `{name}-dev`, a repository `{name}/app` whose
    main branch holds `files`, and the App installed on it (its webhook sent): the
    installation id, the tenant id, the commit, and the member's signed-in browser."""
    member = f"{name}-dev"
    github.add_user(member, name=f"Dev of {name}", email=f"{member}@example.org")
    github.add_org(name, members=[member])
    sha = github.commit(f"{name}/app", files, message=f"Build {name}\n\nMore words.")
    installation = github.install(name)
    payload = github.installation_payload("created", installation)
    answer = github.send_webhook(hook(server), "installation", payload)
    assert answer.status_code == 200, answer.text
    return {
        "installation": installation,
        "tenant": answer.json()["tenant"],
        "sha": sha,
        "member": member,
        "browser": browser(server, github, member),
    }


def tenant_jobs(client: httpx.Client, tenant: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/tenants/{tenant}/jobs", params={"limit": "100"})
    assert answer.status_code == 200, answer.text
    jobs: list[dict[str, Any]] = answer.json()["jobs"]
    return jobs


def push(github: GitHubStandIn, server: Server, repo: str, sha: str, **kw: Any) -> httpx.Response:
    delivery = kw.pop("delivery", None)
    payload = github.push_payload(repo, sha, **kw)
    return github.send_webhook(hook(server), "push", payload, delivery=delivery)


# --- signatures, headers, bodies -----------------------------------------------------------


def test_without_a_webhook_secret_webhooks_are_not_configured(
    tmp_path: Path, github: GitHubStandIn
) -> None:
    """First in the module: its server must stop before `hub` starts (a process opens one
    chDB directory at a time)."""
    env = {**github.env, "HUTCH_GITHUB_WEBHOOK_SECRET": ""}
    with contextmanager(serve_in_thread)(tmp_path / "bare", **env) as bare:
        answer = github.send_webhook(hook(bare), "ping", github.ping_payload())
        assert (answer.status_code, error_of(answer)["code"]) == (503, "github_not_configured")
        unsigned = httpx.post(hook(bare), content=b"{}", headers={"X-GitHub-Event": "ping"})
        assert (unsigned.status_code, error_of(unsigned)["code"]) == (401, "missing_signature")
    # A secret but no App credentials: deliveries are verified, a push cannot be read.
    env = {**github.env, "HUTCH_GITHUB_APP_ID": "", "HUTCH_GITHUB_APP_KEY": ""}
    with contextmanager(serve_in_thread)(tmp_path / "no-app", **env) as half:
        assert github.send_webhook(hook(half), "ping", github.ping_payload()).status_code == 200
        github.add_org("half")
        sha = github.commit("half/app", {".build.yml": LINUX})
        github.install("half")
        answer = github.send_webhook(hook(half), "push", github.push_payload("half/app", sha))
        assert (answer.status_code, error_of(answer)["code"]) == (503, "github_not_configured")


def test_a_forged_or_missing_signature_is_refused_and_nothing_recorded(
    hub: Server, github: GitHubStandIn
) -> None:
    before = ends(hub.settings)
    body = orjson.dumps(github.ping_payload())
    forged = github.send_webhook(hook(hub), "ping", body, secret="not-the-secret")
    assert forged.status_code == 401
    assert error_of(forged)["code"] == "bad_signature"
    # The right secret over another body: a body changed on the way is refused too.
    other = signed(github.webhook_secret, body + b" ")
    tampered = github.send_webhook(hook(hub), "ping", body, signature=other)
    assert (tampered.status_code, error_of(tampered)["code"]) == (401, "bad_signature")
    for wrong in ("sha256=", "sha1=" + "0" * 40, "garbage", signed(github.webhook_secret, b"")):
        answer = github.send_webhook(hook(hub), "ping", body, signature=wrong)
        assert (answer.status_code, error_of(answer)["code"]) == (401, "bad_signature"), wrong
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4())}
    missing = httpx.post(hook(hub), content=body, headers=headers)
    assert (missing.status_code, error_of(missing)["code"]) == (401, "missing_signature")
    assert ends(hub.settings) == before


def test_headers_and_bodies_github_would_not_send_are_refused(
    hub: Server, github: GitHubStandIn
) -> None:
    before = ends(hub.settings)
    secret = github.webhook_secret

    def send(body: bytes, **headers: str) -> httpx.Response:
        sent = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()), **headers}
        sent = {k: v for k, v in sent.items() if v}
        sent["X-Hub-Signature-256"] = signed(secret, body)
        return httpx.post(hook(hub), content=body, headers=sent, timeout=60)

    ping = orjson.dumps(github.ping_payload())
    for headers, code, field in (
        ({"X-GitHub-Event": ""}, "bad_webhook_header", "X-GitHub-Event"),
        ({"X-GitHub-Delivery": ""}, "bad_webhook_header", "X-GitHub-Delivery"),
        ({"X-GitHub-Event": "PUSH now"}, "bad_webhook_header", "X-GitHub-Event"),
        ({"X-GitHub-Delivery": "x" * 101}, "bad_webhook_header", "X-GitHub-Delivery"),
    ):
        answer = send(ping, **headers)
        assert answer.status_code == 400, answer.text
        assert (error_of(answer)["code"], error_of(answer)["field"]) == (code, field)
    for body in (b"{", b"[1]", b""):
        answer = send(body)
        assert answer.status_code == 400, (body, answer.text)
    form = send(b"payload=%7B%7D", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415, form.text
    huge = send(b" " * (MAX_BODY + 1))
    assert (huge.status_code, error_of(huge)["code"]) == (413, "payload_too_large")
    # Well signed, not what the event carries: 400, nothing applied.
    nul = {"id": 8, "login": "a\x00b", "type": "User"}
    good = {"id": 7, "account": {"id": 8, "login": "someone", "type": "User"}}
    for event, payload in (
        ("push", {"ref": "refs/heads/main", "after": "0" * 40}),
        ("push", {"installation": {"id": 1}, "after": "zz", "ref": "refs/heads/main"}),
        ("installation", {"action": "created", "installation": {"id": 7}}),
        ("installation_repositories", {"installation": {"id": "7"}}),
        ("push", {"installation": {"id": 2**64 - 1}, "after": "a" * 40, "ref": "refs/heads/main"}),
        ("installation", {"installation": {"id": 7, "account": {"id": -1, "login": "x"}}}),
        # What no store could hold (PostgreSQL text takes no NUL): refused, never a 500.
        ("installation", {"action": "created", "installation": {"id": 7, "account": nul}}),
        (
            "installation_repositories",
            {"installation": good, "repositories_added": [{"id": 1, "full_name": "a/\x00"}]},
        ),
    ):
        answer = send(orjson.dumps(payload), **{"X-GitHub-Event": event})
        assert answer.status_code == 400, (event, answer.text)
        error_of(answer)
    assert ends(hub.settings) == before


def test_ping_is_answered_once_and_a_replay_is_dropped(hub: Server, github: GitHubStandIn) -> None:
    delivery = str(uuid.uuid4())
    first = github.send_webhook(hook(hub), "ping", github.ping_payload(), delivery=delivery)
    assert first.status_code == 200, first.text
    assert first.json()["message"] == "pong: Keep it logically awesome."
    before = ends(hub.settings)
    again = github.send_webhook(hook(hub), "ping", github.ping_payload(), delivery=delivery)
    assert again.status_code == 200, again.text
    assert again.json()["message"] == "delivery already received"
    assert ends(hub.settings) == before


def test_events_hutch_does_not_act_on_are_recorded_and_ignored(
    hub: Server, github: GitHubStandIn
) -> None:
    delivery = str(uuid.uuid4())
    payload = {"action": "opened", "issue": {"number": 1}}
    answer = github.send_webhook(hook(hub), "issues", payload, delivery=delivery)
    assert answer.status_code == 202, answer.text
    odd = {"action": "op\x00ened\n", "installation": {"id": "x"}}
    answer = github.send_webhook(hook(hub), "issues", odd)
    assert answer.status_code == 202, answer.text
    again = github.send_webhook(hook(hub), "issues", payload, delivery=delivery)
    assert again.json()["message"] == "delivery already received"


# --- installations and pushes ----------------------------------------------------------------


def test_a_push_makes_one_job_per_manifest_for_the_tenant(
    hub: Server, github: GitHubStandIn
) -> None:
    url = f"{github.url}/acme/app.git"
    files = {
        ".build.yml": BUILD.format(url=url),
        ".builds/linux.yml": LINUX,
        ".builds/more.yaml": LINUX.replace("test", "more"),
        ".builds/README.md": "not a manifest",
    }
    acme = org(github, hub, "acme", files)
    before = ends(hub.settings)
    answer = push(github, hub, "acme/app", acme["sha"], pusher_login=acme["member"])
    assert answer.status_code == 200, answer.text
    made = answer.json()
    manifests = [job["manifest"] for job in made["jobs"]]
    assert manifests == [".build.yml", ".builds/linux.yml", ".builds/more.yaml"]
    assert made["refused"] == []
    assert made["message"].startswith("3 jobs submitted for acme/app at ")
    assert ends(hub.settings) != before

    browser_ = acme["browser"]
    listed = tenant_jobs(browser_, acme["tenant"])
    assert sorted(job["id"] for job in listed) == sorted(job["id"] for job in made["jobs"])
    sha = acme["sha"]
    for job in listed:
        assert job["tags"] == ["app", "commits", "main"], job
        assert job["note"].startswith(f"Build acme\n\n[{sha[:7]}]("), job["note"]
        assert f"/acme/app/commit/{sha}" in job["note"]
        assert "Dev of acme" in job["note"]
        assert job["owner"] == "acme-dev"  # the pusher, a member
        assert job["status"] == "queued"
    first = next(j for j in made["jobs"] if j["manifest"] == ".build.yml")
    manifest = browser_.get(f"/api/jobs/{first['id']}/manifest")
    assert manifest.status_code == 200, manifest.text
    # The repository's own source is pinned to the commit; another is left as written.
    assert f"  - {url}#{sha}\n" in manifest.text
    assert "  - https://example.com/other/lib.git#v1\n" in manifest.text
    # Job UUIDs start with the push's time, as UUIDv7s do (the tenant's listing stays in
    # order); they are derived, not random (version 8).
    pushed_ms = github.push_payload("acme/app", sha)["repository"]["pushed_at"] * 1000
    for job in made["jobs"]:
        parsed = uuid.UUID(job["uuid"])
        assert (parsed.version, parsed.int >> 80) == (8, pushed_ms)
    # Members read the tenant's jobs; nobody else does, signed in or not.
    github.add_user("outsider")
    outsider = browser(hub, github, "outsider")
    assert outsider.get(f"/api/jobs/{first['id']}").status_code == 404
    assert outsider.get(f"/api/tenants/{acme['tenant']}/jobs").status_code == 404
    assert httpx.get(f"{hub.url}/api/jobs/{first['id']}").status_code == 404


def test_a_manifest_refused_is_named_and_the_others_still_run(
    hub: Server, github: GitHubStandIn
) -> None:
    files = {".builds/good.yml": LINUX, ".builds/bad.yml": BROKEN, ".builds/worse.yml": "{"}
    bolt = org(github, hub, "bolt", files)
    answer = push(github, hub, "bolt/app", bolt["sha"], pusher_login=bolt["member"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [job["manifest"] for job in body["jobs"]] == [".builds/good.yml"]
    refused = {r["manifest"]: r["error"] for r in body["refused"]}
    assert set(refused) == {".builds/bad.yml", ".builds/worse.yml"}
    assert refused[".builds/bad.yml"]["code"] == "invalid_manifest"
    assert "artifact" in refused[".builds/bad.yml"]["message"]
    assert refused[".builds/worse.yml"]["code"] == "invalid_manifest"
    assert body["message"].endswith("; 2 manifests refused"), body["message"]
    assert len(tenant_jobs(bolt["browser"], bolt["tenant"])) == 1


def test_at_most_eight_manifests_run_for_a_push(hub: Server, github: GitHubStandIn) -> None:
    files = {f".builds/{n:02}.yml": LINUX for n in range(10)} | {".build.yml": ""}
    cram = org(github, hub, "cram", files)
    answer = push(github, hub, "cram/app", cram["sha"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["jobs"]) == 7
    refused = {r["manifest"]: r["error"]["code"] for r in body["refused"]}
    assert refused == {
        ".build.yml": "invalid_manifest",  # empty: refused, not skipped
        ".builds/07.yml": "too_many_manifests",
        ".builds/08.yml": "too_many_manifests",
        ".builds/09.yml": "too_many_manifests",
    }


def test_a_replayed_push_makes_its_jobs_once(hub: Server, github: GitHubStandIn) -> None:
    crew = org(github, hub, "crew", {".build.yml": LINUX, ".builds/a.yml": LINUX})
    delivery = str(uuid.uuid4())
    first = push(github, hub, "crew/app", crew["sha"], delivery=delivery)
    assert len(first.json()["jobs"]) == 2, first.text
    before = ends(hub.settings)
    again = push(github, hub, "crew/app", crew["sha"], delivery=delivery)
    assert (again.status_code, again.json()["message"]) == (200, "delivery already received")
    assert ends(hub.settings) == before
    # Two copies of a new delivery at once: one set of jobs.
    racing = str(uuid.uuid4())
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(push(github, hub, "crew/app", crew["sha"], delivery=racing))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(len(a.json()["jobs"]) for a in answers) == 2, [a.text for a in answers]
    listed = tenant_jobs(crew["browser"], crew["tenant"])
    assert len(listed) == 4
    # Pushed by the organisation's account, no developer here: the tenant's owner owns them.
    assert {job["owner"] for job in listed} == {"crew"}


def test_a_redelivery_after_a_crash_does_not_double_the_jobs(
    hub: Server, github: GitHubStandIn
) -> None:
    """The jobs were recorded but not the delivery (the process died in between): GitHub's
    redelivery of the same delivery finds them and submits nothing again."""
    dune = org(github, hub, "dune", {".build.yml": LINUX})
    delivery = str(uuid.uuid4())
    payload = github.push_payload("dune/app", dune["sha"])
    uuid_ = job_uuid(delivery, ".build.yml", payload["repository"]["pushed_at"] * 1000)
    job = JobSubmitted(
        uuid=uuid_, number=9000, tenant_id=dune["tenant"], owner="dune", manifest=LINUX,
        image="alpine/edge", tasks=("test",), note=None, tags=(), read_access=("dune",),
        write_access=("dune",), execute=True, secrets=False, vcpus=1,
        cpu_architecture="Amd64", timeout_s=3600,
    )  # fmt: skip
    job_events.append(hub.settings, [job_events._event("job.submitted.v1", uuid_, job)])
    answer = github.send_webhook(hook(hub), "push", payload, delivery=delivery)
    assert answer.status_code == 200, answer.text
    assert answer.json()["jobs"] == [{"id": 9000, "uuid": uuid_, "manifest": ".build.yml"}]
    assert [j["id"] for j in tenant_jobs(dune["browser"], dune["tenant"])] == [9000]


def test_a_push_for_an_unknown_installation_is_404_and_records_nothing(
    hub: Server, github: GitHubStandIn
) -> None:
    github.add_org("ghost")
    sha = github.commit("ghost/app", {".build.yml": LINUX})
    github.install("ghost")  # on GitHub, but its webhook never reached Hutch
    before = ends(hub.settings)
    answer = push(github, hub, "ghost/app", sha)
    assert (answer.status_code, error_of(answer)["code"]) == (404, "unknown_installation")
    assert ends(hub.settings) == before


def test_deleted_branches_and_tags_build_nothing(hub: Server, github: GitHubStandIn) -> None:
    echo = org(github, hub, "echo", {".build.yml": LINUX})
    deletion = github.push_payload("echo/app", echo["sha"])
    deletion |= {"after": "0" * 40, "deleted": True, "head_commit": None, "commits": []}
    answer = github.send_webhook(hook(hub), "push", deletion)
    assert answer.status_code == 200, answer.text
    assert answer.json()["jobs"] == []
    tag = push(github, hub, "echo/app", echo["sha"], ref="refs/tags/v1.0")
    assert (tag.status_code, tag.json()["jobs"]) == (200, []), tag.text
    assert tenant_jobs(echo["browser"], echo["tenant"]) == []


def test_github_unreachable_is_502_and_the_redelivery_works(
    hub: Server, github: GitHubStandIn
) -> None:
    fog = org(github, hub, "fog", {".build.yml": LINUX})
    delivery = str(uuid.uuid4())
    before = ends(hub.settings)
    github.fail_with = 502
    try:
        answer = push(github, hub, "fog/app", fog["sha"], delivery=delivery)
    finally:
        github.fail_with = None
    assert (answer.status_code, error_of(answer)["code"]) == (502, "github_unavailable")
    assert ends(hub.settings) == before
    again = push(github, hub, "fog/app", fog["sha"], delivery=delivery)
    assert again.status_code == 200, again.text
    assert len(again.json()["jobs"]) == 1


def repositories(client: httpx.Client, tenant: str) -> list[str] | None:
    listed = client.get("/api/tenants")
    assert listed.status_code == 200, listed.text
    (found,) = [t for t in listed.json()["tenants"] if t["id"] == tenant]
    if found["installation"] is None:
        return None
    return sorted(r["full_name"] for r in found["installation"]["repositories"])


def test_installations_and_their_repositories_follow_github(
    hub: Server, github: GitHubStandIn
) -> None:
    gale = org(github, hub, "gale", {".build.yml": LINUX})
    inst, tenant, client = gale["installation"], gale["tenant"], gale["browser"]
    assert repositories(client, tenant) == ["gale/app"]
    github.repo("gale/lib")
    github.change_repositories(inst, added=["app", "lib"])
    added = github.installation_repositories_payload(inst, added=["lib"])
    answer = github.send_webhook(hook(hub), "installation_repositories", added)
    assert answer.status_code == 200, answer.text
    assert repositories(client, tenant) == ["gale/app", "gale/lib"]
    github.change_repositories(inst, removed=["app"])
    removed = github.installation_repositories_payload(inst, removed=["app"])
    assert github.send_webhook(hook(hub), "installation_repositories", removed).status_code == 200
    assert repositories(client, tenant) == ["gale/lib"]
    selection = client.get("/api/tenants").json()["tenants"]
    assert [t["installation"]["repository_selection"] for t in selection if t["id"] == tenant] == [
        "selected"
    ]

    suspended = github.installation_payload("suspend", inst)
    assert github.send_webhook(hook(hub), "installation", suspended).status_code == 200
    deleted = github.installation_payload("deleted", inst)
    answer = github.send_webhook(hook(hub), "installation", deleted)
    assert answer.status_code == 200, answer.text
    assert repositories(client, tenant) is None
    late = push(github, hub, "gale/lib", github.commit("gale/lib", {".build.yml": LINUX}))
    assert (late.status_code, error_of(late)["code"]) == (404, "unknown_installation")
    again = github.send_webhook(hook(hub), "installation", deleted)  # a new delivery: unknown
    assert (again.status_code, error_of(again)["code"]) == (404, "unknown_installation")
    # Installed again: the same tenant, linked anew.
    back = github.install("gale")
    created = github.installation_payload("created", back)
    answer = github.send_webhook(hook(hub), "installation", created)
    assert (answer.status_code, answer.json()["tenant"]) == (200, tenant), answer.text
    assert repositories(client, tenant) == ["gale/app", "gale/lib"]


def test_a_repeated_uuid_submits_nothing_twice(hub: Server) -> None:
    """The jobs command's own idempotence, which a push relies on."""
    from hutch.runtime import Runtime
    from ingest.jobs import commands
    from web.auth import Developer

    hutch(hub.settings, "developer", "create", "ivy")
    given = str(uuid.uuid4())

    async def twice() -> tuple[int, int]:
        runtime = Runtime(hub.settings)
        try:
            await runtime.start()
            ctx = runtime.command_context
            body = {"manifest": LINUX}
            first = await commands.submit(ctx, Developer("ivy"), body, uuid=given)
            second = await commands.submit(ctx, Developer("ivy"), body, uuid=given)
            return first, second
        finally:
            await runtime.close()
            runtime.release()

    first, second = asyncio.run(twice())
    assert first == second
    token = hutch(hub.settings, "token", "create", "--developer", "ivy")[1]["token"]
    with hub.client(Authorization=f"Bearer {token}") as client:
        listed = client.get("/api/jobs").json()["results"]
    assert [job["uuid"] for job in listed] == [given]


# --- a replay of the log -------------------------------------------------------------------

STATE = {
    "tenants": "SELECT id, name, kind, owner, email FROM tenants ORDER BY id",
    "tenant_members": "SELECT tenant_id, developer, role FROM tenant_members "
    "ORDER BY tenant_id, developer",
    "tenant_installations": "SELECT * FROM tenant_installations ORDER BY installation_id",
    "tenant_repositories": "SELECT * FROM tenant_repositories "
    "ORDER BY installation_id, repository_id",
    "github_deliveries": "SELECT * FROM github_deliveries ORDER BY delivery_id",
    "jobs": "SELECT uuid, number, tenant_id, owner, note, tags, read_access, manifest "
    "FROM jobs ORDER BY number",
}


def state_of(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    from hutch.wiring import open_relational

    db = open_relational(settings)
    try:
        return {name: [tuple(r) for r in db.fetchall(sql, {})] for name, sql in STATE.items()}
    finally:
        db.close()


def test_a_replay_of_the_log_rebuilds_the_same_state(hub: Server, github: GitHubStandIn) -> None:
    """Last: everything the module's deliveries did, and more of its own, rebuilt from the
    log alone (the identity and jobs projections replayed) is what it was."""
    from hutch.runtime import Runtime
    from state.command_context import IDENTITY, JOBS
    from state.relational import rebuild

    url = f"{github.url}/harbor/app.git"
    files = {".build.yml": BUILD.format(url=url), ".builds/x.yml": LINUX}
    harbor = org(github, hub, "harbor", files)
    inst = harbor["installation"]
    assert push(github, hub, "harbor/app", harbor["sha"]).status_code == 200
    github.repo("harbor/docs")
    github.change_repositories(inst, added=["app", "docs"])
    added = github.installation_repositories_payload(inst, added=["docs"])
    assert github.send_webhook(hook(hub), "installation_repositories", added).is_success
    before = state_of(hub.settings)
    assert all(before.values()), before

    async def replay() -> None:
        runtime = Runtime(hub.settings)
        try:
            await runtime.start()
            for projection in (IDENTITY, JOBS):
                await rebuild(runtime.log, runtime.db, projection)
        finally:
            await runtime.close()
            runtime.release()

    asyncio.run(replay())
    assert state_of(hub.settings) == before
