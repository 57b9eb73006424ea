"""Tenants (issue 16): GitHub App installations linked to tenants, membership as GitHub
reports it, the tenant listing, the GitHub App setup handler and the tenant e-mail with its
mailed verification link.

First the commands on real stores (ingest/tenant_commands.py, ingest/tenant_email.py), then
over real HTTP: a Hutch server pointed at the GitHub stand-in (tests/support/github_standin.py)
and a local SMTP server, with browser-like clients that sign in through GitHub and keep their
cookies across the redirects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from base.client_errors import NotFound, ServiceUnavailable
from base.github import GitHubInstallation
from base.keys import derive, secret_key
from hutch.runtime import Runtime
from ingest import identity_commands, tenant_email
from ingest import tenant_commands as commands
from schemas.people import Repository
from state import tenant_reads as qt
from state.command_context import IDENTITY, JOBS, CommandContext
from state.jobs.reads import readable_job
from state.people_reads import installation_by_id
from state.relational import rebuild
from tests.support import job_events
from tests.support.github_standin import GitHubStandIn
from tests.support.receivers import MailReceiver, smtp_receiver
from tests.support.servers import Server, serve_in_thread
from tests.support.settings import make_settings
from tests.support.waiting import eventually
from web.auth import Developer

ACME = GitHubInstallation(41, "acme", 9001, "Organization", "all", "https://avatars/acme.png")
ANN_OWN = GitHubInstallation(42, "Ann", 7001, "User", "selected", None)
ANN_ID, BOB_ID = 7001, 7002


# --- the commands, on real stores ---------------------------------------------------------


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(make_settings(tmp_path / "data"))
    await asyncio.to_thread(rt.db.migrate)
    await rt.start()
    yield rt
    await rt.close()
    rt.release()


async def _records(rt: Runtime) -> int:
    count = 0
    for partition in await rt.log.partitions("apps"):
        count += len(await rt.log.read("apps", partition, 0, 100_000))
    return count


def _listing(rt: Runtime, developer: str) -> dict[str, tuple[str, str, int | None, list[str]]]:
    """name -> (kind, role, installation id, repositories) of the developer's tenants."""
    return {
        v.name: (
            v.kind,
            v.role,
            None if v.installation is None else v.installation.installation_id,
            [name for _, name in v.repositories],
        )
        for v in qt.tenants_with_installations(rt.db, developer)
    }


@pytest.mark.integration
async def test_memberships_follow_what_github_lists(runtime: Runtime) -> None:
    ctx = runtime.command_context
    for name in ("ann", "bob"):
        await identity_commands.create_developer(ctx, name)

    await commands.sync_memberships(ctx, "ann", ANN_ID, [ACME, ANN_OWN])
    assert _listing(runtime, "ann") == {
        "ann": ("personal", "owner", None, []),
        "acme": ("organisation", "owner", 41, []),
        "Ann": ("user", "owner", 42, []),
    }
    # GitHub lists Ann's own installation for bob too (it cannot, but if it did): a user
    # account's tenant has only that user as member.
    await commands.sync_memberships(ctx, "bob", BOB_ID, [ACME, ANN_OWN])
    assert _listing(runtime, "bob") == {
        "bob": ("personal", "owner", None, []),
        "acme": ("organisation", "member", 41, []),
    }
    before = await _records(runtime)
    await commands.sync_memberships(ctx, "bob", BOB_ID, [ACME])
    assert await _records(runtime) == before, "a sync that changes nothing appends nothing"

    await commands.sync_memberships(ctx, "bob", BOB_ID, [])  # bob left the organisation
    assert _listing(runtime, "bob") == {"bob": ("personal", "owner", None, [])}
    assert "acme" in _listing(runtime, "ann")


