"""GET /api/branches?app=: an app's source repository's branches, listed by the real
`git ls-remote` over real HTTPS (git http-backend behind a TLS server, tests/support/
git_https.py), under the builder's address guard and within time and size limits.

The allowed server lets only 127.0.0.2 through the guard (HUTCH_BUILDER_ALLOW_NETWORKS), so a
remote on 127.0.0.1, named or redirected to, is what the guard must stop. Branches over a real
sshd (which listens on 127.0.0.1) are in tests/test_publish_ssh_keys.py, whose server allows
127.0.0.1: one process holds one chDB, so one server per module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.git_https import GitHttps, add_many_branches, bare_repository, git_https
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

ALLOWED_HOST = "127.0.0.2"
TIMEOUT_S = 3


@dataclass
class Remotes:
    allowed: GitHttps
    """On 127.0.0.2, which the server's guard allows."""
    loopback: GitHttps
    """On 127.0.0.1, which it does not."""
    commits: dict[str, str]


def _commits(bare: Path) -> dict[str, str]:
    import subprocess

    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        cwd=bare,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def ca_and_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(ALLOWED_HOST, "127.0.0.1", "localhost")
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return pem, cert


@pytest.fixture(scope="module")
def remotes(
    tmp_path_factory: pytest.TempPathFactory, ca_and_cert: tuple[Path, object]
) -> Iterator[Remotes]:
    root = tmp_path_factory.mktemp("repos")
    bare = bare_repository(root, "app.git", {"main": "first", "feature/x": "second"}, "main")
    bare_repository(root, "nohead.git", {"trunk": "only"}, "trunk")
    huge = bare_repository(root, "huge.git", {"main": "big"}, "main")
    add_many_branches(huge, 5000)
    _, cert = ca_and_cert
    with git_https(root, cert, ALLOWED_HOST) as allowed, git_https(root, cert) as loopback:
        allowed.slow.add("/slow.git")
        allowed.redirects["/moved.git"] = f"{loopback.url}/app.git"
        yield Remotes(allowed, loopback, _commits(bare))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ca_and_cert: tuple[Path, object]
) -> Iterator[Server]:
    pem, _ = ca_and_cert
    yield from serve_in_thread(
        tmp_path_factory.mktemp("branches") / "data",
        HUTCH_BUILDER_ALLOW_NETWORKS=f"{ALLOWED_HOST}/32",
        HUTCH_GIT_CA_FILE=str(pem),
        HUTCH_GIT_TIMEOUT=str(TIMEOUT_S),
        HUTCH_GIT_MAX_OUTPUT="65536",
    )


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    _, ada = developer_with_app(server.settings, "ada", "ada-app")
    _, bob = developer_with_app(server.settings, "bob", "bob-app")
    return {"ada": ada, "bob": bob}


def client(server: Server, token: str) -> httpx.Client:
    return server.client(Authorization=f"Bearer {token}")


def set_source(c: httpx.Client, url: str | None, app: str = "ada-app") -> httpx.Response:
    return c.patch(f"/api/apps/{app}", json={"sourceRepository": url})


def sources(c: httpx.Client) -> dict[str, str | None]:
    return {a["name"]: a["sourceRepository"] for a in c.get("/api/apps").json()["apps"]}


def test_branches_of_a_real_repository(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    url = f"{remotes.allowed.url}/app.git"
    with client(server, tokens["ada"]) as c:
        answer = set_source(c, url)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"app": "ada-app", "sourceRepository": url}
        assert sources(c)["ada-app"] == url
        listed = c.get("/api/branches", params={"app": "ada-app"})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["app"] == "ada-app"
    assert body["repository"] == url
    assert body["default"] == "main"
    assert {b["name"]: b["commit"] for b in body["branches"]} == remotes.commits
    assert set(remotes.commits) == {"main", "feature/x"}


def test_head_names_the_default_branch(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/nohead.git").status_code == 200
        body = c.get("/api/branches", params={"app": "ada-app"}).json()
    assert body["default"] == "trunk"
    assert [b["name"] for b in body["branches"]] == ["trunk"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/app.git", "not public"),
        ("https://[::1]/app.git", "not public"),
        ("https://2130706433/app.git", "not public"),
        ("https://localhost/app.git", "not public"),
        ("ssh://git@10.0.0.1/app.git", "not public"),
        ("git@192.168.1.1:app.git", "not public"),
        ("https://user:token@example.com/app.git", "credentials"),
        ("https://example.com/app.git?x=1", "query"),
        ("http://example.com/app.git", "https://, ssh://"),
        ("file:///etc/passwd", "https://, ssh://"),
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("-oProxyCommand=x:app.git", "must not start with '-'"),
        ("ssh://-oProxyCommand=x/app.git", "must not start with '-'"),
        ("example.com", "https://, ssh://"),
        ("", "1 to 2048"),
    ],
)
def test_a_bad_source_repository_is_refused_and_nothing_changes(
    server: Server, tokens: dict[str, str], remotes: Remotes, url: str, why: str
) -> None:
    with client(server, tokens["bob"]) as c:
        before = sources(c)
        answer = c.patch("/api/apps/bob-app", json={"sourceRepository": url, "retentionDays": 1})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["field"] == "sourceRepository"
        assert why in error["message"]
        assert "token" not in error["message"] or "token@" not in error["message"]
        assert sources(c) == before
        apps = c.get("/api/apps").json()["apps"]
        assert [a["retentionDays"] for a in apps] != [1]  # neither field was changed


