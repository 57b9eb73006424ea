"""Hutch's GitHub client (base/github.py) against the GitHub stand-in, over real HTTP: the
OAuth sign-in (authorize URL, single-use codes), the user's own calls, the App's calls with
its JWT and installation tokens, repository files at a commit, and GitHub being down. Also
what the stand-in itself promises other tests: refusals shaped as GitHub's, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from base.github import GitHub, GitHubError, GitHubInstallation, GitHubUser, OAuthRefused
from base.settings import Settings
from tests.support.github_standin import GitHubStandIn
from tests.support.receivers import http_receiver
from tests.support.servers import free_port

CALLBACK = "http://127.0.0.1:9/api/auth/github/callback"


@pytest.fixture
def gh(github: GitHubStandIn) -> Iterator[GitHubStandIn]:
    github.reset()
    yield github
    github.reset()


def client_for(gh: GitHubStandIn, tmp_path: Path, **env: str) -> GitHub:
    return GitHub(Settings.from_env({"HUTCH_DATA": str(tmp_path), **gh.env, **env}))


@pytest.fixture
def client(gh: GitHubStandIn, tmp_path: Path) -> GitHub:
    return client_for(gh, tmp_path)


def code_for(gh: GitHubStandIn, client: GitHub, state: str = "s1") -> str:
    """Go through GitHub's authorize page as the signed-in browser would."""
    answer = httpx.get(client.authorize_url(CALLBACK, state))
    assert answer.status_code == 302, answer.text
    location = httpx.URL(answer.headers["location"])
    assert str(location.copy_with(query=None)) == CALLBACK
    assert location.params["state"] == state
    return location.params["code"]