@pytest.mark.integration
async def test_an_account_keeps_its_tenant_across_installs(runtime: Runtime) -> None:
    ctx = runtime.command_context
    await identity_commands.create_developer(ctx, "ann")
    tenant = await commands.link_installation(ctx, ACME, None)
    assert _listing(runtime, "ann") == {"ann": ("personal", "owner", None, [])}  # no member
    assert await commands.link_installation(ctx, ACME, "ann") == tenant
    assert _listing(runtime, "ann")["acme"] == ("organisation", "member", 41, [])

    assert await commands.remove_installation(ctx, 41) == tenant
    assert await commands.remove_installation(ctx, 41) == tenant  # again: nothing more
    assert await commands.remove_installation(ctx, 999) is None
    assert _listing(runtime, "ann")["acme"] == ("organisation", "member", None, [])

    again = GitHubInstallation(43, "acme", 9001, "Organization", "selected", None)
    assert await commands.link_installation(ctx, again, "ann") == tenant
    assert _listing(runtime, "ann")["acme"] == ("organisation", "member", 43, [])
    # Installed again while Hutch missed the uninstall: the old installation is let go.
    newer = GitHubInstallation(44, "acme", 9001, "Organization", "all", None)
    assert await commands.link_installation(ctx, newer, None) == tenant
    assert _listing(runtime, "ann")["acme"] == ("organisation", "member", 44, [])
    assert installation_by_id(runtime.db, 43).removed_at is not None  # type: ignore[union-attr]


@pytest.mark.integration
async def test_repositories_follow_the_installation(runtime: Runtime) -> None:
    ctx = runtime.command_context
    await identity_commands.create_developer(ctx, "ann")
    await commands.link_installation(ctx, ACME, "ann")
    a, b = Repository(1, "acme/a"), Repository(2, "acme/b")
    await commands.change_repositories(ctx, 41, [b, a], [])
    assert _listing(runtime, "ann")["acme"][3] == ["acme/a", "acme/b"]
    before = await _records(runtime)
    await commands.change_repositories(ctx, 41, [a], [Repository(3, "acme/never")])
    await commands.change_repositories(ctx, 999, [a], [])  # unknown installation
    assert await _records(runtime) == before
    await commands.change_repositories(ctx, 41, [], [a])
    assert _listing(runtime, "ann")["acme"][3] == ["acme/b"]

    # Event-sourced: a replay of the log builds the same tenants.
    await commands.remove_installation(ctx, 41)
    listed = _listing(runtime, "ann")
    await rebuild(runtime.log, runtime.db, IDENTITY)
    assert _listing(runtime, "ann") == listed
    assert listed["acme"] == ("organisation", "owner", None, [])


async def _private_job(ctx: CommandContext, tenant: str, owner: str, number: int) -> None:
    _, envelope = job_events.submitted(number, tenant, owner, read=())
    await ctx.append("jobs", [envelope], JOBS)


@pytest.mark.integration
async def test_members_of_a_jobs_tenant_read_it(runtime: Runtime) -> None:
    """state/jobs/reads.readable_job: the owner, the access list, and the tenant's members;
    nobody else, and a removed member no more."""
    ctx = runtime.command_context
    for name in ("ann", "bob", "cyd"):
        await identity_commands.create_developer(ctx, name)
    tenant = await commands.link_installation(ctx, ACME, "ann")
    await _private_job(ctx, tenant, "ann", 1)

    def read(caller: str | None) -> int:
        return readable_job(runtime.db, 1, caller).number

    assert read("ann") == 1
    for outsider in ("bob", "cyd", None):
        with pytest.raises(NotFound):
            read(outsider)
    await commands.sync_memberships(ctx, "bob", BOB_ID, [ACME])
    assert read("bob") == 1
    with pytest.raises(NotFound):
        read("cyd")
    await commands.sync_memberships(ctx, "bob", BOB_ID, [])
    with pytest.raises(NotFound):
        read("bob")


@pytest.mark.integration
async def test_no_mail_server_records_nothing(runtime: Runtime) -> None:
    ctx = runtime.command_context
    created = await identity_commands.create_developer(ctx, "ann")
    before = await _records(runtime)
    with pytest.raises(ServiceUnavailable) as refused:
        await tenant_email.request_change(
            ctx, b"k" * 32, Developer("ann"), created["tenant"], "ops@example.org", False
        )
    assert refused.value.code == "mail_not_configured"
    assert await _records(runtime) == before


