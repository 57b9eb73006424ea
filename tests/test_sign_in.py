"""Sign-in with GitHub, sessions and logout, against the GitHub stand-in over real HTTP, from a
browser-like client (httpx keeping cookies, redirects followed one at a time so each answer
can be looked at).

What a user would see: the redirects and cookies of a sign-in (their attributes too), the
current user, the first API token made with the session (and its CSRF proof), and every
refusal the issue lists (bad, missing, expired or foreign state; a reused code; open-redirect
attempts; a session after logout or expiry; forged session cookies) answered with a clear 4xx
and no event appended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import orjson
import pytest

from base.keys import derive, secret_key
from base.settings import Settings
from schemas.envelope import Envelope, new_envelope
from schemas.people import SessionRevoked
from tests.support.admin import hutch
from tests.support.github_standin import GitHubStandIn
from tests.support.processes import kill_tree
from tests.support.servers import Served, Server, free_port, serve_in_thread
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration

APP_ORIGIN = "https://app.example.org"
EVIL = [
    "//evil.example",
    "https:evil.example",
    "/\\evil.example",
    "https://evil.example",
    "%2F%2Fevil.example",
    "javascript:alert(1)",
    "https://app.example.org@evil.example/",
    "http://user:pw@evil.example/",
    "/\t/evil.example",
    "evil.example",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn) -> Iterator[Server]:
    yield from serve_in_thread(
        tmp_path_factory.mktemp("sign-in") / "data",
        HUTCH_REDIRECT_ORIGINS=APP_ORIGIN,
        **github.env,
    )


@pytest.fixture
def gh(github: GitHubStandIn) -> Iterator[GitHubStandIn]:
    github.reset()
    yield github
    github.reset()


# --- a browser -----------------------------------------------------------------------------


class Browser:
    """One cookie jar for Hutch and GitHub (both on 127.0.0.1: cookies are per host, not port,
    so Hutch's cookies reach the stand-in too, which ignores them)."""

    def __init__(self, server: Server | Served, headers: dict[str, str] | None = None) -> None:
        self.server = server
        self.http = httpx.Client(follow_redirects=False, timeout=30, headers=headers or {})

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(self.server.url + path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.server.url + path, **kwargs)

    def login(self, redirect_uri: str | None = None) -> httpx.Response:
        params = {} if redirect_uri is None else {"redirect_uri": redirect_uri}
        return self.get("/api/auth/github/login", params=params)

    def to_callback(self, redirect_uri: str | None = None) -> str:
        """Login, then GitHub's authorize page: the callback URL GitHub sends the browser to."""
        login = self.login(redirect_uri)
        assert login.status_code == 302, login.text
        authorize = self.http.get(login.headers["Location"])
        assert authorize.status_code == 302, authorize.text
        callback = authorize.headers["Location"]
        assert callback.startswith(f"{self.server.settings.public_url}/api/auth/github/callback?")
        return callback

    def sign_in(self, redirect_uri: str | None = None) -> httpx.Response:
        """The whole sign-in; the callback's answer (a 302 to the redirect target)."""
        answer = self.http.get(self.to_callback(redirect_uri))
        assert answer.status_code == 302, answer.text
        return answer

    def cookie(self, name: str) -> str | None:
        return self.http.cookies.get(name)

    def session(self) -> dict[str, str]:
        """The session's two cookies, as a stolen copy would have them."""
        kept = {n: self.cookie(n) for n in ("dev-id", "session-token")}
        return {n: v for n, v in kept.items() if v is not None}


def set_cookies(answer: httpx.Response) -> dict[str, dict[str, Any]]:
    """name -> {"value", and each attribute, lowercased} of every Set-Cookie of the answer."""
    found: dict[str, dict[str, Any]] = {}
    for header in answer.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            flags = {k.lower(): v for k, v in morsel.items() if v}
            lowered = header.lower()
            flags["httponly"] = "httponly" in lowered
            flags["secure"] = "; secure" in lowered
            found[name] = {"value": morsel.value, **flags}
    return found


def cleared(cookie: dict[str, Any]) -> bool:
    """Whether a Set-Cookie asks the browser to drop the cookie (expired at once)."""
    return cookie["value"] == "" and "1970" in cookie.get("expires", "")


def error(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert body["message"] == body["error"]["message"], body
    return dict(body["error"])


# --- the log: "no state changed" -------------------------------------------------------------


def apps_events(settings: Settings) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every event on the `apps` topic: id -> (type, payload)."""
    from hutch.wiring import open_log

    async def read() -> dict[str, tuple[str, dict[str, Any]]]:
        log = open_log(settings)
        await log.start()
        try:
            found: dict[str, tuple[str, dict[str, Any]]] = {}
            for partition in await log.partitions("apps"):
                end = await log.end_offset("apps", partition)
                offset = 0
                while offset < end:
                    records = await log.read("apps", partition, offset, 1000)
                    if not records:
                        break
                    for r in records:
                        found[r.envelope.id] = (r.envelope.type, orjson.loads(r.envelope.payload))
                    offset = records[-1].offset + 1
            return found
        finally:
            await log.close()

    return asyncio.run(read())


class Events:
    """The `apps` events appended since this was made."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.before = set(apps_events(settings))

    def new(self) -> list[tuple[str, dict[str, Any]]]:
        return [e for i, e in apps_events(self.settings).items() if i not in self.before]

    def types(self) -> list[str]:
        return sorted(t for t, _ in self.new())


# --- the sign-in -----------------------------------------------------------------------------


def test_a_browser_signs_in_and_makes_its_first_token(server: Server, gh: GitHubStandIn) -> None:
    user = gh.add_user("Octo-Cat", name="Octo Cat", email="octo@example.org")
    gh.sign_in("Octo-Cat")
    events = Events(server.settings)
    public = server.settings.public_url
    with Browser(server) as browser:
        login = browser.login()
        assert login.status_code == 302
        authorize = urlsplit(login.headers["Location"])
        assert f"{authorize.scheme}://{authorize.netloc}" == gh.url
        assert authorize.path == "/login/oauth/authorize"
        query = parse_qs(authorize.query)
        assert query["client_id"] == [gh.client_id]
        assert query["redirect_uri"] == [f"{public}/api/auth/github/callback"]
        state_cookie = set_cookies(login)["hutch-oauth-state"]
        assert state_cookie["path"] == "/api/auth/github"
        assert state_cookie["max-age"] == "600"
        assert state_cookie["httponly"]
        assert state_cookie["samesite"] == "Lax"
        assert not state_cookie["secure"]  # plain http: a Secure cookie would never come back

        callback = browser.http.get(browser.http.get(login.headers["Location"]).headers["Location"])
        assert callback.status_code == 302, callback.text
        assert callback.headers["Location"] == f"{public}/portal"
        cookies = set_cookies(callback)
        for name in ("dev-id", "session-token"):
            assert cookies[name]["path"] == "/"
            assert cookies[name]["httponly"]
            assert cookies[name]["samesite"] == "Lax"
            assert not cookies[name]["secure"]
            assert cookies[name]["max-age"] == str(server.settings.session_ttl_s)
        assert cookies["dev-id"]["value"] == "octo-cat"
        assert cookies["session-token"]["value"].startswith("bs_")
        assert cleared(cookies["hutch-oauth-state"])  # the sign-in is over
        assert browser.cookie("hutch-oauth-state") is None

        me = browser.get("/api/user")
        assert me.status_code == 200, me.text
        assert me.json()["user"] == {
            "developer": "octo-cat",
            "github_id": user.id,
            "login": "Octo-Cat",
            "name": "Octo Cat",
            "email": "octo@example.org",
            "avatar_url": me.json()["user"]["avatar_url"],
            "personal_tenant_id": me.json()["user"]["personal_tenant_id"],
        }
        assert me.json()["user"]["personal_tenant_id"]
        status = browser.request("POST", "/api/auth/status").json()  # a read: no CSRF proof
        assert status["method"] == "session"
        assert status["developer"] == "octo-cat"
        csrf = status["csrfToken"]

        made = browser.request(
            "POST", "/api/tokens", json={"name": "first"}, headers={"X-CSRF-Token": csrf}
        )
        assert made.status_code == 201, made.text
        token = made.json()["token"]
    bearer = httpx.get(
        f"{server.url}/api/tokens", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert [t["name"] for t in bearer.json()["tokens"]] == ["first"]
    assert events.types() == sorted(
        [
            "developer.created.v1",
            "tenant.created.v1",
            "tenant.member_added.v1",
            "developer.github_linked.v1",
            "session.created.v1",
            "token.created.v1",
        ]
    )
    session = next(p for t, p in events.new() if t == "session.created.v1")
    assert cookies["session-token"]["value"] not in str(events.new())  # stored hashed
    assert session["developer"] == "octo-cat"


def test_cookies_are_secure_behind_a_tls_proxy(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("tls-user")
    gh.sign_in("tls-user")
    tls = {"X-Forwarded-Proto": "https"}
    with Browser(server) as browser:
        login = browser.get("/api/auth/github/login", headers=tls)
        state = set_cookies(login)["hutch-oauth-state"]
        assert state["secure"]
        assert state["httponly"]
        authorize = browser.http.get(login.headers["Location"])
        # The jar keeps a Secure cookie from plain http: send it as a browser on https would.
        callback = browser.http.get(
            authorize.headers["Location"],
            headers={**tls, "Cookie": f"hutch-oauth-state={state['value']}"},
        )
        assert callback.status_code == 302, callback.text
        cookies = set_cookies(callback)
        assert cookies["dev-id"]["secure"]
        assert cookies["session-token"]["secure"]


def test_writes_with_the_session_need_the_csrf_proof(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("csrf-user")
    gh.sign_in("csrf-user")
    with Browser(server) as browser, Browser(server) as other:
        browser.sign_in()
        other.sign_in()  # the same developer's second browser: a session of its own
        csrf = browser.get("/api/auth/status").json()["csrfToken"]
        theirs = other.get("/api/auth/status").json()["csrfToken"]
        assert csrf != theirs
        events = Events(server.settings)
        refused = [
            {},
            {"X-CSRF-Token": "0" * 64},
            {"X-CSRF-Token": theirs},  # another session's proof
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": f"{server.settings.public_url}.evil.example"},
        ]
        for headers in refused:
            answer = browser.request("POST", "/api/tokens", json={"name": "x"}, headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
            body = error(answer)
            assert body["code"] == "csrf_failed"
            assert "X-CSRF-Token" in body["message"]
            assert "Origin" in body["message"]
        assert events.new() == []
        accepted = [
            {"X-CSRF-Token": csrf},
            {"Origin": server.settings.public_url},
            {"Origin": APP_ORIGIN},  # HUTCH_REDIRECT_ORIGINS
        ]
        for headers in accepted:
            answer = browser.request("POST", "/api/tokens", json={"name": "x"}, headers=headers)
            assert answer.status_code == 201, (headers, answer.text)
        token_id = answer.json()["id"]
        revoke = browser.request("DELETE", f"/api/tokens/{token_id}")
        assert error(revoke)["code"] == "csrf_failed"
        revoke = browser.request(
            "DELETE", f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf}
        )
        assert revoke.status_code == 200, revoke.text
        listed = browser.get("/api/tokens").json()["tokens"]  # a read: no proof needed
        assert len(listed) == 2


def test_a_returning_user_is_the_same_developer(server: Server, gh: GitHubStandIn) -> None:
    account = gh.add_user("Returner", name="First Name")
    gh.sign_in("Returner")
    with Browser(server) as browser:
        browser.sign_in()
    events = Events(server.settings)
    with Browser(server) as browser:  # unchanged profile: a session, nothing else
        browser.sign_in()
    assert events.types() == ["session.created.v1"]
    account.name = "New Name"
    gh.rename("Returner", "Renamed")
    gh.sign_in("Renamed")
    events = Events(server.settings)
    with Browser(server) as browser:
        browser.sign_in()
        user = browser.get("/api/user").json()["user"]
    assert events.types() == ["developer.github_linked.v1", "session.created.v1"]
    linked = next(p for t, p in events.new() if t == "developer.github_linked.v1")
    assert linked["developer"] == "returner"
    assert linked["login"] == "Renamed"
    assert (user["developer"], user["login"], user["name"]) == ("returner", "Renamed", "New Name")


def test_sign_in_brings_the_users_installation_tenants(server: Server, gh: GitHubStandIn) -> None:
    """GitHub's /user/installations at sign-in: the organisation's tenant, seen with the
    session (ingest/tenant_commands.sync_memberships does the linking)."""
    gh.add_org("Sign-In-Org", members=["member-user"])
    gh.install("Sign-In-Org")
    gh.sign_in("member-user")
    with Browser(server) as browser:
        browser.sign_in()
        listed = browser.get("/api/tenants").json()
    kinds = sorted((t["name"], t["kind"]) for t in listed["tenants"])
    assert kinds == [("Sign-In-Org", "organisation"), ("member-user", "personal")]
    assert listed["total_count"] == 2


def test_a_login_taken_at_the_cli_gets_the_github_id(server: Server, gh: GitHubStandIn) -> None:
    code, made = hutch(server.settings, "developer", "create", "taken")
    assert code == 0, made
    account = gh.add_user("Taken")
    gh.sign_in("Taken")
    with Browser(server) as browser:
        assert browser.sign_in()
        assert browser.cookie("dev-id") == f"taken-{account.id}"
        assert browser.get("/api/user").json()["user"]["developer"] == f"taken-{account.id}"


# --- the state, the code -------------------------------------------------------------------


def forged_state(settings: Settings, state: str, *, exp: int, key: bytes | None = None) -> str:
    claims = {
        "state": state,
        "redirect_uri": "/portal",
        "aud": "hutch:oauth-state",
        "iat": exp - 600,
        "exp": exp,
    }
    return jwt.encode(claims, key or derive(secret_key(settings), "oauth-state"), "HS256")


def test_the_callback_checks_the_state(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("state-user")
    gh.sign_in("state-user")
    events = Events(server.settings)
    with Browser(server) as browser:
        callback = browser.to_callback()
        query = parse_qs(urlsplit(callback).query)
        state, code = query["state"][0], query["code"][0]
        path = "/api/auth/github/callback"
        cookie = browser.cookie("hutch-oauth-state")
        assert cookie is not None
        now = int(time.time())
        cases: list[tuple[dict[str, str], dict[str, str], str]] = [
            ({"code": code, "state": state}, {}, "missing_state_cookie"),
            ({"code": code, "state": "x" + state}, {"hutch-oauth-state": cookie}, "state_mismatch"),
            ({"code": code}, {"hutch-oauth-state": cookie}, "missing_state"),
            ({"state": state}, {"hutch-oauth-state": cookie}, "missing_code"),
            (
                {"code": code, "state": state},
                {"hutch-oauth-state": forged_state(server.settings, state, exp=now - 1)},
                "state_expired",
            ),
            (
                {"code": code, "state": state},
                {
                    "hutch-oauth-state": forged_state(
                        server.settings, state, exp=now + 60, key=b"k" * 32
                    )
                },
                "bad_state_cookie",
            ),
            (
                {"code": code, "state": state},
                {"hutch-oauth-state": cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")},
                "bad_state_cookie",
            ),
            (
                {"error": "access_denied", "state": state},
                {"hutch-oauth-state": cookie},
                "oauth_refused",
            ),
        ]
        for params, jar, expected in cases:
            with httpx.Client(base_url=server.url, cookies=jar, timeout=30) as fresh:
                answer = fresh.get(path, params=params)
            assert answer.status_code == 400, (expected, answer.text)
            assert error(answer)["code"] == expected, answer.text
            assert "set-cookie" not in answer.headers
        assert gh.redeemed == []  # no refused callback even asked GitHub
        assert events.new() == []

        # The real one works once; its code replayed (state and cookie as they were) does not.
        first = browser.http.get(callback)
        assert first.status_code == 302, first.text
        events = Events(server.settings)
        with httpx.Client(cookies={"hutch-oauth-state": cookie}, timeout=30) as replay:
            again = replay.get(callback)
        assert again.status_code == 400, again.text
        assert error(again)["code"] == "oauth_refused"
        assert events.new() == []


def test_github_down_changes_nothing(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("outage-user")
    gh.sign_in("outage-user")
    events = Events(server.settings)
    with Browser(server) as browser:
        callback = browser.to_callback()
        gh.fail_with = 502
        answer = browser.http.get(callback)
        gh.fail_with = None
    assert answer.status_code == 502, answer.text
    assert error(answer)["code"] == "github_unavailable"
    assert events.new() == []


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("target", EVIL)
def test_no_open_redirect(server: Server, gh: GitHubStandIn, target: str) -> None:
    gh.add_user("redirect-user")
    gh.sign_in("redirect-user")
    with Browser(server) as browser:
        login = browser.login(target)
        assert login.status_code == 400, login.text
        assert error(login) == {
            "code": "redirect_not_allowed",
            "field": "redirect_uri",
            "message": error(login)["message"],
        }
        assert "Location" not in login.headers
        assert "set-cookie" not in login.headers
        browser.sign_in()
        events = Events(server.settings)
        for method in ("GET", "POST"):
            out = browser.request(method, "/api/auth/logout", params={"redirect_uri": target})
            assert out.status_code == 400, out.text
            assert error(out)["code"] == "redirect_not_allowed"
            assert "Location" not in out.headers
            assert "set-cookie" not in out.headers
        assert events.new() == []  # still signed in
        assert browser.get("/api/user").status_code == 200


@pytest.mark.parametrize(
    "raw",
    ["%2F%2Fevil.example", "%2F%5Cevil.example", "https%3A%2F%2Fevil.example", "%2F%09%2Fevil"],
)
def test_no_open_redirect_encoded(server: Server, raw: str) -> None:
    """As a browser sends them: Falcon decodes the query once, and what it decodes to is
    checked."""
    for path in ("/api/auth/github/login", "/api/auth/logout"):
        answer = httpx.get(f"{server.url}{path}?redirect_uri={raw}", timeout=30)
        assert answer.status_code == 400, answer.text
        assert error(answer)["code"] == "redirect_not_allowed"


def test_allowed_redirects(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("allowed-user")
    gh.sign_in("allowed-user")
    public = server.settings.public_url
    for target in ("/portal/apps?tab=1", f"{APP_ORIGIN}/after", f"{public}/x"):
        with Browser(server) as browser:
            assert browser.sign_in(target).headers["Location"] == target
            out = browser.get("/api/auth/logout", params={"redirect_uri": target})
            assert out.status_code == 302
            assert out.headers["Location"] == target


# --- logout, expiry, forged sessions ---------------------------------------------------------


def test_a_session_ends_at_logout(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("leaver")
    gh.sign_in("leaver")
    for method, path in (
        ("POST", "/api/logout"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/auth/logout"),
    ):
        with Browser(server) as browser:
            browser.sign_in()
            kept = browser.session()
            csrf = browser.get("/api/auth/status").json()["csrfToken"]
            out = browser.request(method, path)
            assert (out.status_code, out.json()) == (200, {"message": "Successfully logged out"})
            gone = set_cookies(out)
            assert cleared(gone["dev-id"])
            assert cleared(gone["session-token"])
            assert browser.cookie("session-token") is None
        with httpx.Client(base_url=server.url, cookies=kept, timeout=30) as stolen:
            me = stolen.get("/api/user")
            assert me.status_code == 401, me.text
            assert error(me)["code"] == "session_revoked"
            write = stolen.post("/api/tokens", json={}, headers={"X-CSRF-Token": csrf})
            assert write.status_code == 401
            assert error(write)["code"] == "session_revoked"
            status = stolen.get("/api/auth/status").json()
            assert status == {"authenticated": False, "method": None, "error": "session_revoked"}
            again = stolen.post("/api/logout")  # idempotent
            assert again.status_code == 200


def test_a_command_rechecks_the_session(server: Server, gh: GitHubStandIn) -> None:
    """A session revoked in the log while this process still has it cached as live (for up
    to a second): the command re-reads it after catching up (`confirm`) and refuses."""
    gh.add_user("cached")
    gh.sign_in("cached")
    with Browser(server) as browser:
        events = Events(server.settings)
        browser.sign_in()
        session = next(p for t, p in events.new() if t == "session.created.v1")
        csrf = browser.get("/api/auth/status").json()["csrfToken"]  # cached as live now
        revoked = SessionRevoked(session["id"], session["developer"])
        envelope = new_envelope("session.revoked.v1", orjson.dumps(revoked), key="cached")
        append_apps(server.settings, [envelope])
        after = Events(server.settings)
        write = browser.request("POST", "/api/tokens", json={}, headers={"X-CSRF-Token": csrf})
        assert write.status_code == 401, write.text
        assert error(write)["code"] == "session_revoked"
        assert after.new() == []


def append_apps(settings: Settings, envelopes: list[Envelope]) -> None:
    """Append to the `apps` topic through a log of the test's own."""
    from hutch.wiring import open_log

    async def run() -> None:
        log = open_log(settings)
        await log.start()
        try:
            await log.append("apps", envelopes)
        finally:
            await log.close()

    asyncio.run(run())


def test_forged_session_cookies(server: Server, gh: GitHubStandIn) -> None:
    gh.add_user("forger")
    gh.sign_in("forger")
    with Browser(server) as browser:
        browser.sign_in()
        token = browser.session()["session-token"]
    cases: list[tuple[dict[str, str], str]] = [
        ({"dev-id": "forger", "session-token": "bs_" + "0" * 64}, "invalid_session"),
        ({"dev-id": "forger", "session-token": "bh_" + "0" * 64}, "invalid_session"),
        ({"dev-id": "forger", "session-token": "bs_short"}, "invalid_session"),
        ({"dev-id": "octo-cat", "session-token": token}, "invalid_session"),
        ({"session-token": token}, "missing_session"),
    ]
    for jar, code in cases:
        with httpx.Client(base_url=server.url, cookies=jar, timeout=30) as c:
            me = c.get("/api/user")
            assert me.status_code == 401, (jar, me.text)
            assert error(me)["code"] == code, (jar, me.text)
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        nobody = anonymous.get("/api/user")
        assert nobody.status_code == 401
        body = error(nobody)
        assert body["code"] == "missing_token"
        assert "session-token" in body["message"]


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn) -> Iterator[Served]:
    """`hutch serve` (ingest workers forwarding reads to the query process) whose sessions
    last one second: a process of its own, as chDB opens one data directory per process."""
    port = free_port()
    settings = make_settings(
        tmp_path_factory.mktemp("brief") / "data",
        HUTCH_BIND=f"127.0.0.1:{port}",
        HUTCH_SESSION_TTL="1",
        **github.env,
    )
    served = Served(settings, port)
    try:
        yield served
    finally:
        kill_tree(served.process.pid)
        served.process.wait()


@pytest.mark.slow
def test_a_session_expires(brief: Served, gh: GitHubStandIn) -> None:
    gh.add_user("brief-user")
    gh.sign_in("brief-user")
    with Browser(brief) as browser:
        answer = browser.sign_in()
        assert set_cookies(answer)["session-token"]["max-age"] == "1"
        assert browser.get("/api/user").status_code == 200  # forwarded to the query process
        kept = browser.session()
    time.sleep(1.2)
    with httpx.Client(base_url=brief.url, cookies=kept, timeout=30) as late:
        for path in ("/api/user", "/api/tokens"):
            me = late.get(path)
            assert me.status_code == 401, me.text
            assert error(me)["code"] == "session_expired"