def other_key(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# --- sign-in --------------------------------------------------------------------------------


def test_configuration_is_reported_without_calling_github(tmp_path: Path) -> None:
    bare = GitHub(Settings.from_env({"HUTCH_DATA": str(tmp_path)}))
    assert (bare.sign_in_configured, bare.app_configured) == (False, False)


def test_configured_when_the_settings_name_github(client: GitHub, gh: GitHubStandIn) -> None:
    assert (client.sign_in_configured, client.app_configured) == (True, True)
    assert gh.requests == []


def test_authorize_url_carries_client_id_redirect_uri_and_state(
    client: GitHub, gh: GitHubStandIn
) -> None:
    state = "a b&c=d/é"
    url = httpx.URL(client.authorize_url(f"{CALLBACK}?next=1", state))
    assert str(url.copy_with(query=None)) == f"{gh.url}/login/oauth/authorize"
    assert url.params["client_id"] == gh.client_id
    assert url.params["redirect_uri"] == f"{CALLBACK}?next=1"
    assert url.params["state"] == state


def test_authorize_needs_someone_signed_in_to_github(client: GitHub, gh: GitHubStandIn) -> None:
    answer = httpx.get(client.authorize_url(CALLBACK, "s"))
    assert answer.status_code == 403
    gh.add_user("octocat")
    gh.sign_in("octocat")
    assert httpx.get(client.authorize_url(CALLBACK, "s")).status_code == 302


async def test_a_code_is_exchanged_once(client: GitHub, gh: GitHubStandIn) -> None:
    gh.add_user("octocat", id=583231, name="The Octocat")
    gh.sign_in("octocat")
    code = code_for(gh, client)
    token = await client.exchange_code(code, CALLBACK)
    assert (await client.user(token)).login == "octocat"
    with pytest.raises(OAuthRefused) as refused:
        await client.exchange_code(code, CALLBACK)
    assert refused.value.error == "bad_verification_code"
    assert gh.redeemed == [code]
    assert gh.refused_codes == [code]


@pytest.mark.parametrize("case", ["unknown", "expired", "other redirect"])
async def test_codes_github_refuses_are_oauth_refused(
    client: GitHub, gh: GitHubStandIn, case: str
) -> None:
    gh.add_user("octocat")
    gh.sign_in("octocat")
    code, callback = code_for(gh, client), CALLBACK
    if case == "unknown":
        code = "0" * 20
    elif case == "expired":
        gh.code_ttl_s = 0.0
    else:
        callback = "http://127.0.0.1:9/elsewhere"
    try:
        with pytest.raises(OAuthRefused) as refused:
            await client.exchange_code(code, callback)
    finally:
        gh.code_ttl_s = 600.0
    expected = "redirect_uri_mismatch" if case == "other redirect" else "bad_verification_code"
    assert refused.value.error == expected
    assert gh.redeemed == []


async def test_refused_client_credentials_are_an_outage_not_the_users_fault(
    gh: GitHubStandIn, tmp_path: Path
) -> None:
    gh.add_user("octocat")
    gh.sign_in("octocat")
    client = client_for(gh, tmp_path, HUTCH_GITHUB_CLIENT_SECRET="wrong")
    with pytest.raises(GitHubError) as failed:
        await client.exchange_code(code_for(gh, client), CALLBACK)
    assert not isinstance(failed.value, OAuthRefused)
    assert "incorrect_client_credentials" in str(failed.value)
    assert "HUTCH_GITHUB_CLIENT_SECRET" in str(failed.value)


def test_the_token_endpoint_answers_a_form_unless_asked_for_json(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_user("octocat")
    gh.sign_in("octocat")
    form = {
        "client_id": gh.client_id,
        "client_secret": gh.client_secret,
        "code": code_for(gh, client),
    }
    answer = httpx.post(f"{gh.url}/login/oauth/access_token", data=form)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    fields = dict(httpx.QueryParams(answer.text))
    assert fields["access_token"].startswith("ghu_")
    assert fields["token_type"] == "bearer"
    again = httpx.post(
        f"{gh.url}/login/oauth/access_token", data=form, headers={"Accept": "application/json"}
    )
    assert again.status_code == 200
    assert again.json()["error"] == "bad_verification_code"


# --- the user's calls -----------------------------------------------------------------------


async def test_user_email_is_the_public_one_else_the_verified_primary(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_user("pub", id=11, name="Pub Lic", email="pub@example.org", public_email=True)
    gh.add_user("priv", id=12, email="priv@example.org")
    gh.add_user("none", id=13)
    users = [await client.user(gh.user_token(login)) for login in ("pub", "priv", "none")]
    assert users[0] == GitHubUser(
        11, "pub", "Pub Lic", "pub@example.org", "https://avatars.githubusercontent.com/u/11?v=4"
    )
    assert (users[1].email, users[1].name) == ("priv@example.org", None)
    assert users[2].email is None


async def test_a_bad_user_token_is_a_github_error(client: GitHub, gh: GitHubStandIn) -> None:
    with pytest.raises(GitHubError, match="reading the user: GitHub answered 401: Bad credentials"):
        await client.user("ghu_forged")


async def test_installations_of_the_user_and_of_their_organisations_only(
    client: GitHub, gh: GitHubStandIn
) -> None:
    alice = gh.add_user("alice")
    gh.add_user("bob")
    acme = gh.add_org("acme", members=["alice", "bob"])
    gh.add_org("umbrella", members=["bob"])
    own, org = gh.install("alice"), gh.install("acme", repositories=["widgets"])
    gh.install("umbrella")
    gh.install("bob")
    found = await client.user_installations(gh.user_token("alice"))
    assert sorted(found, key=lambda i: i.id) == [
        GitHubInstallation(
            own,
            "alice",
            alice.id,
            "User",
            "all",
            f"https://avatars.githubusercontent.com/u/{alice.id}?v=4",
        ),
        GitHubInstallation(
            org,
            "acme",
            acme.id,
            "Organization",
            "selected",
            f"https://avatars.githubusercontent.com/u/{acme.id}?v=4",
        ),
    ]
    assert await client.user_installations(gh.user_token(gh.add_user("carol").login)) == []


async def test_installations_are_read_past_the_first_page(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_user("busy")
    ids = {gh.install(gh.add_org(f"org{n}", members=["busy"]).login) for n in range(130)}
    found = await client.user_installations(gh.user_token("busy"))
    assert {i.id for i in found} == ids
    assert gh.requests.count(("GET", "/api/v3/user/installations")) == 2


# --- the App's calls ------------------------------------------------------------------------


async def test_an_installation_is_checked_with_the_app_jwt(
    client: GitHub, gh: GitHubStandIn
) -> None:
    org = gh.add_org("acme")
    installation = gh.install("acme")
    assert await client.installation(installation) == GitHubInstallation(
        installation,
        "acme",
        org.id,
        "Organization",
        "all",
        f"https://avatars.githubusercontent.com/u/{org.id}?v=4",
    )
    assert await client.installation(installation + 1000) is None


async def test_a_jwt_signed_with_another_key_is_refused(gh: GitHubStandIn, tmp_path: Path) -> None:
    gh.add_org("acme")
    installation = gh.install("acme")
    forger = client_for(gh, tmp_path, HUTCH_GITHUB_APP_KEY=str(other_key(tmp_path)))
    with pytest.raises(GitHubError, match="answered 401: A JSON web token could not be decoded"):
        await forger.installation(installation)
    with pytest.raises(GitHubError, match="401"):
        await forger.file_at(installation, "acme/widgets", ".build.yml", "main")
    assert gh.installation_tokens_issued == 0


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iat": -700, "exp": -60}, "'Expiration time' claim ('exp') must be a numeric value"),
        ({"iat": -60, "exp": 900}, "too far in the future"),
        ({"iat": -60, "exp": 500, "iss": "1"}, "Integration not found"),
        ({"iat": -60, "exp": 500, "alg": "none"}, "could not be decoded"),
    ],
)
def test_the_standin_checks_app_jwts_as_github_does(
    gh: GitHubStandIn, claims: dict[str, object], message: str
) -> None:
    installation = gh.install(gh.add_org("acme").login)
    now = int(time.time())
    payload = {"iss": str(gh.app_id), **claims}
    payload["iat"] = now + int(str(payload["iat"]))
    payload["exp"] = now + int(str(payload["exp"]))
    if payload.pop("alg", None) == "none":
        token = jwt.encode(payload, "", algorithm="none")
    else:
        key = gh.key_path.read_bytes()
        token = jwt.encode(payload, key, algorithm="RS256")
    answer = httpx.get(
        f"{gh.api_url}/app/installations/{installation}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 401
    assert message in answer.json()["message"]


async def test_an_unreadable_app_key_is_a_github_error_naming_the_setting(
    gh: GitHubStandIn, tmp_path: Path
) -> None:
    installation = gh.install(gh.add_org("acme").login)
    broken = tmp_path / "broken.pem"
    broken.write_text("not a key")
    for key in (str(tmp_path / "missing.pem"), str(broken)):
        client = client_for(gh, tmp_path, HUTCH_GITHUB_APP_KEY=key)
        with pytest.raises(GitHubError, match="HUTCH_GITHUB_APP_KEY"):
            await client.installation(installation)
    unset = client_for(gh, tmp_path, HUTCH_GITHUB_APP_ID="")
    with pytest.raises(GitHubError, match="not configured"):
        await unset.installation(installation)


async def test_organisation_membership_with_one_cached_installation_token(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_org("acme", members=["alice"])
    gh.add_user("bob")
    installation = gh.install("acme")
    assert await client.org_member(installation, "acme", "alice") is True
    assert await client.org_member(installation, "acme", "bob") is False
    assert await client.org_member(installation, "acme", "nobody") is False
    gh.remove_member("acme", "alice")
    assert await client.org_member(installation, "acme", "alice") is False
    assert gh.installation_tokens_issued == 1


async def test_an_installation_token_about_to_expire_is_not_reused(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_org("acme", members=["alice"])
    installation = gh.install("acme")
    gh.token_ttl_s = 120.0  # inside the client's margin: never worth keeping
    try:
        for _ in range(3):
            assert await client.org_member(installation, "acme", "alice") is True
    finally:
        gh.token_ttl_s = 3600.0
    assert gh.installation_tokens_issued == 3


async def test_a_revoked_installation_token_is_fetched_anew(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_org("acme", members=["alice"])
    installation = gh.install("acme")
    assert await client.org_member(installation, "acme", "alice") is True
    gh.installation_tokens.clear()  # GitHub revoked them
    with pytest.raises(GitHubError, match="401"):
        await client.org_member(installation, "acme", "alice")
    assert await client.org_member(installation, "acme", "alice") is True
    assert gh.installation_tokens_issued == 2


async def test_files_at_a_commit(client: GitHub, gh: GitHubStandIn) -> None:
    gh.add_org("acme")
    installation = gh.install("acme")
    first = gh.commit(
        "acme/widgets",
        {
            ".build.yml": "image: alpine/edge\ntasks:\n  - échec: true\n",
            ".builds/b.yml": "b",
            ".builds/a.yml": "a",
            ".builds/nested/c.yml": "c",
        },
    )
    second = gh.commit("acme/widgets", {".builds/z.yml": "z" * 5000})
    assert re.fullmatch("[0-9a-f]{40}", first)
    repo = "acme/widgets"
    text = await client.file_at(installation, repo, ".build.yml", first)
    assert text == "image: alpine/edge\ntasks:\n  - échec: true\n"
    assert await client.files_in(installation, repo, ".builds", first) == ["a.yml", "b.yml"]
    assert await client.file_at(installation, repo, ".build.yml", second) is None
    assert await client.files_in(installation, repo, ".builds", second) == ["z.yml"]
    assert await client.file_at(installation, repo, ".builds/z.yml", "main") == "z" * 5000
    assert await client.file_at(installation, repo, ".builds", first) is None  # a directory
    assert await client.files_in(installation, repo, ".build.yml", first) == []  # a file
    assert await client.files_in(installation, repo, ".nothing", first) == []
    assert await client.file_at(installation, repo, ".build.yml", "0" * 40) is None


async def test_repositories_an_installation_does_not_cover_read_as_missing(
    client: GitHub, gh: GitHubStandIn
) -> None:
    gh.add_org("acme")
    gh.add_org("umbrella")
    secret = gh.commit("umbrella/secret", {".build.yml": "x"})
    hidden = gh.commit("acme/hidden", {".build.yml": "x"})
    installation = gh.install("acme", repositories=["widgets"])
    assert await client.file_at(installation, "umbrella/secret", ".build.yml", secret) is None
    assert await client.file_at(installation, "acme/hidden", ".build.yml", hidden) is None
    gh.change_repositories(installation, added=["hidden"])
    assert await client.file_at(installation, "acme/hidden", ".build.yml", hidden) == "x"


# --- GitHub down ----------------------------------------------------------------------------


async def test_github_unreachable_is_a_github_error_naming_the_call(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = GitHub(
        Settings.from_env(
            {
                "HUTCH_DATA": str(tmp_path),
                "HUTCH_GITHUB_URL": closed,
                "HUTCH_GITHUB_API_URL": closed,
                "HUTCH_GITHUB_CLIENT_ID": "id",
                "HUTCH_GITHUB_CLIENT_SECRET": "secret",
            }
        )
    )
    with pytest.raises(GitHubError, match="exchanging the sign-in code: GitHub unreachable") as e:
        await client.exchange_code("code", CALLBACK)
    assert not isinstance(e.value, OAuthRefused)
    with pytest.raises(GitHubError, match="reading the user: GitHub unreachable"):
        await client.user("ghu_token")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_github_answering_5xx_is_a_github_error(
    client: GitHub, gh: GitHubStandIn, status: int
) -> None:
    gh.add_user("octocat")
    gh.sign_in("octocat")
    code = code_for(gh, client)
    installation = gh.install(gh.add_org("acme").login)
    token = gh.user_token("octocat")
    gh.fail_with = status
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.exchange_code(code, CALLBACK),
        lambda: client.user(token),
        lambda: client.user_installations(token),
        lambda: client.installation(installation),
        lambda: client.org_member(installation, "acme", "octocat"),
        lambda: client.file_at(installation, "acme/widgets", ".build.yml", "main"),
        lambda: client.files_in(installation, "acme/widgets", ".builds", "main"),
    ]
    for call in calls:
        with pytest.raises(GitHubError) as failed:
            await call()
        assert not isinstance(failed.value, OAuthRefused)
        assert f"GitHub answered {status}" in str(failed.value)
    assert gh.redeemed == []


# --- webhooks -------------------------------------------------------------------------------


def test_webhooks_are_signed_over_the_exact_body(gh: GitHubStandIn) -> None:
    gh.add_user("alice", email="alice@example.org")
    gh.add_org("acme", members=["alice"])
    installation = gh.install("acme")
    sha = gh.commit("acme/widgets", {".build.yml": "x"}, message="Fix the thing\n\nDetails")
    payload = gh.push_payload("acme/widgets", sha, pusher_login="alice")
    with http_receiver() as receiver:
        answer = gh.send_webhook(f"{receiver.url}/hook", "push", payload)
        gh.send_webhook(f"{receiver.url}/hook", "ping", gh.ping_payload(), secret="other")
    assert answer.status_code == 200
    push, ping = receiver.to("/hook")
    expected = hmac.new(gh.webhook_secret.encode(), push.body, hashlib.sha256).hexdigest()
    assert push.headers["x-hub-signature-256"] == f"sha256={expected}"
    assert push.headers["x-github-event"] == "push"
    assert uuid.UUID(push.headers["x-github-delivery"]).version == 4
    assert push.headers["user-agent"].startswith("GitHub-Hookshot/")
    assert ping.headers["x-hub-signature-256"] != f"sha256={expected}"
    body = orjson.loads(push.body)
    assert body["after"] == sha
    assert body["installation"]["id"] == installation
    assert body["repository"]["full_name"] == "acme/widgets"
    assert body["head_commit"]["message"] == "Fix the thing\n\nDetails"
    assert body["pusher"] == {"name": "alice", "email": "alice@example.org"}
    assert body["sender"]["id"] == gh.account("alice").id
    assert gh.deliveries == [push.headers["x-github-delivery"], ping.headers["x-github-delivery"]]


def test_installation_payloads_carry_the_installation_and_repositories(gh: GitHubStandIn) -> None:
    gh.add_org("acme")
    gh.commit("acme/widgets", {"a": "b"})
    installation = gh.install("acme", repositories=["widgets"])
    created = gh.installation_payload("created", installation)
    assert created["action"] == "created"
    assert created["installation"]["id"] == installation
    assert created["installation"]["account"]["type"] == "Organization"
    assert [r["full_name"] for r in created["repositories"]] == ["acme/widgets"]
    changed = gh.installation_repositories_payload(installation, added=["gadgets"])
    assert changed["action"] == "added"
    assert [r["full_name"] for r in changed["repositories_added"]] == ["acme/gadgets"]
    assert changed["repositories_removed"] == []