# --- over HTTP: the GitHub stand-in, a mail server, browsers that sign in -------------------


class Site:
    def __init__(self, server: Server, github: GitHubStandIn, mail: MailReceiver) -> None:
        self.server = server
        self.github = github
        self.mail = mail
        self.jobs = 0

    def browser(self, login: str) -> httpx.Client:
        """A browser signed in to Hutch through GitHub as `login` (cookies kept across the
        redirects), sending the session's CSRF token with its writes."""
        self.github.sign_in(login)
        client = httpx.Client(base_url=self.server.url, timeout=30, follow_redirects=True)
        status = client.get("/api/auth/github/login", params={"redirect_uri": "/api/auth/status"})
        assert status.status_code == 200, status.text
        assert status.json()["method"] == "session", status.text
        client.headers["X-CSRF-Token"] = status.json()["csrfToken"]
        client.follow_redirects = False
        return client

    def tenants(self, client: httpx.Client) -> dict[str, dict[str, Any]]:
        """`kind:name` -> the tenant, as GET /api/tenants lists the caller's."""
        answer = client.get("/api/tenants")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total_count"] == len(body["tenants"])
        return {f"{t['kind']}:{t['name']}": t for t in body["tenants"]}

    def private_job(self, tenant: str, owner: str) -> int:
        """A job in `tenant` only its owner's access list names (as a push makes them)."""
        self.jobs += 1
        _, envelope = job_events.submitted(self.jobs, tenant, owner, read=())
        job_events.append(self.server.settings, [envelope])
        return self.jobs


