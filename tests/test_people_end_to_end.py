"""Issue 16's "done when", as one person would live it: against the GitHub stand-in, a browser
(one cookie jar, every redirect followed, across Hutch and GitHub) signs in, sees its tenants,
changes and verifies an organisation tenant's e-mail through the mailed link, and a push to
the organisation's repository (a signed webhook) creates jobs from the repository's manifests
at the pushed commit, listed on the tenant's jobs.

The parts are tested one by one, refusals included, in test_sign_in.py, test_tenants.py and
test_github_webhooks.py; this is the whole path through real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.github_standin import GitHubStandIn
from tests.support.receivers import MailReceiver, smtp_receiver
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

BUILD = "image: debian/bookworm\ntasks:\n  - test: echo testing\n"
LINT = "image: debian/bookworm\ntasks:\n  - lint: echo linting\n"


@pytest.fixture(scope="module")
def mail() -> Iterator[MailReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn, mail: MailReceiver
) -> Iterator[Server]:
    yield from serve_in_thread(
        tmp_path_factory.mktemp("people") / "data",
        HUTCH_SMTP_URL=mail.url,
        HUTCH_SMTP_FROM="hutch@example.org",
        **github.env,
    )


def test_sign_in_tenants_email_and_a_push(
    server: Server, github: GitHubStandIn, mail: MailReceiver
) -> None:
    github.reset()
    github.add_user("Octo", name="Octo Cat", email="octo@example.org")
    github.add_org("acme", members=["Octo"])
    github.commit("acme/app", {"README": "hello\n"})
    installation = github.install("acme", repositories=["acme/app"])
    webhook = f"{server.url}/api/github/webhook"

    # The App is installed on the organisation: GitHub tells Hutch.
    hello = github.send_webhook(
        webhook, "installation", github.installation_payload("created", installation)
    )
    assert hello.status_code < 300, hello.text

    # A browser signs in; GitHub's authorize page approves for the person signed in there.
    github.sign_in("Octo")
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        landed = browser.get(
            f"{server.url}/api/auth/github/login",
            params={"redirect_uri": f"{server.url}/api/user"},
        )
        assert landed.status_code == 200, landed.text
        hops = [str(r.url).split("?")[0] for r in landed.history]
        assert hops == [
            f"{server.url}/api/auth/github/login",
            f"{github.url}/login/oauth/authorize",
            f"{server.url}/api/auth/github/callback",
        ]
        user = landed.json()["user"]
        assert (user["login"], user["name"], user["email"]) == (
            "Octo",
            "Octo Cat",
            "octo@example.org",
        )
        assert browser.cookies.get("dev-id") == "octo"

        # Their tenants: their own, and the organisation's (a member, says GitHub).
        listed = browser.get(f"{server.url}/api/tenants").json()
        assert listed["total_count"] == 2
        acme = next(t for t in listed["tenants"] if t["kind"] == "organisation")
        assert acme["name"] == "acme"
        assert acme["installation"]["id"] == installation
        assert acme["installation"]["account"]["login"] == "acme"
        assert any(t["kind"] == "personal" for t in listed["tenants"])
        tenant = acme["id"]

        # The organisation's e-mail, changed through the mailed link (a cookie write: the
        # CSRF token from /api/auth/status goes with it).
        csrf = browser.get(f"{server.url}/api/auth/status").json()["csrfToken"]
        email_url = f"{server.url}/api/tenants/{tenant}/email"
        assert browser.get(email_url).json() == {"email": None}
        asked = browser.put(
            email_url, json={"email": "ci@acme.example"}, headers={"X-CSRF-Token": csrf}
        )
        assert asked.status_code == 202, asked.text
        assert browser.get(email_url).json() == {"email": None}  # not before the link
        sent = eventually(lambda: [m for m in mail.mail if "ci@acme.example" in m.recipients])
        body = sent[-1].message.get_body(("plain",))
        assert body is not None
        link = next(w for w in body.get_content().split() if "/email/verify?jwt=" in w)
        followed = browser.get(link)
        assert followed.status_code == 200, followed.text
        assert browser.get(email_url).json() == {"email": "ci@acme.example"}
        again = browser.get(link)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "link_used")

        # A push of manifests to the organisation's repository: jobs for the tenant.
        sha = github.commit(
            "acme/app",
            {".build.yml": BUILD, ".builds/lint.yml": LINT, "README": "hello\n"},
            message="Add CI\n\nWith a lint job too.",
        )
        pushed = github.send_webhook(
            webhook, "push", github.push_payload("acme/app", sha, pusher_login="Octo")
        )
        assert pushed.status_code < 300, pushed.text
        jobs = browser.get(f"{server.url}/api/tenants/{tenant}/jobs").json()
        assert jobs["total_count"] == 2
        for job in jobs["jobs"]:
            assert job["tenant_id"] == tenant
            assert sha[:7] in job["note"]
            assert "Add CI" in job["note"]
            assert job["tags"] == ["app", "commits", "main"]
        tasks = sorted(task["name"] for job in jobs["jobs"] for task in job["tasks"])
        assert tasks == ["lint", "test"]

        # Signed out, the same browser sees nothing.
        out = browser.post(f"{server.url}/api/logout")
        assert out.json() == {"message": "Successfully logged out"}
        gone = browser.get(f"{server.url}/api/tenants")
        assert gone.status_code == 401, gone.text