def test_a_wrongly_typed_source_is_a_400(server: Server, tokens: dict[str, str]) -> None:
    with client(server, tokens["bob"]) as c:
        answer = set_source(c, 42)  # type: ignore[arg-type]
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == "sourceRepository"


def test_a_name_that_resolves_to_loopback_is_refused_when_listing(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    # "vm" is 127.0.0.1 in this machine's /etc/hosts: its text passes, its address does not.
    port = remotes.loopback.url.rsplit(":", 1)[1]
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"https://vm:{port}/app.git").status_code == 200
        answer = c.get("/api/branches", params={"app": "ada-app"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("blocked_remote", "app")
    assert "127.0.0.1" in error["message"]


def test_a_host_without_an_address_is_the_urls_fault(
    server: Server, tokens: dict[str, str]
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, "https://no-such-host.invalid/app.git").status_code == 200
        answer = c.get("/api/branches", params={"app": "ada-app"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("unresolvable_remote", "app")
    assert "no-such-host.invalid" in error["message"]


def test_a_redirect_to_loopback_is_not_followed(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/moved.git").status_code == 200
        answer = c.get("/api/branches", params={"app": "ada-app"})
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "remote_unavailable"
    assert "main" not in answer.text.replace("remote_unavailable", "")
    for commit in remotes.commits.values():
        assert commit not in answer.text


def test_a_slow_remote_is_stopped_at_the_limit(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/slow.git").status_code == 200
        started = time.monotonic()
        answer = c.get("/api/branches", params={"app": "ada-app"})
        took = time.monotonic() - started
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "remote_timeout"
    assert f"{TIMEOUT_S} s" in answer.json()["error"]["message"]
    assert TIMEOUT_S - 0.5 < took < TIMEOUT_S + 5
    assert not git_processes_naming("slow.git"), "git (or its helper) outlived the limit"


def git_processes_naming(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in argv and "git" in argv:
            found.append(argv)
    return found


def test_a_huge_answer_is_cut_off(server: Server, tokens: dict[str, str], remotes: Remotes) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/huge.git").status_code == 200
        answer = c.get("/api/branches", params={"app": "ada-app"})
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "remote_too_large"
    assert "65536 bytes" in error["message"]


def test_a_missing_repository_is_a_502_naming_no_path(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/absent.git").status_code == 200
        answer = c.get("/api/branches", params={"app": "ada-app"})
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "remote_unavailable"
    assert "hutch-git-" not in error["message"]
    assert "/tmp" not in error["message"]


def test_no_source_repository_is_a_409(server: Server, tokens: dict[str, str]) -> None:
    with client(server, tokens["bob"]) as c:
        assert set_source(c, None, "bob-app").status_code == 200
        assert sources(c)["bob-app"] is None
        answer = c.get("/api/branches", params={"app": "bob-app"})
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "no_source_repository"
    assert "PATCH /api/apps/bob-app" in error["message"]


def test_another_developers_app_and_bad_parameters(
    server: Server, tokens: dict[str, str], remotes: Remotes
) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, f"{remotes.allowed.url}/app.git").status_code == 200
    with client(server, tokens["bob"]) as c:
        theirs = c.get("/api/branches", params={"app": "ada-app"})
        assert theirs.status_code == 403, theirs.text
        assert remotes.allowed.url not in theirs.text
        assert c.patch("/api/apps/ada-app", json={"sourceRepository": None}).status_code == 403
        assert c.get("/api/branches", params={"app": "no-such-app"}).status_code == 404
        missing = c.get("/api/branches")
        assert missing.status_code == 400
        assert missing.json()["error"]["field"] == "app"
    with server.client() as c:
        assert c.get("/api/branches", params={"app": "ada-app"}).status_code == 401
    with client(server, tokens["ada"]) as c:
        assert sources(c)["ada-app"] == f"{remotes.allowed.url}/app.git"


def test_an_ssh_remote_needs_a_key_and_a_host_key(server: Server, tokens: dict[str, str]) -> None:
    with client(server, tokens["ada"]) as c:
        assert set_source(c, "git@example.com:ada/app.git").status_code == 200
        no_key = c.get("/api/branches", params={"app": "ada-app"})
        assert no_key.status_code == 422, no_key.text
        assert no_key.json()["error"]["code"] == "ssh_key_required"
        key = c.post("/api/publish/ssh-keys", json={"label": "k", "generate": True}).json()
        unknown = c.get("/api/branches", params={"app": "ada-app", "sshKeyId": key["id"]})
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["error"]["code"] == "host_key_unknown"
    with client(server, tokens["bob"]) as c:
        bob_key = c.post("/api/publish/ssh-keys", json={"label": "b", "generate": True}).json()
        assert set_source(c, "git@example.com:bob/app.git", "bob-app").status_code == 200
        # ada's key on bob's own app: as if it did not exist
        used = c.get("/api/branches", params={"app": "bob-app", "sshKeyId": key["id"]})
        assert used.status_code == 404, used.text
        assert used.json()["error"]["field"] == "sshKeyId"
        assert bob_key["id"] != key["id"]