@pytest.fixture(scope="module")
def site(github: GitHubStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with smtp_receiver() as mail:
        data = tmp_path_factory.mktemp("tenants") / "data"
        env = {**github.env, "HUTCH_SMTP_URL": mail.url, "HUTCH_SMTP_FROM": "hutch@example.org"}
        for server in serve_in_thread(data, **env):
            yield Site(server, github, mail)


def error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"]["code"] == code, body
    assert body["message"] == body["error"]["message"]
    found: dict[str, Any] = body["error"]
    return found


def test_the_listing_shows_the_callers_tenants_only(site: Site) -> None:
    gh = site.github
    gh.add_user("lia")
    gh.add_user("max")
    org = gh.add_org("lia-org", members=["lia"])
    installation = gh.install("lia-org")
    lia, mx = site.browser("lia"), site.browser("max")

    mine = site.tenants(lia)
    assert set(mine) == {"personal:lia", "organisation:lia-org"}
    personal = mine["personal:lia"]
    assert (personal["role"], personal["email"], personal["installation"]) == ("owner", None, None)
    linked = mine["organisation:lia-org"]
    assert (linked["role"], linked["email"]) == ("owner", None)
    details = linked["installation"]
    assert details.pop("linked_at").endswith("Z")
    assert details == {
        "id": installation,
        "account": {
            "login": "lia-org",
            "id": org.id,
            "type": "Organization",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{org.id}?v=4",
        },
        "repository_selection": "all",
        "repositories": [],
    }
    assert set(site.tenants(mx)) == {"personal:max"}

    # Lia's tenants are a 404 to max in every tenant path, the same as a made-up id.
    nowhere = "01234567-89ab-7cde-8f01-234567890abc"
    for path in ("/jobs", "/email"):
        made_up = error(mx.get(f"/api/tenants/{nowhere}{path}"), 404, "no_tenant")
        for tenant in mine.values():
            assert error(mx.get(f"/api/tenants/{tenant['id']}{path}"), 404, "no_tenant") == made_up
    with httpx.Client(base_url=site.server.url) as anonymous:
        error(anonymous.get("/api/tenants"), 401, "missing_token")


def test_org_members_see_its_jobs_while_github_lists_them(site: Site) -> None:
    gh = site.github
    gh.add_user("noa")
    gh.add_user("oli")
    gh.add_org("noa-org", members=["noa"])
    gh.install("noa-org")
    noa = site.browser("noa")
    tenant = site.tenants(noa)["organisation:noa-org"]["id"]
    number = site.private_job(tenant, "noa")
    eventually(lambda: noa.get(f"/api/tenants/{tenant}/jobs").json()["total_count"] == 1)

    oli = site.browser("oli")
    assert "organisation:noa-org" not in site.tenants(oli)
    error(oli.get(f"/api/tenants/{tenant}/jobs"), 404, "no_tenant")
    error(oli.get(f"/api/jobs/{number}"), 404, "no_job")

    gh.add_member("noa-org", "oli")
    again = site.browser("oli")  # signing in again: GitHub now lists the organisation
    assert site.tenants(again)["organisation:noa-org"]["role"] == "member"
    for browser in (again, oli):  # membership, not the session, decides
        listed = browser.get(f"/api/tenants/{tenant}/jobs").json()
        assert [job["id"] for job in listed["jobs"]] == [number]
        assert browser.get(f"/api/jobs/{number}").json()["owner"] == "noa"

    gh.remove_member("noa-org", "oli")
    site.browser("oli")
    assert set(site.tenants(oli)) == {"personal:oli"}
    error(oli.get(f"/api/tenants/{tenant}/jobs"), 404, "no_tenant")
    error(oli.get(f"/api/jobs/{number}"), 404, "no_job")
    assert noa.get(f"/api/jobs/{number}").status_code == 200


def _linked(site: Site, installation_id: int) -> bool:
    runtime: Any = site.server.runtime
    return installation_by_id(runtime.db, installation_id) is not None


def test_setup_links_only_what_github_confirms(site: Site) -> None:
    gh = site.github
    gh.add_user("pia")
    gh.add_user("quinn")
    gh.add_org("pia-org", members=["pia"])
    gh.add_org("far-org", members=["quinn"])
    pia = site.browser("pia")
    before = site.tenants(pia)
    assert set(before) == {"personal:pia"}

    def setup(**params: str) -> httpx.Response:
        return pia.get("/api/auth/github/setup", params=params)

    # Refusals: each links nothing.
    error(setup(installation_id="987654321"), 404, "unknown_installation")
    theirs = gh.install("quinn")
    far = gh.install("far-org")
    for other in (theirs, far):
        refused = error(setup(installation_id=str(other)), 403, "not_installation_member")
        assert refused["field"] == "installation_id"
        assert not _linked(site, other)
    for bad in ("abc", "-1", "0", "1.0", " 1", "1e3", "\uff11\uff12", "99999999999999999999", ""):
        refused = error(setup(installation_id=bad), 400, "bad_installation_id")
        assert refused["field"] == "installation_id"
    error(setup(), 400, "bad_installation_id")
    own = gh.install("pia")
    for target in ("//evil.example", "https:evil.example", "https://evil.example/x", "/\\evil"):
        error(setup(installation_id=str(own), redirect_uri=target), 400, "redirect_not_allowed")
    gh.fail_with = 502
    try:
        error(setup(installation_id=str(own)), 502, "github_unavailable")
    finally:
        gh.fail_with = None
    with httpx.Client(base_url=site.server.url) as anonymous:
        answer = anonymous.get("/api/auth/github/setup", params={"installation_id": str(own)})
        error(answer, 401, "missing_token")
    assert not _linked(site, own)
    assert site.tenants(pia) == before

    # A member asking the owners to install: nothing to link, on to the portal.
    asked = setup(setup_action="request")
    assert (asked.status_code, asked.headers["location"]) == (302, f"{site.server.url}/portal")

    # The user's own account, then an organisation they belong to.
    linked = setup(installation_id=str(own), setup_action="install")
    assert (linked.status_code, linked.headers["location"]) == (302, f"{site.server.url}/portal")
    org = gh.install("pia-org")
    linked = setup(installation_id=str(org), setup_action="install", redirect_uri="/after")
    assert (linked.status_code, linked.headers["location"]) == (302, "/after")
    after = site.tenants(pia)
    assert set(after) == {"personal:pia", "user:pia", "organisation:pia-org"}
    assert after["user:pia"]["installation"]["id"] == own
    assert after["organisation:pia-org"]["installation"]["id"] == org
    assert after["organisation:pia-org"]["role"] == "owner"
    assert site.tenants(pia) == after
    setup(installation_id=str(org), setup_action="update")  # again: the same tenant
    assert site.tenants(pia) == after


def _ask(site: Site, client: httpx.Client, tenant: str, address: str) -> str:
    """Ask for `address` as the tenant's e-mail; the link mailed for it."""
    sent = len(site.mail.mail)
    answer = client.put(f"/api/tenants/{tenant}/email", json={"email": address})
    assert answer.status_code == 202, answer.text
    assert address in answer.json()["message"]
    assert len(site.mail.mail) == sent + 1
    mail = site.mail.mail[-1]
    assert mail.recipients == [address]
    assert (mail.message["To"], mail.message["From"]) == (address, "hutch@example.org")
    body = mail.message.get_body(("plain",))
    assert body is not None
    links: list[str] = [w for w in body.get_content().split() if "/email/verify?jwt=" in w]
    assert len(links) == 1, body.get_content()
    assert links[0].startswith(f"{site.server.url}/api/tenants/{tenant}/email/verify?jwt=")
    return links[0]


def _email(client: httpx.Client, tenant: str) -> str | None:
    answer = client.get(f"/api/tenants/{tenant}/email")
    assert answer.status_code == 200, answer.text
    found: str | None = answer.json()["email"]
    return found


def _follow(link: str) -> httpx.Response:
    """The link opened on another device: no cookies, no token."""
    return httpx.get(link, timeout=30)


def test_an_email_change_applies_once_when_its_link_is_followed(site: Site) -> None:
    site.github.add_user("rae")
    rae = site.browser("rae")
    mine = site.tenants(rae)["personal:rae"]["id"]
    assert _email(rae, mine) is None
    link = _ask(site, rae, mine, "ops@example.org")
    assert _email(rae, mine) is None  # not before the link is followed

    followed = _follow(link)
    assert followed.status_code == 200, followed.text
    assert followed.json()["email"] == "ops@example.org"
    assert _email(rae, mine) == "ops@example.org"
    assert site.tenants(rae)["personal:rae"]["email"] == "ops@example.org"
    error(_follow(link), 409, "link_used")
    assert _email(rae, mine) == "ops@example.org"

    # A later request replaces the earlier links; once one is followed, none works.
    first = _ask(site, rae, mine, "first@example.org")
    second = _ask(site, rae, mine, "second@example.org")
    error(_follow(first), 409, "link_used")
    assert _follow(second).status_code == 200
    error(_follow(second), 409, "link_used")
    error(_follow(first), 409, "link_used")
    assert _email(rae, mine) == "second@example.org"


def _with_claims(link: str, key: bytes, **changes: Any) -> str:
    """The link with its token's claims changed and signed again under `key`."""
    base, token = link.split("?jwt=")
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"{base}?jwt={jwt.encode({**claims, **changes}, key, algorithm='HS256')}"


def test_refused_links_change_nothing(site: Site) -> None:
    gh = site.github
    gh.add_user("sol")
    gh.add_org("sol-org", members=["sol"])
    gh.install("sol-org")
    sol = site.browser("sol")
    tenants = site.tenants(sol)
    mine, org = tenants["personal:sol"]["id"], tenants["organisation:sol-org"]["id"]
    link = _ask(site, sol, mine, "new@example.org")
    org_link = _ask(site, sol, org, "team@example.org")
    base, token = link.split("?jwt=")
    header, payload, signature = token.split(".")
    key = derive(secret_key(site.server.settings), "tenant-email")

    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    claims = jwt.decode(token, options={"verify_signature": False})
    unsigned = jwt.encode({**claims, "email": "evil@example.org"}, "", algorithm="none")
    forged_payload = unsigned.split(".")[1]
    invalid = [
        f"{base}?jwt={header}.{payload}.{flipped}",  # tampered signature
        f"{base}?jwt={header}.{forged_payload}.{signature}",  # tampered claims
        f"{base}?jwt={unsigned}",  # alg none
        _with_claims(link, b"another server's key, 32 bytes long"),
        _with_claims(link, key, aud="hutch:something-else"),
        _with_claims(link, key, email="evil@example.org"),  # not the address mailed
        _with_claims(link, key, jti="01234567-89ab-7cde-8f01-234567890abc"),  # never issued
        f"{base}?jwt=garbage",
        f"{base}?jwt=",
        base,
    ]
    for bad in invalid:
        refused = error(_follow(bad), 400, "invalid_link")
        assert refused["field"] == "jwt"
    expired = _with_claims(link, key, iat=int(time.time()) - 100, exp=int(time.time()) - 10)
    error(_follow(expired), 400, "link_expired")
    # Another tenant's link in this tenant's path (and in a made-up one).
    other = org_link.replace(f"/api/tenants/{org}/", f"/api/tenants/{mine}/")
    error(_follow(other), 400, "link_for_other_tenant")
    made_up = org_link.replace(org, "01234567-89ab-7cde-8f01-234567890abc", 1)
    error(_follow(made_up), 400, "link_for_other_tenant")

    assert (_email(sol, mine), _email(sol, org)) == (None, None)
    # None of that used the links up.
    assert _follow(link).json()["email"] == "new@example.org"
    assert _follow(org_link).json()["email"] == "team@example.org"
    assert (_email(sol, mine), _email(sol, org)) == ("new@example.org", "team@example.org")


def test_bad_requests_for_a_change_mail_nothing(site: Site) -> None:
    site.github.add_user("tia")
    site.github.add_user("uma")
    tia, uma = site.browser("tia"), site.browser("uma")
    mine = site.tenants(tia)["personal:tia"]["id"]
    path = f"/api/tenants/{mine}/email"
    sent = len(site.mail.mail)

    for address in (
        "no-at-sign",
        "two@@example.org",
        "a@b",
        "a b@example.org",
        "a@example.org\r\nBcc: victim@example.org",
        "a@example.org\nBcc: victim@example.org",
        "Ann <a@example.org>",
        "a@example.org, b@example.org",
        "a..b@example.org",
        "a@-example.org",
        "a@example.org.",
        "é@example.org",
        "a" * 250 + "@example.org",
        "",
    ):
        refused = error(tia.put(path, json={"email": address}), 422, "invalid_email")
        assert refused["field"] == "email"
    error(tia.put(path, json={"email": 123}), 400, "bad_type")
    error(tia.put(path, json={}), 422, "unprocessable")
    error(
        tia.put(path, content=b"{", headers={"Content-Type": "application/json"}),
        400,
        "malformed_json",
    )
    # Not a member: the same 404 as a tenant that does not exist, for PUT and POST.
    nowhere = "/api/tenants/01234567-89ab-7cde-8f01-234567890abc/email"
    for method in ("PUT", "POST"):
        made_up = error(
            uma.request(method, nowhere, json={"email": "x@example.org"}), 404, "no_tenant"
        )
        answer = uma.request(method, path, json={"email": "x@example.org"})
        assert error(answer, 404, "no_tenant") == made_up
    # Without a credential, and a cookie write without its CSRF proof.
    with httpx.Client(base_url=site.server.url) as anonymous:
        error(anonymous.put(path, json={"email": "x@example.org"}), 401, "missing_token")
    unproven = tia.put(path, json={"email": "x@example.org"}, headers={"X-CSRF-Token": ""})
    error(unproven, 403, "csrf_failed")
    assert len(site.mail.mail) == sent
    assert _email(tia, mine) is None

    # A mail server that refuses the address: 502, and nothing changes.
    site.mail.refuse["bounce@example.org"] = ["550 5.1.1 no such mailbox"]
    error(tia.post(path, json={"email": "bounce@example.org"}), 502, "mail_failed")
    assert _email(tia, mine) is None
